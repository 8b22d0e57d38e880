"""Train M, the MDN-RNN, on DIR/series (paper, section 3.2).

Reads DIR/series/*.npz (made by `scripts.extract`), trains for rnn.epochs
passes over its episodes (less a held-out rnn.validation_fraction), writes DIR/rnn/mdn_rnn.weights.h5, checkpoints, metrics.jsonl and
TensorBoard logs. Rerunning resumes from the last checkpoint, also after it finished if
rnn.epochs was raised (a finished run is otherwise left as it is); --force starts over.
"""

from scripts import stage


def validate(invocation) -> None:
    """Before anything is cleared or written: every series file fits the config, and the checkpoint a resume would load is readable."""
    from vae.series import list_series, read_series

    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    series = list_series(run.series)
    if not series:
        raise stage.StageError(f"{run.series} holds no series files; run `{stage.command_for('extract', run_dir)}`")
    for path in series:
        read_series(path, config.vae.z_size, config.env.action_size)
    if not invocation.arguments.force:
        from rnn.train import refuse_random_windows_checkpoint

        refuse_random_windows_checkpoint(run.rnn, run_dir)
        stage.check_checkpoint(run.checkpoint("train_rnn"), "train_rnn", run_dir)


def main(argv=None):
    invocation = stage.parse("train_rnn", __doc__, argv)
    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    stage.begin(invocation, validate=validate)

    if stage.done_path(run_dir, "train_rnn").exists() and run.rnn_weights.exists():
        epochs_done = stage.require_done(run_dir, "train_rnn").get("summary", {}).get("epochs", 0)
        if epochs_done >= config.rnn.epochs:
            print(f"train_rnn: already finished in {run.rnn} (use --force to train again, or --set rnn.epochs=N to train longer)")
            return
        stage.clear_done(run_dir, "train_rnn")  # more epochs asked for: continue from the last checkpoint
    from rnn.train import train_rnn

    summary = train_rnn(run.series, run.rnn, config.rnn, config.vae.z_size, config.env.action_size)
    stage.mark_done(run_dir, "train_rnn", config, summary=summary)
    print(f"train_rnn done: {run.rnn_weights} (final loss {summary['final_loss']})")


if __name__ == "__main__":
    stage.run_main(main)
