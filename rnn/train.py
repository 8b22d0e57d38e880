"""Training M on the series (paper, section 3.2; authors' code for the schedule).

Adam with lr_step = (lr_0 - min_lr) * decay^step + min_lr (the authors' Doom decay;
decay 1 keeps lr_0 for CarRacing), gradients clipped by value, `num_steps`
batches of windows (rnn/data.py). The loop is common/training.py's: a metrics line
every `log_every` steps (terminal, DIR/rnn/metrics.jsonl, TensorBoard under
DIR/rnn/tensorboard/); checkpoints (weights, optimizer state, counters: one
atomic DIR/rnn/checkpoints/last.npz) every `checkpoint_every_minutes`, at the end
and on Ctrl-C; a rerun resumes from the last one exactly (batches depend only on
(seed, step)). A non-finite loss or gradient stops training before the update
(TrainingDiverged, naming the series files of the batch) and leaves the last
checkpoint as it was. The final weights go to DIR/rnn/mdn_rnn.weights.h5.
"""

from collections.abc import Callable
from itertools import count
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common import training
from common.files import atomic_path, read_jsonl
from rnn.config import RnnConfig
from rnn.data import SeriesData
from rnn.model import MdnRnn, build_mdn_rnn
from rnn.store import WEIGHTS_NAME


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


# -- M's batches and metrics lines: `num_steps` batches of random windows (rnn/data.py) --


def random_windows(data: SeriesData, model: MdnRnn, rnn_config: RnnConfig) -> dict:
    """The Trainer fields for batches of random windows: one endless epoch, batch k a pure
    function of (seed, k), no state carried between batches."""
    batch_size, length, seed = rnn_config.batch_size, rnn_config.sequence_length, rnn_config.seed

    def batches(epoch: int, step_in_epoch: int):
        for step in count(step_in_epoch):
            yield {key: tf.constant(value) for key, value in data.batch(batch_size, length, seed, step, rnn_config.restart_input).items()}

    def describe_batch(progress: training.Progress, batch) -> str:
        # The episodes are SeriesData.batch's first draw from its generator for this step.
        rng = np.random.default_rng([seed, progress.step_in_epoch])
        episodes = sorted(set(rng.choice(data.num_episodes, size=batch_size, p=data.lengths / data.num_steps).tolist()))
        return f"windows from the series files {', '.join(str(data.paths[episode]) for episode in episodes)}"

    def log(progress: training.Progress, results: dict) -> training.Record:
        values = {"learning_rate": float(model.optimizer.learning_rate.numpy())}
        values.update({name: float(value) for name, value in results.items()})
        for tracker in model.metrics:  # each line averages the steps since the previous one
            tracker.reset_state()
        line = f"step {progress.step}: " + ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        return training.Record(metrics={"step": progress.step, **values}, scalars=values, line=line)

    return {"batches": batches, "describe_batch": describe_batch, "log": log, "max_steps": rnn_config.num_steps, "log_every": rnn_config.log_every}


# -- training -----------------------------------------------------------------------------


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

    series_dir: a folder of series, or a list of folders and files. initial_weights: an
    mdn_rnn.weights.h5 to start from (a fine-tune) when rnn_dir holds no checkpoint to resume."""
    rnn_dir = Path(rnn_dir)
    data = SeriesData(series_dir, z_size, action_size)
    model = build_trainable(rnn_config, z_size, action_size)
    if initial_weights is not None and training.restore_path(rnn_dir) is None:
        start = build_mdn_rnn(rnn_config, z_size, action_size)
        start.load_weights(initial_weights)
        model.set_weights(start.get_weights())
    log(f"M: {model.count_params():,} parameters; {data.num_episodes} episodes, {data.num_steps:,} steps of series")
    train_function = tf.function(model.checked_train_step)
    trainer = training.Trainer(
        name="train_rnn",
        model=model,
        step=lambda batch, state: (*train_function(batch), state),
        diverged_hint="Lower rnn.learning_rate or rnn.gradient_clip (--set rnn.learning_rate=...) and rerun the same command: it resumes from that checkpoint.",
        **random_windows(data, model, rnn_config),
    )
    # A checkpoint past num_steps (num_steps lowered on a rerun) trains nothing and keeps its own count.
    final = training.run_training(trainer, rnn_dir, rnn_config.checkpoint_every_minutes, log=log, show_progress=progress)
    # The final file holds M's weights only (a compiled model would add the optimizer's state).
    final_model = build_mdn_rnn(rnn_config, z_size, action_size)
    final_model.set_weights(model.get_weights())
    with atomic_path(rnn_dir / WEIGHTS_NAME, suffix=".weights.h5") as temporary:
        final_model.save_weights(temporary)
    records = read_jsonl(rnn_dir / training.METRICS_NAME)
    return {"steps": final.step, "parameters": model.count_params(), "final_loss": records[-1]["loss"] if records else None}
