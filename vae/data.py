"""The frame pipeline that feeds V: shuffled 64x64x3 frames streamed from rollout files.

The paper trains V on frames of 10,000 random-policy episodes (section 4.1),
about 120 GB as raw pixels for CarRacing, so nothing here holds the dataset in
memory. Files are visited in a shuffled order, `cycle_length` of them are open
at once and interleaved frame by frame, and a bounded shuffle buffer mixes
frames of different episodes. Memory is (cycle_length episodes + shuffle
buffer + prefetched batches): flat in the number of files.

The held-out split is by episode (frames of one episode are strongly
correlated, so a split by frame would leak): a seeded permutation of the
episode indices, the same on every run for the same files and seed.
"""

import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from common.errors import ArtifactError
from common.layout import command as stage_command
from env.frames import FRAME_SHAPE
from env.rollouts import list_episodes, read_rollout


def split_episodes(paths: list[Path], validation_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(training, validation) rollout files, split by episode, deterministic in (files, fraction, seed).

    At least one episode is held out when there are two or more and the fraction is positive.
    """
    paths = sorted(Path(path) for path in paths)
    if validation_fraction <= 0 or len(paths) < 2:
        return paths, []
    num_validation = min(len(paths) - 1, max(1, round(validation_fraction * len(paths))))
    order = np.random.default_rng(seed).permutation(len(paths))
    held_out = set(order[:num_validation].tolist())
    training = [path for index, path in enumerate(paths) if index not in held_out]
    validation = [path for index, path in enumerate(paths) if index in held_out]
    return training, validation


def rollout_files(rollouts_dir: str | Path) -> list[Path]:
    """The rollout files of a run, or an error saying how to make them."""
    paths = list_episodes(rollouts_dir)
    if not paths:
        raise ArtifactError(f"{rollouts_dir} holds no rollout files (<NNNNNN>.npz); run `{stage_command('generate', Path(rollouts_dir).parent)}`")
    return paths


def count_frames(paths: list[Path]) -> int:
    """Frames in the given rollout files, reading only the small 'done' array of each.

    A damaged file (truncated, not a zip, 'done' missing) is the RolloutError of
    read_rollout, naming the file and the command that makes it again.
    """
    total = 0
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as archive:
                total += len(archive["done"])
        except Exception:  # noqa: BLE001 - whatever the damage, read_rollout says it best
            read_rollout(path)
            raise
    return total


def _load_frames(path: bytes) -> np.ndarray:
    return read_rollout(path.decode())["obs"]


def frame_dataset(
    paths: list[Path],
    batch_size: int,
    shuffle_buffer: int,
    seed: int,
    shuffle: bool = True,
    cycle_length: int = 4,
    drop_remainder: bool = False,
    prefetch_batches: int = 2,
) -> tf.data.Dataset:
    """Batches of float32 frames (B, 64, 64, 3) in [0, 1] streamed from `paths`.

    shuffle: visit files in a seeded random order and mix frames through a
    `shuffle_buffer`-frame buffer (training); False gives the files' frames in
    order (validation, extraction order). The same seed gives the same order,
    so a resumed epoch can skip exactly the batches already trained on.
    """
    if not paths:
        raise ValueError("frame_dataset needs at least one rollout file")
    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=False)

    def episode_frames(path):
        frames = tf.numpy_function(_load_frames, [path], tf.uint8, stateful=False)
        frames.set_shape((None, *FRAME_SHAPE))
        return tf.data.Dataset.from_tensor_slices(frames)

    # Several files open at once, their frames interleaved; decoding runs in parallel with training.
    frames = files.interleave(
        episode_frames,
        cycle_length=min(cycle_length, len(paths)) if shuffle else 1,
        block_length=1,
        num_parallel_calls=min(cycle_length, len(paths)) if shuffle else 1,
        deterministic=True,
    )
    if shuffle:
        frames = frames.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=False)
    batches = frames.batch(batch_size, drop_remainder=drop_remainder)
    batches = batches.map(lambda batch: tf.cast(batch, tf.float32) / 255.0, num_parallel_calls=2, deterministic=True)
    # Fixed buffer sizes: autotuning would grow buffers towards a share of all RAM over a long run.
    batches = batches.prefetch(prefetch_batches)
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.with_options(options)


def epoch_dataset(paths: list[Path], batch_size: int, shuffle_buffer: int, seed: int, epoch: int) -> tf.data.Dataset:
    """The training batches of one epoch: a new order each epoch, the same order for the same (seed, epoch)."""
    return frame_dataset(paths, batch_size, shuffle_buffer, seed=seed * 100_003 + epoch, shuffle=True)


_ROLLOUT_ERROR = re.compile(r"(\S+\.npz: .*?)(?:\n|$)")


def iterate(dataset: tf.data.Dataset):
    """Iterate a frame dataset; a bad rollout file becomes an ArtifactError naming it,
    instead of a TensorFlow traceback from inside the pipeline."""
    iterator = iter(dataset)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            match = _ROLLOUT_ERROR.search(error.message)
            detail = match.group(1) if match else error.message.splitlines()[0]
            raise ArtifactError(f"reading frames failed: {detail}") from None
        yield batch
