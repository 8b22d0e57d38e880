#!/usr/bin/env bash
# The temperature column of the paper's TakeCover table on a finished takecover_paper.sh run:
# C trained again in the dream at each tau in TAUS, each in its own folder RUN-tau<tau> that
# links RUN's rollouts, V, series and M (the same world model, only tau changes), then scored on
# EPISODES fresh real episodes and checked with the fidelity report at that tau. Every step
# resumes or is skipped when the script is rerun; each step's start and end go to
# RUN/stages.log, named tau<tau>/<step>.
#
#   nohup experiments/takecover_temperature.sh > takecover_temperature.log 2>&1 &
#
# The linked folders are RUN's own: do not rerun their stages with --force in a tau folder.
# The variables below can be set to try the script on smoke settings (tests/test_experiments.py).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
RUN=${RUN:-$CODE/runs/takecover-paper}
TAUS=${TAUS:-1.0 1.3}
EPISODES=${EPISODES:-100}
RANKS=${RANKS:-2}
# checked before common.sh, which would make RUN
for folder in rollouts vae series rnn; do
    if [ ! -f "$RUN/$folder/done.json" ]; then
        echo "error: $RUN/$folder/done.json is missing: finish the run first (experiments/takecover_paper.sh with RUN=$RUN)" >&2
        exit 1
    fi
done
source "$CODE/experiments/common.sh"

for tau in $TAUS; do
    branch=$RUN-tau$tau
    share "$RUN" "$branch" rollouts vae series rnn
    step "tau$tau/pipeline" "$branch/pipeline.log" ./run.sh pipeline --run-dir "$branch" --ranks "$RANKS" \
        --only train_controller evaluate --set "controller.temperature=$tau" --set "evaluate.episodes=$EPISODES" || exit 1
    step "tau$tau/fidelity" "$branch/fidelity.log" ./run.sh python -m scripts.fidelity --run-dir "$branch" --episodes "$EPISODES" || exit 1
done
