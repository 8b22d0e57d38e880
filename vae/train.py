"""Training V on random-policy frames (paper, section 4.1 / appendix A.1), resumably.

Frames stream from the rollout files (vae/data.py); a held-out set of episodes
gives the validation loss after every epoch. A checkpoint (weights, optimizer
state, random state, counters: vae/checkpoint.py) is written every
`checkpoint_every_minutes`, at every epoch end, when training stops at
`max_train_steps` and on Ctrl-C; rerunning resumes from it, skipping the
batches of the current epoch already trained on (the order is seeded per epoch).

Outputs under vae_dir: checkpoints/last.npz, metrics.jsonl (one record per
epoch), tensorboard/, and the final encoder.weights.h5 and decoder.weights.h5
(+ discriminator.weights.h5 for the VAE/GAN).
"""

import math
import time
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf
from tqdm import tqdm

from common.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from common.files import append_jsonl, atomic_path, read_jsonl, write_jsonl
from common.summaries import write_scalars
from vae import data
from vae.build import build_model
from vae.model import FRAME_SHAPE

TENSORBOARD_EVERY_STEPS = 10


def checkpoint_path(vae_dir: str | Path) -> Path:
    return Path(vae_dir) / "checkpoints" / CHECKPOINT_NAME


def save_final_weights(model, vae_dir: str | Path) -> None:
    parts = {"encoder": model.encoder, "decoder": model.decoder}
    if hasattr(model, "discriminator"):
        parts["discriminator"] = model.discriminator
    for name, part in parts.items():
        with atomic_path(Path(vae_dir) / f"{name}.weights.h5", suffix=".weights.h5") as temporary:
            part.save_weights(temporary)


def compiled_steps(model):
    """train_step and test_step as graphs, traced once for any batch size."""
    signature = [tf.TensorSpec((None, *FRAME_SHAPE), tf.float32)]
    return tf.function(model.train_step, input_signature=signature), tf.function(model.test_step, input_signature=signature)


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
    vae_dir = Path(vae_dir)
    training_paths, validation_paths = data.split_episodes(data.rollout_files(rollouts_dir), vae_config.validation_fraction, vae_config.seed)
    frames_per_epoch = data.count_frames(training_paths)
    data.count_frames(validation_paths)  # a damaged held-out file stops us now, not after the first epoch
    steps_per_epoch = math.ceil(frames_per_epoch / vae_config.batch_size)

    keras.utils.set_random_seed(vae_config.seed)
    model = build_model(vae_config)
    train_function, test_function = compiled_steps(model)
    counters = {"step": 0, "epoch": 0, "step_in_epoch": 0, "metrics_records": 0}
    checkpoint = checkpoint_path(vae_dir)
    if checkpoint.exists():
        counters.update(load_checkpoint(checkpoint, model))
        log(f"resuming from {checkpoint}: epoch {counters['epoch'] + 1}, step {counters['step']}")
    metrics_path = vae_dir / "metrics.jsonl"
    # Lines appended after the checkpoint (a kill between an epoch's line and its checkpoint) come again: drop them.
    write_jsonl(metrics_path, read_jsonl(metrics_path)[: counters["metrics_records"]])
    writer = tf.summary.create_file_writer(str(vae_dir / "tensorboard"))
    last_checkpoint_time = time.monotonic()
    validation = {}

    def finished() -> bool:
        return vae_config.training_finished(counters["epoch"], counters["step"])

    def end_epoch(training: dict[str, float], complete: bool) -> None:
        nonlocal validation
        validation = evaluate(model, test_function, validation_paths, vae_config.batch_size) if validation_paths else {}
        record = {"epoch": counters["epoch"] + 1, "step": counters["step"], "complete_epoch": complete}
        record.update({f"train_{name}": value for name, value in training.items()})
        record.update({f"val_{name}": value for name, value in validation.items()})
        append_jsonl(metrics_path, record)
        counters["metrics_records"] += 1
        write_scalars(writer, validation, counters["step"], prefix="validation/")
        write_scalars(writer, training, counters["step"], prefix="train_epoch/")
        shown = " ".join(f"{name} {value:.2f}" for name, value in training.items())
        shown_validation = " ".join(f"{name} {value:.2f}" for name, value in validation.items()) or "(no held-out episodes)"
        suffix = "" if complete else " (stopped at vae.max_train_steps)"
        log(f"epoch {counters['epoch'] + 1}/{vae_config.epochs} step {counters['step']}: train {shown} | validation {shown_validation}{suffix}")

    try:
        while not finished():
            model.reset_metrics()
            batches = data.epoch_dataset(training_paths, vae_config.batch_size, vae_config.shuffle_buffer, vae_config.seed, counters["epoch"])
            bar = tqdm(
                total=steps_per_epoch,
                initial=counters["step_in_epoch"],
                desc=f"vae epoch {counters['epoch'] + 1}/{vae_config.epochs}",
                unit="batch",
                disable=not progress,
                leave=False,
            )
            for batch in data.iterate(batches.skip(counters["step_in_epoch"])):
                results = train_function(batch)
                counters["step"] += 1
                counters["step_in_epoch"] += 1
                bar.update(1)
                if counters["step"] % TENSORBOARD_EVERY_STEPS == 0:
                    bar.set_postfix(loss=f"{float(results['loss']):.1f}")
                    write_scalars(writer, results, counters["step"], prefix="train/")
                if time.monotonic() - last_checkpoint_time > 60 * vae_config.checkpoint_every_minutes:
                    save_checkpoint(checkpoint, model, counters)
                    last_checkpoint_time = time.monotonic()
                if finished():  # at vae.max_train_steps, even mid-epoch
                    break
            bar.close()
            training = _results(model)
            complete = counters["step_in_epoch"] >= steps_per_epoch
            end_epoch(training, complete)
            if complete:
                counters["epoch"] += 1
                counters["step_in_epoch"] = 0
            save_checkpoint(checkpoint, model, counters)
            last_checkpoint_time = time.monotonic()
    except KeyboardInterrupt:
        save_checkpoint(checkpoint, model, counters)  # the state between two steps is consistent
        raise
    finally:
        writer.close()

    if not validation and validation_paths:
        validation = evaluate(model, test_function, validation_paths, vae_config.batch_size)
    save_final_weights(model, vae_dir)
    return {
        "kind": vae_config.kind,
        "steps": counters["step"],
        "epochs_completed": counters["epoch"],
        "training_frames": frames_per_epoch,
        "validation_episodes": len(validation_paths),
        **{f"val_{name}": value for name, value in validation.items()},
    }
