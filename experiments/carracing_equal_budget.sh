#!/usr/bin/env bash
# One arm of a comparison of CMA-ES settings at an equal budget of training episodes from the same
# start (docs/results.md, "Ranking by skill at an equal episode budget"): C alone in the fast env,
# V, M and first frames linked from an exported CarRacing agent (default pretrained/carracing),
# CMA-ES starting at its mean, one rank, generation by generation until the arm has played BUDGET
# training episodes (population x the rollouts of each finished generation: with adaptive
# rollouts a generation's cost varies). The final mean is then scored on EPISODES held-out tracks
# (seeds SEED + k, the same for every arm). Rerun to resume: a generation cut by a stop replays.
#
#   RUN=runs/compare/a-64x1 experiments/carracing_equal_budget.sh 1920 \
#       --set controller.population_size=64 --set controller.rollouts_per_candidate=1
#
# Arguments after BUDGET go to train_controller; controller.population_size must be among them.
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
AGENT=${AGENT:-$CODE/pretrained/carracing}
RUN=${RUN:-$CODE/runs/carracing-equal-budget}
EPISODES=${EPISODES:-100}
SEED=${SEED:-3000000}
BUDGET=${1:-}
[ $# -gt 0 ] && shift
POPULATION=$(printf '%s\n' "$@" | sed -n 's/^controller.population_size=//p' | tail -1)
if ! [[ "$BUDGET" =~ ^[1-9][0-9]*$ && "$POPULATION" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: expected BUDGET (training episodes, a positive integer) then --set controller.population_size=N among the settings; got '${BUDGET}' and population '${POPULATION}'" >&2
    exit 2
fi
if [ ! -f "$AGENT/EXPORTED.json" ]; then
    echo "error: $AGENT/EXPORTED.json is missing: AGENT must be an exported agent (python -m scripts.export_agent), e.g. pretrained/carracing" >&2
    exit 1
fi
AGENT=$(cd "$AGENT" && pwd)
source "$CODE/experiments/common.sh"
share "$AGENT" "$RUN" vae rnn series

metrics=$RUN/controller/metrics.jsonl
episodes() {  # training episodes played so far
    [ -f "$metrics" ] || { echo 0; return; }
    ./run.sh python -c 'import json, sys; print(int(sys.argv[2]) * sum(json.loads(line)["rollouts"] for line in open(sys.argv[1]) if line.strip()))' \
        "$metrics" "$POPULATION"
}
generation=$( [ -f "$metrics" ] && grep -c . "$metrics" || echo 0 )
while [ "$(episodes)" -lt "$BUDGET" ]; do
    generation=$((generation + 1))
    step "generation-$generation" "$RUN/train_controller.log" ./run.sh python -m scripts.train_controller --run-dir "$RUN" \
        --set "controller.init_from=$AGENT:mean" --set env.carracing_renderer=fast --set controller.eval_every=0 \
        --set "controller.num_generations=$generation" "$@" || exit 1
done
step "evaluate-seed$SEED" "$RUN/evaluate.log" ./run.sh python -m scripts.evaluate --run-dir "$RUN" --params mean \
    --set env.carracing_renderer=fast --episodes "$EPISODES" --seed "$SEED"
