#!/usr/bin/env bash
# The done rules compared from the same round (docs/results.md, "The done rules compared"): an
# exported TakeCover agent is copied to RUN/base and its M calibrated on fresh real episodes
# (calibrate --source play, skipped when the agent ships rnn/calibration.json). Each arm then
# trains C in that M's dream from the agent's mean for GENERATIONS generations with its own done
# rule (one iterate round's C step without new data), its V, M and first frames linked from base.
# Every controller, base's too, is scored on the same real episodes: the validation seeds 2^29 + k
# (the choice is made there), evaluate's seeds and SECOND_SEED + k, EPISODES each; RUN/compare.json
# holds each score, its difference from base on the same episodes (paired) and the arm chosen on
# validation. Every step resumes or is skipped when the script is rerun; times go to RUN/stages.log.
#
#   AGENT=path/to/round4-agent RUN=runs/done-rules nohup experiments/takecover_done_rules.sh > done_rules.log 2>&1 &
#
# The arms (ARMS, any of them): threshold (the authors' rule), sampled (death drawn from M's
# calibrated probability), sampled-shared (sampled, every candidate on the same dream episodes).
# Arguments go to every arm's train_controller. The variables below can be set to try the script
# on smoke settings (tests/test_experiments.py).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
AGENT=${AGENT:-$CODE/pretrained/doom}
RUN=${RUN:-$CODE/runs/takecover-done-rules}
ARMS=${ARMS:-threshold sampled sampled-shared}
GENERATIONS=${GENERATIONS:-50}
EPISODES=${EPISODES:-300}
SECOND_SEED=${SECOND_SEED:-2000000}
CALIBRATION_EPISODES=${CALIBRATION_EPISODES:-100}
arm_settings() {  # arm_settings ARM: the arm's train_controller settings, into the array `settings`
    case $1 in
        threshold) settings=(--set controller.done_rule=threshold) ;;
        sampled) settings=(--set controller.done_rule=sampled) ;;
        sampled-shared) settings=(--set controller.done_rule=sampled --set controller.shared_episodes=true) ;;
        *) echo "error: ARMS holds '$1': expected threshold, sampled or sampled-shared" >&2; return 2 ;;
    esac
}
# checked before common.sh, which would make RUN
for arm in $ARMS; do arm_settings "$arm" || exit 2; done
if [ ! -f "$AGENT/EXPORTED.json" ]; then
    echo "error: $AGENT/EXPORTED.json is missing: AGENT must be an exported TakeCover agent (python -m scripts.export_agent), e.g. pretrained/doom" >&2
    exit 1
fi
AGENT=$(cd "$AGENT" && pwd)
source "$CODE/experiments/common.sh"
BASE=$RUN/base

# a copy, not links: calibrate writes into base's rnn/, which the arms then share
[ -f "$BASE/EXPORTED.json" ] || { rm -rf "$BASE" && cp -r "$AGENT" "$BASE"; } || exit 1
if [ ! -f "$BASE/rnn/calibration.json" ]; then
    step calibrate "$RUN/calibrate.log" ./run.sh python -m scripts.calibrate --run-dir "$BASE" --source play \
        --episodes "$CALIBRATION_EPISODES" || exit 1
fi

score() {  # score DIR NAME: the mean on the validation seeds, evaluate's and the second set
    local dir=$1 name=$2
    [ -f "$dir/eval_validation/done.json" ] || step "evaluate-validation-$name" "$dir/evaluate.log" \
        ./run.sh python -m scripts.evaluate --run-dir "$dir" --params mean --episodes "$EPISODES" --validation || return 1
    [ -f "$dir/eval/done.json" ] || step "evaluate-$name" "$dir/evaluate.log" \
        ./run.sh python -m scripts.evaluate --run-dir "$dir" --params mean --episodes "$EPISODES" || return 1
    [ -f "$dir/eval_seed$SECOND_SEED/done.json" ] || step "evaluate-seed$SECOND_SEED-$name" "$dir/evaluate.log" \
        ./run.sh python -m scripts.evaluate --run-dir "$dir" --params mean --episodes "$EPISODES" --seed "$SECOND_SEED" || return 1
}

score "$BASE" base || exit 1
for arm in $ARMS; do
    arm_settings "$arm"
    dir=$RUN/$arm
    share "$BASE" "$dir" vae rnn series
    step "train-$arm" "$dir/train_controller.log" ./run.sh python -m scripts.train_controller --run-dir "$dir" \
        --set "controller.init_from=$BASE:mean" --set "controller.num_generations=$GENERATIONS" "${settings[@]}" "$@" || exit 1
    score "$dir" "$arm" || exit 1
done

chosen=$(./run.sh python - "$RUN" "$SECOND_SEED" base $ARMS <<'PY'
import json
import os
import sys

import numpy as np

run, second, names = sys.argv[1], sys.argv[2], sys.argv[3:]
sets = {"validation": "eval_validation", "evaluate": "eval", f"seed{second}": f"eval_seed{second}"}


def returns(name, folder):  # by seed, so that arms compare episode by episode
    with open(f"{run}/{name}/{folder}/returns.json") as file:
        return {episode["seed"]: episode["return"] for episode in json.load(file)["episodes"]}


scores = {}
for name in names:
    scores[name] = {}
    for label, folder in sets.items():
        own, base = returns(name, folder), returns("base", folder)
        values = np.array([own[seed] for seed in sorted(own)])
        difference = np.array([own[seed] - base[seed] for seed in sorted(own)])
        scores[name][label] = {
            "episodes": len(values),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "minus_base": float(difference.mean()),
            "minus_base_standard_error": float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else None,
        }
chosen = max(names, key=lambda name: scores[name]["validation"]["mean"])
with open(f"{run}/compare.json.tmp", "w") as file:
    json.dump({"scores": scores, "chosen_on_validation": chosen}, file, indent=1)
os.replace(f"{run}/compare.json.tmp", f"{run}/compare.json")
print(chosen)
PY
) || exit 1
echo "$(date -Is) chosen on validation: $chosen" >> "$RUN/stages.log"
