"""Train V, the ConvVAE (or the VAE/GAN with --set vae.kind=vaegan), on the frames of DIR/rollouts.

Paper, section 4.1 / appendix A.1. Writes DIR/vae/: encoder.weights.h5,
decoder.weights.h5, checkpoints/, metrics.jsonl, tensorboard/. Checkpoints every
vae.checkpoint_every_minutes and at each epoch end; rerunning the command resumes
from the last checkpoint, also after it finished if vae.epochs (or vae.max_train_steps)
was raised; --force starts over. Needs `scripts.generate` first.
"""

from scripts import stage


def validate(invocation) -> None:
    """Before anything is cleared or written: every rollout is readable, and so is the checkpoint a resume would load."""
    from env.rollouts import episode_length, list_episodes

    run_dir = invocation.run_dir
    run = invocation.layout
    rollouts = list_episodes(run.rollouts)
    if not rollouts:
        raise stage.StageError(f"{run.rollouts} holds no rollout files; run `{stage.command_for('generate', run_dir)}`")
    for path in rollouts:
        episode_length(path)
    if not invocation.arguments.force:
        stage.check_checkpoint(run.checkpoint("train_vae"), "train_vae", run_dir)


def main(argv=None):
    invocation = stage.parse("train_vae", __doc__, argv)
    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    stage.begin(invocation, validate=validate)
    if stage.done_path(run_dir, "train_vae").exists():
        previous = stage.require_done(run_dir, "train_vae").get("summary", {})
        if config.vae.training_finished(previous.get("epochs_completed", 0), previous.get("steps", 0)):
            print(f"train_vae: already finished in {run.vae} (use --force to train again, or --set vae.epochs=N to train longer)")
            return
        stage.clear_done(run_dir, "train_vae")  # more epochs or steps asked for: continue from the last checkpoint

    from vae.train import train_vae  # TensorFlow is imported only once the arguments are valid

    summary = train_vae(run.rollouts, run.vae, config.vae)
    stage.mark_done(run_dir, "train_vae", config, summary=summary)
    shown = f"validation loss {summary['val_loss']:.2f}" if "val_loss" in summary else "no held-out episodes"
    print(f"train_vae: done after {summary['steps']} steps, {shown}; weights in {run.vae}")


if __name__ == "__main__":
    stage.run_main(main)
