#!/usr/bin/env bash
# The CarRacing run of docs/results.md: the carracing-cpu preset on 2 cores, with the measured choice of
# CMA-ES's split of 64 episodes a generation. Every step resumes or is skipped when the script is
# rerun, so run it again after any stop; each step's start and end go to RUN/stages.log.
#
#   nohup experiments/carracing_cpu.sh > carracing_cpu.log 2>&1 &
#
# Steps: generate, V, check_vae + extract + M; then the comparison: 16 x 4 (in RUN) against
# 64 x 1 (in SIDE, which links RUN's rollouts, V, series and M), COMPARE_GENERATIONS generations
# each, one rank each, side by side, both scoring their mean on the same eval tracks at the last
# one (RUN/compare.json); the winner trains on with 2 ranks to GENERATIONS, then is scored on
# EPISODES fresh tracks of gymnasium's own CarRacing-v3, beside the random policy, and the dream
# video is made. The variables below can be set to try the script on smoke settings
# (tests/test_experiments.py).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
RUN=${RUN:-$CODE/runs/carracing-cpu}
SIDE=${SIDE:-$RUN-64x1}
PRESET=${PRESET:-carracing-cpu}
COMPARE_GENERATIONS=${COMPARE_GENERATIONS:-10}
# That run: 125 generations, past the preset's 100 (what fits 8 hours), to see whether more
# help (they did not; planned 150, cut at 125 with the mean's score level since generation 49).
GENERATIONS=${GENERATIONS:-125}
EVAL_EVERY=${EVAL_EVERY:-25}
EPISODES=${EPISODES:-100}
RANKS=${RANKS:-2}
source "$CODE/experiments/common.sh"

step generate "$RUN/generate.log" ./run.sh python -m scripts.generate --run-dir "$RUN" --preset "$PRESET" || exit 1
step train_vae "$RUN/train_vae.log" ./run.sh python -m scripts.train_vae --run-dir "$RUN" || exit 1
step check_vae+extract+train_rnn "$RUN/pipeline.log" ./run.sh pipeline --run-dir "$RUN" --only check_vae extract train_rnn || exit 1

# The comparison (once: compare.json records the scores and the winner). Both settings score their
# mean on the same tracks: the validation set (controller.eval_set=validation, carracing-cpu's), or
# fresh tracks that depend only on controller.seed and the generation.
if [ ! -f "$RUN/compare.json" ]; then
    share "$RUN" "$SIDE" rollouts vae series rnn
    compare=(--set "controller.num_generations=$COMPARE_GENERATIONS" --set "controller.eval_every=$COMPARE_GENERATIONS")
    step compare-16x4 "$RUN/compare.log" ./run.sh python -m scripts.train_controller --run-dir "$RUN" "${compare[@]}" \
        --set controller.population_size=16 --set controller.rollouts_per_candidate=4 &
    step compare-64x1 "$SIDE/compare.log" ./run.sh python -m scripts.train_controller --run-dir "$SIDE" "${compare[@]}" \
        --set controller.population_size=64 --set controller.rollouts_per_candidate=1 &
    wait
    ./run.sh python - "$RUN" "$SIDE" "$COMPARE_GENERATIONS" <<'PY' || exit 1
import json
import sys

runs, last = sys.argv[1:3], int(sys.argv[3]) - 1
scores = {}
for run in runs:
    with open(f"{run}/controller/metrics.jsonl") as lines:
        scored = [record for record in map(json.loads, lines) if record["generation"] == last and "mean_params_return" in record]
    if not scored:
        sys.exit(f"{run}: generation {last} has no score of the mean yet: rerun this script")
    scores[run] = {"mean": scored[0]["mean_params_return"], "std": scored[0]["mean_params_return_std"]}
winner = max(runs, key=lambda run: scores[run]["mean"])
with open(f"{runs[0]}/compare.json", "w") as file:
    json.dump({"generation": last, "scores": scores, "winner": winner}, file, indent=1)
PY
fi
WINNER=$(./run.sh python -c "import json, sys; print(json.load(open(sys.argv[1]))['winner'])" "$RUN/compare.json") || exit 1
echo "$(date -Is) winner $WINNER" >> "$RUN/stages.log"

step train_controller "$WINNER/pipeline.log" ./run.sh pipeline --run-dir "$WINNER" --ranks "$RANKS" --only train_controller \
    --set "controller.num_generations=$GENERATIONS" --set "controller.eval_every=$EVAL_EVERY" || exit 1
stock=(--set env.carracing_renderer=stock --episodes "$EPISODES")
step evaluate "$WINNER/evaluate.log" ./run.sh python -m scripts.evaluate --run-dir "$WINNER" "${stock[@]}" || exit 1
step evaluate-random "$WINNER/evaluate.log" ./run.sh python -m scripts.evaluate --run-dir "$WINNER" --params random "${stock[@]}" || exit 1
step dream "$WINNER/pipeline.log" ./run.sh pipeline --run-dir "$WINNER" --only dream
