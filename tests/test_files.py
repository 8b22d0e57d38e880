"""Atomic files: a failed write leaves the old file and no temporary; modes follow the umask."""

import os
import stat

import numpy as np
import pytest

from common.errors import ArtifactError
from common.files import append_jsonl, atomic_path, read_json, read_jsonl, save_npz, write_json, write_jsonl


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "value.json"
    write_json(path, {"generation": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as temporary:
            temporary.write_text("half a fi")
            raise RuntimeError("killed mid-write")
    assert read_json(path) == {"generation": 1}
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["value.json"]


def test_files_get_the_usual_mode_not_mkstemp_0600(tmp_path):
    path = tmp_path / "params.npz"
    save_npz(path, params=np.arange(3, dtype=np.float32))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("level", [1, 6, None])
def test_npz_levels_round_trip_without_pickle(tmp_path, level):
    arrays = {"obs": np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3), "done": np.array([False, True])}
    save_npz(tmp_path / "episode.npz", compression_level=level, **arrays)
    with np.load(tmp_path / "episode.npz", allow_pickle=False) as archive:
        for key, value in arrays.items():
            np.testing.assert_array_equal(archive[key], value)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="summary.json: not valid JSON"):
        read_json(path)


def test_jsonl_skips_a_line_torn_by_a_kill(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with open(path, "a") as handle:
        handle.write('{"step": 3, "lo')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_write_jsonl_replaces_the_file_with_exactly_the_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for step in range(5):
        append_jsonl(path, {"step": step})
    write_jsonl(path, [{"step": 0}, {"step": 1}])  # trimmed back to a checkpoint
    assert read_jsonl(path) == [{"step": 0}, {"step": 1}]
