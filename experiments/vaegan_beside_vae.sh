#!/usr/bin/env bash
# V as a VAE/GAN (vae.kind=vaegan) on a run's own rollouts, beside that run's VAE: the same frames,
# the same epochs (vae.epochs, 1 as in the paper), the same held-out split (vae.seed,
# vae.validation_fraction). RUN must hold finished rollouts and V (experiments/takecover_paper.sh, or
# the rollouts of an agent's preset regenerated beside its V: docs/results.md, "What V learned");
# the VAE/GAN goes to RUN-vaegan, which links RUN's rollouts. Then check_vae on both draws each V's
# reconstructions of the same held-out frames and prints each one's held-out error
# (RUN-vaegan/compare.log; the VAE's picture is RUN-vaegan/vae_reconstructions.png). Every step
# resumes or is skipped when the script is rerun; each step's start and end go to RUN-vaegan/stages.log.
#
#   RUN=runs/takecover-paper nohup experiments/vaegan_beside_vae.sh > vaegan.log 2>&1 &
#
# The variables below can be set to try the script on smoke settings (tests/test_experiments.py).
set -u
CODE=${CODE:-$(cd "$(dirname "$0")/.." && pwd)}
SOURCE=${RUN:-$CODE/runs/takecover-paper}
# checked before common.sh, which would make the VAE/GAN's folder
for folder in rollouts vae; do
    if [ ! -f "$SOURCE/$folder/done.json" ]; then
        echo "error: $SOURCE/$folder/done.json is missing: RUN must hold a finished generate and train_vae (e.g. experiments/takecover_paper.sh with RUN=$SOURCE)" >&2
        exit 1
    fi
done
SOURCE=$(cd "$SOURCE" && pwd)  # the link holds an absolute path
RUN=$SOURCE-vaegan
source "$CODE/experiments/common.sh"

share "$SOURCE" "$RUN" rollouts
step train_vae "$RUN/train_vae.log" ./run.sh python -m scripts.train_vae --run-dir "$RUN" --set vae.kind=vaegan || exit 1
step check_vae-vaegan "$RUN/compare.log" ./run.sh python -m scripts.check_vae --run-dir "$RUN" || exit 1
step check_vae-vae "$RUN/compare.log" ./run.sh python -m scripts.check_vae --run-dir "$SOURCE" --out "$RUN/vae_reconstructions.png"
