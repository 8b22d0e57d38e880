"""Rollout files: a malformed file is a RolloutError naming the file and the command that remakes it."""

import numpy as np
import pytest

from common.errors import ArtifactError
from env.rollouts import RolloutError, episode_length, episode_path, list_episodes, read_rollout, write_rollout


def good_arrays(length=5, action_size=3):
    rng = np.random.default_rng(0)
    return {
        "obs": rng.integers(0, 256, size=(length, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, size=(length, action_size)).astype(np.float32),
        "reward": rng.normal(size=length).astype(np.float32),
        "done": np.arange(length) == length - 1,
    }


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "run" / "rollouts"
    path.mkdir(parents=True)
    return path


def test_round_trip_is_exact(folder):
    arrays = good_arrays()
    path = episode_path(folder, 7)
    assert path.name == "000007.npz"
    write_rollout(path, **arrays)
    read = read_rollout(path, action_size=3)
    for key, value in arrays.items():
        assert read[key].dtype == value.dtype
        np.testing.assert_array_equal(read[key], value)
    assert list_episodes(folder) == [path]
    assert not [entry for entry in folder.iterdir() if entry.name.startswith(".")]  # no temporaries left


def test_episode_length_reads_the_step_count(folder):
    path = episode_path(folder, 3)
    write_rollout(path, **good_arrays(length=7))
    assert episode_length(path) == 7


def expect_error(path, match, action_size=None):
    with pytest.raises(RolloutError, match=match) as error:
        read_rollout(path, action_size=action_size)
    message = str(error.value)
    assert str(path) in message
    assert "python -m scripts.generate --run-dir" in message
    assert isinstance(error.value, ArtifactError)


def test_truncated_file(folder):
    path = episode_path(folder, 0)
    write_rollout(path, **good_arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "unreadable")
    with pytest.raises(RolloutError, match="scripts.generate --run-dir"):
        episode_length(path)


def test_corrupt_file(folder):
    path = episode_path(folder, 0)
    path.write_bytes(b"this is not a zip archive" * 100)
    expect_error(path, "unreadable")


def test_corrupt_member(folder):
    path = episode_path(folder, 0)
    write_rollout(path, **good_arrays())
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 200] = bytes(200)  # zero a stretch of compressed pixels
    path.write_bytes(bytes(data))
    expect_error(path, "unreadable")


def test_any_corrupted_stretch_is_a_rollout_error(folder):
    path = episode_path(folder, 0)
    write_rollout(path, **good_arrays())
    data = path.read_bytes()
    for offset in range(0, len(data), max(1, len(data) // 300)):
        damaged = bytearray(data)
        damaged[offset : offset + 50] = bytes(50)
        path.write_bytes(bytes(damaged))
        with pytest.raises(RolloutError, match="scripts.generate") as error:
            read_rollout(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("obs", np.zeros((5, 32, 32, 3), np.uint8), r"'obs' has shape \(5, 32, 32, 3\)"),
        ("obs", np.zeros((5, 64, 64), np.uint8), "'obs' has shape"),
        ("action", np.zeros((5, 2), np.float32), r"'action' has shape \(5, 2\), expected \(T, 3\)"),
        ("reward", np.zeros((5, 1), np.float32), "'reward' has shape"),
        ("done", np.zeros(4, bool), "different lengths"),
        ("obs", np.zeros((5, 64, 64, 3), np.float32), "'obs' has dtype float32, expected uint8"),
        ("action", np.zeros((5, 3), np.float64), "'action' has dtype float64, expected float32"),
        ("done", np.zeros(5, np.int8), "'done' has dtype int8, expected bool"),
    ],
)
def test_wrong_shape_or_dtype(folder, key, value, match):
    arrays = good_arrays()
    arrays[key] = value
    path = episode_path(folder, 0)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    expect_error(path, match, action_size=3)


def test_missing_key(folder):
    arrays = good_arrays()
    del arrays["reward"]
    path = episode_path(folder, 0)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    expect_error(path, r"missing arrays \['reward'\]")


def test_empty_episode(folder):
    path = episode_path(folder, 0)
    write_rollout(path, **good_arrays(length=0))
    expect_error(path, "empty episode")
    with pytest.raises(RolloutError, match=r"expected \(T,\) with T >= 1"):
        episode_length(path)


def test_pickled_object_array_is_never_unpickled(folder):
    arrays = good_arrays()
    arrays["obs"] = np.array([{"payload": 1}] * 5, dtype=object)
    path = episode_path(folder, 0)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    expect_error(path, "unreadable")
