"""Test-wide settings: one thread per process and quiet TensorFlow, set
before any test imports TensorFlow, so tests behave like the workers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
# The messages the tests read name commands as `python -m scripts...`, however the suite was started
# (run.sh sets this for the entry points it starts: scripts/stage.py, launcher).
os.environ.pop("WORLD_MODELS_LAUNCHER", None)
