"""Training M on the series (paper, section 3.2; authors' code for the schedule).

Adam with lr_step = (lr_0 - min_lr) * decay^step + min_lr (the authors' Doom decay;
decay 1 keeps lr_0 for CarRacing), gradients clipped by value, `epochs` passes
over every step of the training episodes in windows whose LSTM state is carried
from one to the next (rnn/data.py). A `validation_fraction` of the episodes
(split_series_paths) is never trained on; its z and done losses are measured at
each epoch end. Logs a metrics line every `log_every` steps (terminal,
DIR/rnn/metrics.jsonl, TensorBoard under DIR/rnn/tensorboard/). Checkpoints
(weights, optimizer state, the carried state, step, epoch and window: one atomic
.npz) every `checkpoint_every_minutes` and at the end; a rerun resumes from the
last one exactly (a batch depends only on (seed, epoch, window)). The final
weights go to DIR/rnn/mdn_rnn.weights.h5.
"""

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common.checkpoint import load_checkpoint, save_checkpoint
from common.errors import ArtifactError
from common.files import append_jsonl, atomic_path, read_jsonl, write_jsonl
from common.summaries import write_scalars
from rnn.config import RnnConfig
from rnn.data import SeriesData, WindowStream, split_series_paths
from rnn.model import MdnRnn, build_mdn_rnn
from rnn.store import WEIGHTS_NAME
from vae.series import list_series

CHECKPOINT_NAME = "checkpoint.npz"


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
    """M with its optimizer and carried state built (they exist, so a checkpoint can be restored into it)."""
    keras.utils.set_random_seed(rnn_config.seed)
    model = build_mdn_rnn(rnn_config, z_size, action_size)
    model.add_carried_state(rnn_config.batch_size)
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
    """The compiled train step."""
    return compile_step(model.train_step)


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


def train_rnn(series_dir: str | Path, rnn_dir: str | Path, rnn_config: RnnConfig, z_size: int, action_size: int, progress: bool = True) -> dict:
    """Train (or resume training) M; returns a summary of the run."""
    rnn_dir = Path(rnn_dir)
    paths = list_series(series_dir)
    if not paths:
        raise ArtifactError(f"{series_dir} holds no series files; run `python -m scripts.extract --run-dir {Path(series_dir).parent}` first")
    training_paths, validation_paths = split_series_paths(paths, rnn_config.validation_fraction, rnn_config.seed)
    stream = lambda data: WindowStream(data, rnn_config.batch_size, rnn_config.sequence_length, rnn_config.seed, rnn_config.restart_input)  # noqa: E731
    windows = stream(SeriesData(training_paths, z_size, action_size))
    validation = stream(SeriesData(validation_paths, z_size, action_size)) if validation_paths else None
    windows_per_epoch = [windows.num_windows(epoch) for epoch in range(rnn_config.epochs)]
    model = build_trainable(rnn_config, z_size, action_size)
    checkpoint_path = rnn_dir / "checkpoints" / CHECKPOINT_NAME
    metrics_path = rnn_dir / "metrics.jsonl"
    step, epoch, first_window = 0, 0, 0  # updates done; the next batch to train is window `first_window` of `epoch`
    if checkpoint_path.exists():
        counters = load_checkpoint(checkpoint_path, model)
        step, epoch, first_window = counters["step"], counters["epoch"], counters["window"]
        # metrics written after the checkpoint are replayed: drop them (an epoch's validation
        # line belongs to the epoch it ends)
        kept = [record for record in read_jsonl(metrics_path) if (record["epoch"] <= epoch if "epoch" in record else record.get("step", 0) <= step)]
        write_jsonl(metrics_path, kept)
        print(f"resuming M training at step {step} (epoch {epoch + 1}, window {first_window + 1}) from {checkpoint_path}")
    data = windows.data
    print(
        f"M: {count_trainable(model):,} parameters; {data.num_episodes} training episodes ({data.num_steps:,} steps), "
        f"{len(validation_paths)} held out; {windows_per_epoch[0] if windows_per_epoch else 0} windows of "
        f"{rnn_config.batch_size} x {rnn_config.sequence_length} per epoch ({windows.padding_fraction(0):.1%} padding)"
    )

    train_function = training_function(model)
    writer = tf.summary.create_file_writer(str(rnn_dir / "tensorboard"))
    last_checkpoint = time.monotonic()
    bar = tqdm(desc="train_rnn", disable=not progress, initial=min(step, sum(windows_per_epoch)), total=sum(windows_per_epoch))

    def log(record: dict) -> None:
        append_jsonl(metrics_path, record)
        write_scalars(writer, {name: value for name, value in record.items() if name not in ("step", "epoch")}, record["step"])
        tqdm.write(f"step {record['step']}: " + ", ".join(f"{name} {value:.4f}" for name, value in record.items() if name != "step"))

    while epoch < rnn_config.epochs:
        for index in range(first_window, windows_per_epoch[epoch]):
            batch = windows.batch(epoch, index)
            metrics = train_function({key: tf.constant(value) for key, value in batch.items()})
            step += 1
            bar.update(1)
            if step % rnn_config.log_every == 0 or index + 1 == windows_per_epoch[epoch]:
                record = {"step": step, "learning_rate": float(model.optimizer.learning_rate.numpy())}
                record.update({name: float(value) for name, value in metrics.items()})
                log(record)
                for tracker in model.metrics:
                    tracker.reset_state()
            if time.monotonic() - last_checkpoint > 60 * rnn_config.checkpoint_every_minutes:
                save_checkpoint(checkpoint_path, model, {"step": step, "epoch": epoch, "window": index + 1})
                last_checkpoint = time.monotonic()
        epoch, first_window = epoch + 1, 0
        if validation is not None:
            log({"step": step, "epoch": epoch, **validation_losses(model, validation)})
        save_checkpoint(checkpoint_path, model, {"step": step, "epoch": epoch, "window": 0})
        last_checkpoint = time.monotonic()
    bar.close()
    # The final file holds M's weights only (not the optimizer's or the carried state).
    final_model = build_mdn_rnn(rnn_config, z_size, action_size)
    final_model.set_weights(model.inference_weights())
    with atomic_path(rnn_dir / WEIGHTS_NAME, suffix=".weights.h5") as temporary:
        final_model.save_weights(temporary)
    records = read_jsonl(metrics_path)
    training_records = [record for record in records if "loss" in record]
    validation_records = [record for record in records if "epoch" in record]
    return {
        "steps": step,
        "epochs": epoch,
        "parameters": count_trainable(model),
        "final_loss": training_records[-1]["loss"] if training_records else None,
        "validation_z_loss": validation_records[-1]["validation_z_loss"] if validation_records else None,
    }


def count_trainable(model: MdnRnn) -> int:
    return int(sum(np.prod(variable.shape) for variable in model.trainable_variables))
