"""The frame pipeline: what it yields, the held-out split, and memory flat in the number of files."""

import gc

import numpy as np
import pytest

from common.errors import ArtifactError
from tests.vae_synthetic import write_synthetic_rollouts
from vae import data


def test_batches_hold_every_frame_once_as_float32_in_unit_range(tmp_path):
    paths = write_synthetic_rollouts(tmp_path, num_episodes=3, num_steps=7)  # 7 + 8 + 9 = 24 frames
    batches = [batch.numpy() for batch in data.iterate(data.frame_dataset(paths, batch_size=5, shuffle_buffer=10, seed=0))]
    assert [len(batch) for batch in batches] == [5, 5, 5, 5, 4]
    frames = np.concatenate(batches)
    assert frames.dtype == np.float32 and frames.shape == (24, 64, 64, 3)
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    expected = np.concatenate([np.load(path)["obs"] for path in paths]).astype(np.float32) / 255.0
    # the same frames, in another order
    sort = lambda array: array[np.lexsort(array.reshape(len(array), -1)[:, ::97].T)]  # noqa: E731
    np.testing.assert_array_equal(sort(frames), sort(expected))
    assert not np.array_equal(frames, expected)  # shuffled
    assert data.count_frames(paths) == 24


def test_same_seed_same_order_other_epoch_other_order(tmp_path):
    paths = write_synthetic_rollouts(tmp_path, num_episodes=3, num_steps=6)

    def first_batch(epoch):
        return next(data.iterate(data.epoch_dataset(paths, batch_size=8, shuffle_buffer=12, seed=1, epoch=epoch))).numpy()

    np.testing.assert_array_equal(first_batch(0), first_batch(0))
    assert not np.array_equal(first_batch(0), first_batch(1))


def test_split_is_by_episode_and_deterministic(tmp_path):
    paths = [tmp_path / f"{index:06d}.npz" for index in range(20)]
    training, validation = data.split_episodes(paths, 0.25, seed=3)
    assert len(validation) == 5 and len(training) == 15
    assert set(training).isdisjoint(validation) and set(training) | set(validation) == set(paths)
    assert data.split_episodes(list(reversed(paths)), 0.25, seed=3) == (training, validation)  # order of listing does not matter
    assert data.split_episodes(paths, 0.25, seed=4)[1] != validation
    assert data.split_episodes(paths[:2], 0.05, seed=0)[1] != []  # at least one held out
    assert data.split_episodes(paths[:1], 0.5, seed=0) == (paths[:1], [])


def test_corrupt_file_is_an_error_naming_it(tmp_path):
    paths = write_synthetic_rollouts(tmp_path, num_episodes=3, num_steps=5)
    paths[1].write_bytes(b"not a zip file")
    paths[2].write_bytes(paths[2].read_bytes()[: paths[2].stat().st_size // 2])  # truncated, as a full disk leaves it
    for path in paths[1:]:
        with pytest.raises(ArtifactError, match=f"{path.name}.*scripts.generate"):
            list(data.iterate(data.frame_dataset([paths[0], path], batch_size=4, shuffle_buffer=4, seed=0)))
        with pytest.raises(ArtifactError, match=f"{path.name}.*scripts.generate"):
            data.count_frames([paths[0], path])


def _resident_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4


def _peak_growth(paths) -> int:
    """Largest rise of resident memory while streaming one pass over `paths`, in KiB."""
    gc.collect()
    start = peak = _resident_kib()
    for _batch in data.iterate(data.frame_dataset(paths, batch_size=16, shuffle_buffer=64, seed=0)):
        peak = max(peak, _resident_kib())
    return peak - start


def test_memory_is_flat_in_the_number_of_files(tmp_path):
    # 60 frames a file = 720 KiB of pixels; 100 files = 70 MiB if the pipeline held them all.
    paths = write_synthetic_rollouts(tmp_path, num_episodes=100, num_steps=60)
    _peak_growth(paths[:10])  # warm up TensorFlow's one-time allocations
    small = _peak_growth(paths[:10])
    large = _peak_growth(paths)
    assert large < small + 20 * 1024, (small, large)  # far less than the 63 MiB more pixels
