#!/usr/bin/env bash
# C alone, from an exported CarRacing agent (default pretrained/carracing), with no data generated
# and no V or M trained: RUN gets the agent's config.json and links to its V, M and first frames
# (share, experiments/common.sh), then CMA-ES starts from the agent's saved controller KIND
# (controller.init_from, what train_controller --init-from sets; recorded in RUN/config.json),
# scores its mean on the fixed validation tracks every EVAL_EVERY generations, and the mean it
# selects (RUN/controller/selected.npz) is scored on EPISODES fresh tracks of gymnasium's own
# CarRacing-v3: evaluate's seeds (RUN/eval/) and a second seed set (RUN/eval_seed<SECOND_SEED>/).
# Every step resumes or is skipped when the script is rerun with the same arguments; each step's
# start and end go to RUN/stages.log.
#
#   RUN=runs/carracing-c nohup experiments/carracing_from_agent.sh \
#       --set controller.shared_episodes=true --set controller.population_size=32 ... > carracing_c.log 2>&1 &
#
# Arguments go to train_controller as they are (any --set of the controller's settings). The linked
# folders are the agent's own: never rerun their stages in RUN. The variables below can be set to
# try the script on smoke settings (tests/test_experiments.py).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
AGENT=${AGENT:-$CODE/pretrained/carracing}
RUN=${RUN:-$CODE/runs/carracing-from-agent}
KIND=${KIND:-mean}
GENERATIONS=${GENERATIONS:-100}
EVAL_EVERY=${EVAL_EVERY:-10}
EPISODES=${EPISODES:-100}
SECOND_SEED=${SECOND_SEED:-2000000}
RANKS=${RANKS:-2}
# checked before common.sh, which would make RUN
if [ ! -f "$AGENT/EXPORTED.json" ]; then
    echo "error: $AGENT/EXPORTED.json is missing: AGENT must be an exported agent (python -m scripts.export_agent), e.g. pretrained/carracing" >&2
    exit 1
fi
AGENT=$(cd "$AGENT" && pwd)  # the links and controller.init_from hold an absolute path
source "$CODE/experiments/common.sh"

share "$AGENT" "$RUN" vae rnn series
step train_controller "$RUN/train_controller.log" ./run.sh pipeline --run-dir "$RUN" --ranks "$RANKS" --only train_controller \
    --set "controller.init_from=$AGENT:$KIND" --set env.carracing_renderer=fast --set controller.eval_set=validation \
    --set "controller.num_generations=$GENERATIONS" --set "controller.eval_every=$EVAL_EVERY" "$@" || exit 1
stock=(--params selected --set env.carracing_renderer=stock --episodes "$EPISODES")
step evaluate "$RUN/evaluate.log" ./run.sh python -m scripts.evaluate --run-dir "$RUN" "${stock[@]}" || exit 1
step evaluate-seed"$SECOND_SEED" "$RUN/evaluate.log" ./run.sh python -m scripts.evaluate --run-dir "$RUN" "${stock[@]}" --seed "$SECOND_SEED" || exit 1
