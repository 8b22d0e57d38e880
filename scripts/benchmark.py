"""Benchmarks of the hot paths, each printing figures measured in one run and
their ratio against its goal (docs/design.md section 6). Not tests: nothing here
asserts a timing.

    python -m scripts.benchmark rollouts     env-only vs collection steps/s
    python -m scripts.benchmark vae          streaming vs resident training frames/s; extraction frames/s
    python -m scripts.benchmark dream        batched Doom dream agent-steps/s and seconds per generation
    python -m scripts.benchmark controller   real env with agent vs env only; CMA-ES share of a generation
    python -m scripts.benchmark carracing    the project's CarRacing-v3 renderer vs gymnasium's (same frames), steps/s
    python -m scripts.benchmark rnn          M's train timesteps/s at Doom size against a matmul roofline
    python -m scripts.benchmark all          each of the above, one after the other

Arguments after the name go to that benchmark (see `python -m scripts.benchmark NAME --help`).
"""

import importlib
import sys

BENCHMARKS = {
    "rollouts": "scripts.benchmarks.rollouts",
    "vae": "scripts.benchmarks.vae",
    "dream": "scripts.benchmarks.dream",
    "controller": "scripts.benchmarks.controller",
    "carracing": "scripts.benchmarks.carracing",
    "rnn": "scripts.benchmarks.rnn",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in (*BENCHMARKS, "all"):
        print(__doc__)
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    names = list(BENCHMARKS) if argv[0] == "all" else [argv[0]]
    for name in names:
        print(f"== benchmark {name}", flush=True)
        importlib.import_module(BENCHMARKS[name]).main(argv[1:] if len(names) == 1 else [])


if __name__ == "__main__":
    main()
