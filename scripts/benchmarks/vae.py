"""Benchmark: V's training input pipeline and series extraction (docs/design.md section 6).

Training (this process, TensorFlow's default threads: training is one process
and may use every core):
  resident   train steps on one batch already in memory (the compute limit)
  streaming  train steps on batches from vae.data's pipeline reading rollout
             files from disk (decompress, interleave, shuffle, convert)
  ratio      streaming / resident frames per second. Goal >= 0.9: the
             pipeline keeps up with the model.
The two alternate in short rounds (load from other processes hits both alike).

Extraction (a child process limited to one thread, as the goal is per core):
  encoder    encode_frames on resident uint8 frames (the batched encoder pass)
  extract    vae.extract.extract_series end to end: read, validate, encode, write
Goal: >= 2,000 frames/s on one core.

Rollouts are synthetic (a moving square on a textured, noisy background, so
they compress about as badly as real frames) unless --rollouts DIR is given.

    python -m scripts.benchmark vae [--steps N] [--batch-size B] [--z-size Z] [--rollouts DIR]
"""

import argparse
import concurrent.futures
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from common.layout import RunLayout

TRAINING_GOAL = 0.9
EXTRACTION_GOAL = 2000.0


def write_benchmark_rollouts(folder: Path, num_episodes: int, num_steps: int, seed: int = 0) -> None:
    from env.frames import FRAME_SHAPE
    from env.rollouts import episode_path, write_rollout

    rng = np.random.default_rng(seed)
    for episode in range(num_episodes):
        background = rng.integers(0, 200, size=(1, *FRAME_SHAPE))
        frames = np.repeat(background, num_steps, axis=0) + rng.integers(0, 24, size=(num_steps, *FRAME_SHAPE))
        for step in range(num_steps):
            row, column = (3 * step + episode) % 48, (2 * step + 5 * episode) % 48
            frames[step, row : row + 16, column : column + 16] = (230, 200, 60)
        write_rollout(
            episode_path(folder, episode),
            obs=np.clip(frames, 0, 255),
            action=rng.uniform(-1, 1, (num_steps, 3)),
            reward=np.zeros(num_steps),
            done=np.zeros(num_steps, bool),
        )


def _time_steps(train_function, batches, num_steps: int) -> float:
    """Seconds for num_steps train steps; the result of the last is read back, so all work is done."""
    start = time.perf_counter()
    results = None
    for _, batch in zip(range(num_steps), batches, strict=False):
        results = train_function(batch)
    float(results["loss"])
    return time.perf_counter() - start


def measure_training(rollouts: Path, num_steps: int, batch_size: int, z_size: int, num_rounds: int = 4) -> dict:
    import tensorflow as tf

    from env.frames import FRAME_SHAPE
    from vae import data
    from vae.build import build_model
    from vae.config import VaeConfig
    from vae.train import compiled_steps

    config = VaeConfig(z_size=z_size, batch_size=batch_size)
    model = build_model(config)
    train_function, _ = compiled_steps(model)
    paths = data.rollout_files(rollouts)
    resident_batch = tf.random.uniform((batch_size, *FRAME_SHAPE), seed=0)

    def resident_batches():
        while True:
            yield resident_batch

    def streaming_batches():
        epoch = 0
        while True:  # as many epochs as the steps need
            yield from data.iterate(data.epoch_dataset(paths, batch_size, config.shuffle_buffer, seed=0, epoch=epoch))
            epoch += 1

    resident = resident_batches()
    streaming = streaming_batches()
    _time_steps(train_function, resident, 3)  # trace and warm up
    _time_steps(train_function, streaming, 3)  # fill the pipeline's buffers, as in a long run
    # Alternate short rounds, so a change in the machine's load hits both variants alike.
    resident_seconds = streaming_seconds = 0.0
    for _ in range(num_rounds):
        resident_seconds += _time_steps(train_function, resident, num_steps // num_rounds)
        streaming_seconds += _time_steps(train_function, streaming, num_steps // num_rounds)
    frames = (num_steps // num_rounds) * num_rounds * batch_size
    resident_rate, streaming_rate = frames / resident_seconds, frames / streaming_seconds
    return {"resident": resident_rate, "streaming": streaming_rate, "ratio": streaming_rate / resident_rate}


def measure_extraction(rollouts: str, z_size: int, batch_size: int) -> dict:
    """Run in a child process: one thread for TensorFlow, BLAS and OpenCV."""
    from scripts.stage import limit_threads

    limit_threads(1)
    from env.rollouts import list_episodes, read_rollout
    from vae.encode import encode_frames
    from vae.extract import extract_series
    from vae.model import build_encoder

    encoder = build_encoder(z_size)
    paths = list_episodes(rollouts)
    frames = np.concatenate([read_rollout(path)["obs"] for path in paths[:10]])
    encode_frames(encoder, frames[:batch_size], batch_size)  # trace
    start = time.perf_counter()
    encode_frames(encoder, frames, batch_size)
    encoder_rate = len(frames) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as series_dir:
        start = time.perf_counter()
        summary = extract_series(rollouts, series_dir, encoder, action_size=3, batch_size=batch_size, progress=False, log=lambda _: None)
        extract_rate = summary["frames"] / (time.perf_counter() - start)
    return {"encoder": encoder_rate, "extract": extract_rate, "frames": len(frames)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark vae", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="train steps timed per variant (default 40)")
    parser.add_argument("--batch-size", type=int, default=100, help="frames per training batch (default 100, the paper's)")
    parser.add_argument("--z-size", type=int, default=32, help="latent size (default 32)")
    parser.add_argument("--rollouts", type=Path, help="a run's rollouts/ folder to read instead of synthetic files")
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        rollouts = arguments.rollouts
        if rollouts is None:
            rollouts = RunLayout(scratch).rollouts  # the scratch folder stands for a run directory
            write_benchmark_rollouts(rollouts, num_episodes=20, num_steps=200)
        # Extraction first, in a child process with one thread, while this process is idle.
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            extraction = pool.submit(measure_extraction, str(rollouts), arguments.z_size, 1000).result()
        training = measure_training(rollouts, arguments.steps, arguments.batch_size, arguments.z_size)

    print(f"training, batch {arguments.batch_size}, z {arguments.z_size}, {arguments.steps} steps each:")
    print(f"  resident batch      {training['resident']:8.0f} frames/s")
    print(f"  streaming pipeline  {training['streaming']:8.0f} frames/s")
    print(f"  ratio streaming / resident = {training['ratio']:.2f} (goal >= {TRAINING_GOAL})")
    print("extraction, one thread:")
    print(f"  encoder pass        {extraction['encoder']:8.0f} frames/s  ({extraction['encoder'] / EXTRACTION_GOAL:.2f} x goal {EXTRACTION_GOAL:.0f})")
    print(f"  extract end to end  {extraction['extract']:8.0f} frames/s  ({extraction['extract'] / EXTRACTION_GOAL:.2f} x goal {EXTRACTION_GOAL:.0f})")


if __name__ == "__main__":
    main()
