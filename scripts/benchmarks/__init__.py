"""One module per benchmarked hot path, each with a main(argv); run them through
`python -m scripts.benchmark NAME` (scripts/benchmark.py)."""
