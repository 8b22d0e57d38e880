#!/usr/bin/env bash
# The TakeCover run of docs/results.md: the doom preset (the paper's experiment) on RANKS MPI ranks, then
# the fidelity report and the random policy's score. Every step resumes or is skipped when the
# script is rerun, so run it again after any stop; each step's start and end go to RUN/stages.log.
#
#   nohup experiments/takecover_paper.sh > takecover_paper.log 2>&1 &
#
# The variables below can be set to try the script on smoke settings (tests/test_experiments.py).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
RUN=${RUN:-$CODE/runs/takecover-paper}
PRESET=${PRESET:-doom}
EPISODES=${EPISODES:-100}
RANKS=${RANKS:-2}
source "$CODE/experiments/common.sh"

step generate "$RUN/generate.log" ./run.sh python -m scripts.generate --run-dir "$RUN" --preset "$PRESET" || exit 1
step train_vae "$RUN/train_vae.log" ./run.sh python -m scripts.train_vae --run-dir "$RUN" || exit 1
step pipeline "$RUN/pipeline.log" ./run.sh pipeline --run-dir "$RUN" --ranks "$RANKS" --set "evaluate.episodes=$EPISODES" || exit 1
step fidelity "$RUN/fidelity.log" ./run.sh python -m scripts.fidelity --run-dir "$RUN" --episodes "$EPISODES" || exit 1
step evaluate-random "$RUN/evaluate.log" ./run.sh python -m scripts.evaluate --run-dir "$RUN" --params random --episodes "$EPISODES"
