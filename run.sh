#!/usr/bin/env bash
# Set up (once) a virtual environment with the pinned dependencies, then run a job.
#
#   ./run.sh demo [ARGS]       the main job: the doom-smoke pipeline, then the committed TakeCover agent
#                              playing, dreaming and seeing (python -m scripts.demo; --help for ARGS)
#   ./run.sh pipeline [ARGS]   the whole pipeline; default: --preset doom-smoke --run-dir runs/doom-smoke
#   ./run.sh test [ARGS]       the test suite (pytest ARGS; slow tests: ./run.sh test -m slow)
#   ./run.sh python [ARGS]     python inside the environment, e.g. ./run.sh python -m scripts.generate --help
#
# Needs only Python 3.11 (python3.11, or python3 if that is 3.11). PYTHON and VENV override
# the interpreter and the environment folder (default .venv).
set -euo pipefail
cd "$(dirname "$0")"

job=${1:-}
[ $# -gt 0 ] && shift

python_for_venv=${PYTHON:-}
if [ -z "$python_for_venv" ]; then
    if command -v python3.11 >/dev/null 2>&1; then python_for_venv=python3.11; else python_for_venv=python3; fi
fi
venv=${VENV:-.venv}
stamp="$venv/.requirements.sha256"

# (Re)make the environment when it has no python, or when it was never installed into and has no
# pip: `python -m venv` leaves such a half-made folder when ensurepip is missing (Debian, Ubuntu).
if [ ! -x "$venv/bin/python" ] || { [ ! -f "$stamp" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; }; then
    version=$("$python_for_venv" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$version" != "3.11" ]; then
        echo "error: $python_for_venv is Python $version; the pins need Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
        exit 2
    fi
    if ! "$python_for_venv" -m venv "$venv"; then
        echo "error: '$python_for_venv -m venv $venv' failed; on Debian or Ubuntu install the venv module (sudo apt install python3.11-venv), then rerun: the half-made $venv is made whole" >&2
        exit 2
    fi
fi

# Reinstall only when the pins change, one install at a time: two jobs started together on a
# stale stamp would otherwise both install, and one would import TensorFlow while the other is
# halfway through replacing it (seen: "No module named 'tensorflow.python'").
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv/.install.lock"
    flock 9
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r requirements-dev.txt
    echo "$wanted" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi
exec 9>&-

export SDL_VIDEODRIVER=${SDL_VIDEODRIVER:-dummy} SDL_AUDIODRIVER=${SDL_AUDIODRIVER:-dummy}
# The commands an error message names start the way this one did (scripts/stage.py, LAUNCHER_VARIABLE).
launcher="./run.sh python"
if [ -n "${VENV:-}" ]; then launcher="VENV=$(printf %q "$VENV") $launcher"; fi
export WORLD_MODELS_LAUNCHER="$launcher"
case "$job" in
    demo)
        exec "$venv/bin/python" -m scripts.demo "$@" ;;
    pipeline)
        if [ $# -eq 0 ]; then set -- --preset doom-smoke --run-dir runs/doom-smoke; fi
        exec "$venv/bin/python" -m scripts.pipeline "$@" ;;
    test)
        exec "$venv/bin/python" -m pytest "$@" ;;
    python)
        exec "$venv/bin/python" "$@" ;;
    *)
        echo "usage: ./run.sh demo|pipeline|test|python [ARGS]" >&2
        exit 2 ;;
esac
