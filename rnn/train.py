"""Training M on the series (paper, section 3.2; authors' code for the schedule).

Adam with lr_step = (lr_0 - min_lr) * decay^step + min_lr (the authors' Doom decay;
decay 1 keeps lr_0 for CarRacing), gradients clipped by value, `num_steps`
batches of windows (rnn/data.py). Logs a metrics line every `log_every` steps
(terminal, DIR/rnn/metrics.jsonl, TensorBoard under DIR/rnn/tensorboard/).
Checkpoints (weights, optimizer state and step, one atomic .npz) every
`checkpoint_every_minutes` and at the end; a rerun resumes from the last one
exactly (batches depend only on (seed, step)). The final weights go to
DIR/rnn/mdn_rnn.weights.h5.
"""

import time
from pathlib import Path

import keras
import tensorflow as tf
from tqdm import tqdm

from common.checkpoint import load_checkpoint, save_checkpoint
from common.files import append_jsonl, atomic_path, read_jsonl, write_jsonl
from common.summaries import write_scalars
from rnn.config import RnnConfig
from rnn.data import SeriesData
from rnn.model import MdnRnn, build_mdn_rnn
from rnn.store import WEIGHTS_NAME

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
    """M with its optimizer built (its state exists, so a checkpoint can be restored into it)."""
    keras.utils.set_random_seed(rnn_config.seed)
    model = build_mdn_rnn(rnn_config, z_size, action_size)
    schedule = DecayedLearningRate(rnn_config.learning_rate, rnn_config.learning_rate_decay, rnn_config.min_learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule, clipvalue=rnn_config.gradient_clip))
    model.optimizer.build(model.trainable_variables)
    return model


def train_rnn(series_dir: str | Path, rnn_dir: str | Path, rnn_config: RnnConfig, z_size: int, action_size: int, progress: bool = True) -> dict:
    """Train (or resume training) M; returns a summary of the run."""
    rnn_dir = Path(rnn_dir)
    data = SeriesData(series_dir, z_size, action_size)
    model = build_trainable(rnn_config, z_size, action_size)
    checkpoint_path = rnn_dir / "checkpoints" / CHECKPOINT_NAME
    metrics_path = rnn_dir / "metrics.jsonl"
    start_step = 0
    if checkpoint_path.exists():
        start_step = load_checkpoint(checkpoint_path, model)["step"]
        # metrics written after the checkpoint are replayed: drop them
        kept = [record for record in read_jsonl(metrics_path) if record.get("step", 0) <= start_step]
        write_jsonl(metrics_path, kept)
        print(f"resuming M training at step {start_step} from {checkpoint_path}")
    print(f"M: {model.count_params():,} parameters; {data.num_episodes} episodes, {data.num_steps:,} steps of series")

    train_function = tf.function(model.train_step)
    writer = tf.summary.create_file_writer(str(rnn_dir / "tensorboard"))
    last_checkpoint = time.monotonic()
    metrics = {}
    done_steps = start_step  # a checkpoint past num_steps (num_steps lowered on a rerun) keeps its own count
    steps = range(start_step, rnn_config.num_steps)
    for step in tqdm(steps, desc="train_rnn", disable=not progress, initial=start_step, total=rnn_config.num_steps):
        batch = data.batch(rnn_config.batch_size, rnn_config.sequence_length, rnn_config.seed, step, rnn_config.restart_input)
        metrics = train_function({key: tf.constant(value) for key, value in batch.items()})
        done_steps = step + 1
        if done_steps % rnn_config.log_every == 0 or done_steps == rnn_config.num_steps:
            record = {"step": done_steps, "learning_rate": float(model.optimizer.learning_rate.numpy())}
            record.update({name: float(value) for name, value in metrics.items()})
            append_jsonl(metrics_path, record)
            write_scalars(writer, {name: value for name, value in record.items() if name != "step"}, done_steps)
            tqdm.write("step {step}: ".format(**record) + ", ".join(f"{name} {value:.4f}" for name, value in record.items() if name != "step"))
            for tracker in model.metrics:
                tracker.reset_state()
        if time.monotonic() - last_checkpoint > 60 * rnn_config.checkpoint_every_minutes:
            save_checkpoint(checkpoint_path, model, {"step": done_steps})
            last_checkpoint = time.monotonic()
    save_checkpoint(checkpoint_path, model, {"step": done_steps})
    # The final file holds M's weights only (a compiled model would add the optimizer's state).
    final_model = build_mdn_rnn(rnn_config, z_size, action_size)
    final_model.set_weights(model.get_weights())
    with atomic_path(rnn_dir / WEIGHTS_NAME, suffix=".weights.h5") as temporary:
        final_model.save_weights(temporary)
    final = read_jsonl(metrics_path)
    return {"steps": done_steps, "parameters": model.count_params(), "final_loss": final[-1]["loss"] if final else None}
