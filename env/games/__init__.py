"""The games: one module per game, each defining `SPEC = env.spec.EnvSpec(...)`.

env/spec.py registers every module found here, so a new game is one new file in this folder
(plus its presets in scripts/config.py): docs/adding-an-environment.md walks through one.
A module here imports no game engine at import time (its spec's `make` does), so reading the
registry, which every config does, stays cheap.
"""
