"""Training V on random-policy frames (paper, section 4.1 / appendix A.1), resumably.

Frames stream from the rollout files (vae/data.py); a held-out set of episodes
gives the validation loss after every epoch. The loop is common/training.py's:
checkpoints (weights, optimizer state, random state, counters) every
`checkpoint_every_minutes`, at every epoch end, when training stops at
`max_train_steps` and on Ctrl-C; rerunning resumes from the last one, skipping
the batches of the current epoch already trained on (the order is seeded per
epoch). A non-finite loss or gradient stops training before the update
(TrainingDiverged) and leaves the last checkpoint as it was.

Outputs under vae_dir: checkpoints/last.npz, metrics.jsonl (one record per
epoch), tensorboard/, and the final encoder.weights.h5 and decoder.weights.h5
(+ discriminator.weights.h5 for the VAE/GAN).
"""

import math
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from common import training
from common.files import atomic_path
from common.layout import vae_weights_name
from env.frames import FRAME_SHAPE
from vae import data
from vae.build import build_model

TENSORBOARD_EVERY_STEPS = 10


def checkpoint_path(vae_dir: str | Path) -> Path:
    return training.checkpoint_path(vae_dir)


def save_final_weights(model, vae_dir: str | Path) -> None:
    for name, part in model.parts().items():
        with atomic_path(Path(vae_dir) / vae_weights_name(name), suffix=".weights.h5") as temporary:
            part.save_weights(temporary)


def compiled_steps(model, checked: bool = False):
    """train_step and test_step as graphs, traced once for any batch size.
    checked: the train step returns (results, finite), as common/training.py's loop needs."""
    signature = [tf.TensorSpec((None, *FRAME_SHAPE), tf.float32)]
    train_step = model.checked_train_step if checked else model.train_step
    return tf.function(train_step, input_signature=signature), tf.function(model.test_step, input_signature=signature)


def _results(model) -> dict[str, float]:
    return {tracker.name: float(tracker.result()) for tracker in model.metrics}


def evaluate(model, test_function, paths: list[Path], batch_size: int) -> dict[str, float]:
    """Mean losses over every frame of the given episodes (in file order)."""
    model.reset_metrics()
    for batch in data.iterate(data.frame_dataset(paths, batch_size, shuffle_buffer=1, seed=0, shuffle=False)):
        test_function(batch)
    return _results(model)


def train_vae(rollouts_dir: str | Path, vae_dir: str | Path, vae_config, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Train (or resume training) V; returns a summary with the final validation losses."""
    training_paths, validation_paths = data.split_episodes(data.rollout_files(rollouts_dir), vae_config.validation_fraction, vae_config.seed)
    frames_per_epoch = data.count_frames(training_paths)
    data.count_frames(validation_paths)  # a damaged held-out file stops us now, not after the first epoch

    keras.utils.set_random_seed(vae_config.seed)
    model = build_model(vae_config)
    train_function, test_function = compiled_steps(model, checked=True)
    validation = {}

    def batches(epoch: int, step_in_epoch: int):
        # The same (seed, epoch) gives the same order, so a resumed epoch skips exactly what was trained.
        dataset = data.epoch_dataset(training_paths, vae_config.batch_size, vae_config.shuffle_buffer, vae_config.seed, epoch)
        return data.iterate(dataset.skip(step_in_epoch))

    def log_step(progress: training.Progress, results: dict) -> training.Record:
        return training.Record(scalars={f"train/{name}": value for name, value in results.items()})

    def end_epoch(progress: training.Progress, complete: bool) -> training.Record:
        nonlocal validation
        epoch_training = _results(model)
        validation = evaluate(model, test_function, validation_paths, vae_config.batch_size) if validation_paths else {}
        record = {"epoch": progress.epoch + 1, "step": progress.step, "complete_epoch": complete}
        record.update({f"train_{name}": value for name, value in epoch_training.items()})
        record.update({f"val_{name}": value for name, value in validation.items()})
        scalars = {f"validation/{name}": value for name, value in validation.items()}
        scalars.update({f"train_epoch/{name}": value for name, value in epoch_training.items()})
        shown = " ".join(f"{name} {value:.2f}" for name, value in epoch_training.items())
        shown_validation = " ".join(f"{name} {value:.2f}" for name, value in validation.items()) or "(no held-out episodes)"
        suffix = "" if complete else " (stopped at vae.max_train_steps)"
        line = f"epoch {progress.epoch + 1}/{vae_config.epochs} step {progress.step}: train {shown} | validation {shown_validation}{suffix}"
        return training.Record(metrics=record, scalars=scalars, line=line)

    trainer = training.Trainer(
        name="train_vae",
        model=model,
        batches=batches,
        step=lambda batch, state: (*train_function(batch), state),
        steps_per_epoch=math.ceil(frames_per_epoch / vae_config.batch_size),
        epochs=vae_config.epochs,
        max_steps=vae_config.max_train_steps or None,  # the rule of vae_config.training_finished
        log_every=TENSORBOARD_EVERY_STEPS,
        log=log_step,
        end_epoch=end_epoch,
        # Frames of several files are interleaved and shuffled: a batch's files are not known, its position is.
        # Frames are bytes (never NaN), so a non-finite loss means the training diverged.
        diverged_hint="Lower vae.learning_rate (--set vae.learning_rate=...) and rerun the same command: it resumes from that checkpoint.",
    )
    final = training.run_training(trainer, vae_dir, vae_config.checkpoint_every_minutes, log=log, show_progress=progress)

    if not validation and validation_paths:
        validation = evaluate(model, test_function, validation_paths, vae_config.batch_size)
    save_final_weights(model, vae_dir)
    return {
        "kind": vae_config.kind,
        "steps": final.step,
        "epochs_completed": final.epoch,
        "training_frames": frames_per_epoch,
        "validation_episodes": len(validation_paths),
        **{f"val_{name}": value for name, value in validation.items()},
    }
