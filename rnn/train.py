"""Training M on the series (paper, section 3.2; authors' code for the schedule).

Adam with lr_step = (lr_0 - min_lr) * decay^step + min_lr (the authors' Doom decay;
decay 1 keeps lr_0 for CarRacing), gradients clipped by value, `epochs` passes
over every step of the training episodes in windows whose LSTM state is carried
from one to the next (rnn/data.py, docs/design.md section 5 item 11). A
`validation_fraction` of the episodes (split_series_paths) is never trained on;
its z and done losses are measured at each epoch's end.

The loop is common/training.py's: a metrics line every `log_every` steps
(terminal, DIR/rnn/metrics.jsonl, TensorBoard under DIR/rnn/tensorboard/);
checkpoints (weights, optimizer state, the carried LSTM state and the counters:
one atomic DIR/rnn/checkpoints/last.npz) every `checkpoint_every_minutes`, at
every epoch end, at the end and on Ctrl-C; a rerun resumes exactly (a batch
depends only on (seed, epoch, window)). A non-finite loss or gradient stops
training before the update (TrainingDiverged, naming the series files of the
batch). The final weights go to DIR/rnn/mdn_rnn.weights.h5, then (with a done head)
M's done head calibrated on the held-out episodes to DIR/rnn/calibration.json
(rnn/calibration.py).
"""

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common import training
from common.errors import ArtifactError
from common.files import atomic_path, read_jsonl
from common.layout import CHECKPOINTS_FOLDER, METRICS_NAME
from common.layout import command as stage_command
from rnn.config import RnnConfig
from rnn.data import SeriesData, WindowStream, split_series_paths
from rnn.model import MdnRnn, build_mdn_rnn
from rnn.store import WEIGHTS_NAME
from vae.series import list_series

# Where M's checkpoint lived when it trained on random windows (num_steps): not resumable now.
RANDOM_WINDOWS_CHECKPOINT = "checkpoint.npz"


@keras.saving.register_keras_serializable(package="world_models")
class DecayedLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """lr = (lr_0 - min_lr) * decay^step + min_lr (authors' Doom code): starts at lr_0, tends to min_lr."""

    def __init__(self, initial: float, decay: float, minimum: float):
        self.initial, self.decay, self.minimum = initial, decay, minimum

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        return (self.initial - self.minimum) * tf.pow(self.decay, step) + self.minimum

    def get_config(self):
        return {"initial": self.initial, "decay": self.decay, "minimum": self.minimum}


def build_trainable(rnn_config: RnnConfig, z_size: int, action_size: int) -> MdnRnn:
    """M with its optimizer built (its state exists, so a checkpoint can be restored into it)."""
    keras.utils.set_random_seed(rnn_config.seed)
    model = build_mdn_rnn(rnn_config, z_size, action_size)
    schedule = DecayedLearningRate(rnn_config.learning_rate, rnn_config.learning_rate_decay, rnn_config.min_learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule, clipvalue=rnn_config.gradient_clip))
    model.optimizer.build(model.trainable_variables)
    return model


def compile_step(function):
    """M's train step compiled with XLA (jit_compile), which fuses each LSTM step's elementwise work:
    at Doom size 0.67 of the matmul roofline against 0.46 without it and 0.27 for the autodiff loop
    (python -m scripts.benchmark rnn, the least contended run); tested to train like the reference."""
    return tf.function(function, jit_compile=True)


def training_function(model: MdnRnn):
    """The compiled train step: (batch, h, c) -> (running losses, finite, h, c)."""
    return compile_step(model.checked_train_step)


def validation_losses(model: MdnRnn, windows: WindowStream) -> dict:
    """Mean z loss (per step with a next frame) and done loss (per step) over every validation
    window, the state carried through each row as in training, from a fixed draw of z (epoch 0)."""
    evaluate = tf.function(model.window_losses)
    h = c = tf.zeros([windows.batch_size, model.hidden_size])
    sums = {}
    for index in range(windows.num_windows(0)):
        batch = windows.batch(0, index)
        losses, h, c = evaluate({key: tf.constant(value) for key, value in batch.items()}, h, c)
        for name, weight in (
            ("z_loss", float(batch["z_mask"].sum())),
            ("done_loss", float(batch["step_mask"].sum())),
            ("reward_loss", float(batch["step_mask"].sum())),
        ):
            if name in losses:
                total, count = sums.get(name, (0.0, 0.0))
                sums[name] = (total + float(losses[name]) * weight, count + weight)
    return {f"validation_{name}": total / max(count, 1.0) for name, (total, count) in sums.items()}


# -- M's part of the shared loop: epochs of carried windows ----------------------------------


def window_trainer(model: MdnRnn, windows: WindowStream, validation: WindowStream | None, training_paths: list[Path], rnn_config: RnnConfig) -> dict:
    """The Trainer fields for epochs over the stream of windows, the LSTM state (h, c) carried
    from window to window (zero at an epoch's start: every row begins an episode there)."""
    train_function = training_function(model)
    zeros = np.zeros((rnn_config.batch_size, model.hidden_size), np.float32)

    def batches(epoch: int, step_in_epoch: int):
        for index in range(step_in_epoch, windows.num_windows(epoch)):
            yield {key: tf.constant(value) for key, value in windows.batch(epoch, index).items()}

    def step(batch, state):
        results, finite, h, c = train_function(batch, tf.constant(state["h"]), tf.constant(state["c"]))
        return results, finite, {"h": h.numpy(), "c": c.numpy()}

    def describe_batch(progress: training.Progress, batch) -> str:
        episodes = windows.episodes_in_window(progress.epoch, progress.step_in_epoch)
        return "windows from the series files " + ", ".join(training_paths[episode].name for episode in episodes)

    def log(progress: training.Progress, results: dict) -> training.Record:
        values = {"learning_rate": float(model.optimizer.learning_rate.numpy())}
        values.update({name: float(value) for name, value in results.items()})
        for tracker in model.metrics:  # each line averages the steps since the previous one
            tracker.reset_state()
        line = f"step {progress.step}: " + ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        return training.Record(metrics={"step": progress.step, **values}, scalars=values, line=line)

    def end_epoch(progress: training.Progress, complete: bool) -> training.Record | None:
        if validation is None or not complete:
            return None
        values = validation_losses(model, validation)
        line = f"epoch {progress.epoch + 1}/{rnn_config.epochs}: " + ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        return training.Record(metrics={"step": progress.step, "epoch": progress.epoch + 1, **values}, scalars=values, line=line)

    return {
        "batches": batches,
        "step": step,
        "steps_per_epoch": windows.num_windows,
        "epochs": rnn_config.epochs,
        "initial_state": lambda epoch: {"h": zeros, "c": zeros},
        "describe_batch": describe_batch,
        "log": log,
        "end_epoch": end_epoch,
        "log_every": rnn_config.log_every,
    }


# -- training -----------------------------------------------------------------------------


def refuse_random_windows_checkpoint(rnn_dir: Path, run_dir: Path) -> None:
    """An earlier version's checkpoint (random windows, rnn.num_steps) in rnn_dir cannot continue as epochs."""
    path = Path(rnn_dir) / CHECKPOINTS_FOLDER / RANDOM_WINDOWS_CHECKPOINT
    if path.exists():
        raise ArtifactError(
            f"{path}: a checkpoint of M's earlier random-window training (rnn.num_steps), which cannot continue as "
            f"epochs over the stream of windows; rerun `{stage_command('train_rnn', run_dir, '--force')}` to train M again"
        )


def train_rnn(
    series_dir: str | Path | list,
    rnn_dir: str | Path,
    rnn_config: RnnConfig,
    z_size: int,
    action_size: int,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
    initial_weights: str | Path | None = None,
) -> dict:
    """Train (or resume training) M; returns a summary of the run.

    series_dir: a folder of series files, or a list of such folders (M's data is all of them).
    initial_weights: an mdn_rnn.weights.h5 to start from instead of the seeded initialisation
    (a fine-tune), used only when rnn_dir holds no checkpoint to resume."""
    rnn_dir = Path(rnn_dir)
    refuse_random_windows_checkpoint(rnn_dir, rnn_dir.parent)
    folders = series_dir if isinstance(series_dir, list) else [series_dir]
    paths = [path for folder in folders for path in list_series(folder)]
    if not paths:
        raise ArtifactError(f"{series_dir} holds no series files; run `{stage_command('extract', Path(series_dir).parent)}` first")
    training_paths, validation_paths = split_series_paths(paths, rnn_config.validation_fraction, rnn_config.seed)
    stream = lambda data: WindowStream(data, rnn_config.batch_size, rnn_config.sequence_length, rnn_config.seed, rnn_config.restart_input)  # noqa: E731
    windows = stream(SeriesData(training_paths, z_size, action_size))
    validation = stream(SeriesData(validation_paths, z_size, action_size)) if validation_paths else None
    model = build_trainable(rnn_config, z_size, action_size)
    if initial_weights is not None and not training.checkpoint_path(rnn_dir).exists():
        start = build_mdn_rnn(rnn_config, z_size, action_size)
        start.load_weights(initial_weights)
        model.set_weights(start.get_weights())
    data = windows.data
    log(
        f"M: {count_trainable(model):,} parameters; {data.num_episodes} training episodes ({data.num_steps:,} steps), "
        f"{len(validation_paths)} held out; {windows.num_windows(0)} windows of {rnn_config.batch_size} x {rnn_config.sequence_length} "
        f"per epoch ({windows.padding_fraction(0):.1%} padding)"
    )
    trainer = training.Trainer(
        name="train_rnn",
        model=model,
        diverged_hint="Lower rnn.learning_rate or rnn.gradient_clip (--set rnn.learning_rate=...) and rerun the same command: it resumes from that checkpoint.",
        **window_trainer(model, windows, validation, training_paths, rnn_config),
    )
    final = training.run_training(trainer, rnn_dir, rnn_config.checkpoint_every_minutes, log=log, show_progress=progress)
    # The final file holds M's weights only (a compiled model would add the optimizer's state).
    final_model = build_mdn_rnn(rnn_config, z_size, action_size)
    final_model.set_weights(model.get_weights())
    with atomic_path(rnn_dir / WEIGHTS_NAME, suffix=".weights.h5") as temporary:
        final_model.save_weights(temporary)
    calibration = write_done_calibration(final_model, validation_paths, rnn_dir, log)
    records = read_jsonl(rnn_dir / METRICS_NAME)
    training_records = [record for record in records if "loss" in record]
    validation_records = [record for record in records if "validation_z_loss" in record]
    return {
        "steps": final.step,
        "epochs": final.epoch,
        "parameters": count_trainable(model),
        "final_loss": training_records[-1]["loss"] if training_records else None,
        "validation_z_loss": validation_records[-1]["validation_z_loss"] if validation_records else None,
        **({"calibration": calibration} if calibration is not None else {}),
    }


def write_done_calibration(model: MdnRnn, validation_paths: list[Path], rnn_dir: Path, log: Callable[[str], None]) -> dict | None:
    """DIR/rnn/calibration.json fit on the held-out episodes (rnn/calibration.py), for an M with a
    done head; its summary, or a note when there is nothing to fit on (then no file is written)."""
    if not model.predict_done:
        return None
    from rnn.calibration import CALIBRATION_NAME, NothingToFit, calibrate_series, command, summary, write_calibration

    try:
        if not validation_paths:
            raise NothingToFit("no series episode is held out (rnn.validation_fraction 0)")
        record = calibrate_series(model, validation_paths, rnn_dir)
    except NothingToFit as error:
        (rnn_dir / CALIBRATION_NAME).unlink(missing_ok=True)  # none is better than one made for other weights
        note = f"no {CALIBRATION_NAME}: {error}; `{command(rnn_dir.parent)} --source play` fits it on freshly played episodes"
        log(f"M's done head: {note}")
        return {"skipped": True, "note": note}
    path = write_calibration(rnn_dir, record)
    log(f"M's done head calibrated: {summary(record)} -> {path}")
    return {key: record[key] for key in ("offset", "scale", "uses_scale", "death_rate")}


def count_trainable(model: MdnRnn) -> int:
    return int(sum(np.prod(variable.shape) for variable in model.trainable_variables))
