"""Disk space: generate and extract refuse to start when the disk cannot hold what they will write;
a disk that fills mid-run (ENOSPC) stops the stage with a clear message and no partial file."""

import errno
from collections import namedtuple

import numpy as np
import pytest

from common import disk
from common.files import save_npz
from env.rollouts import list_episodes
from scripts import extract, generate, stage

CARRACING = ["--preset", "carracing-smoke", "--set", "generate.num_rollouts=2", "--set", "env.max_steps=15", "--set", "generate.num_workers=1"]
Usage = namedtuple("Usage", "total used free")


def disk_with_free(monkeypatch, free: int) -> None:
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - free, free))


def test_generate_refuses_to_start_without_room_and_says_how_much(tmp_path, monkeypatch, capsys):
    disk_with_free(monkeypatch, 100_000)  # one 15-step CarRacing episode is up to 15 x 12,301 bytes
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(generate.main, ["--run-dir", str(tmp_path), *CARRACING])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "not enough disk space for 2 more episodes" in message and "0 MB needed" not in message and "free" in message
    assert not list_episodes(tmp_path / "rollouts") and not (tmp_path / "config.json").exists()


def test_generate_measures_its_files_and_stops_when_the_rest_would_not_fit(tmp_path, monkeypatch, capsys):
    # Before any file exists the first round must fit uncompressed (15 x 12,301 bytes); once the
    # first file is measured, the 19 left (over 10 kB each) do not fit in 190 kB: it stops there.
    disk_with_free(monkeypatch, 190_000)
    arguments = [*CARRACING, "--set", "generate.num_rollouts=20"]
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(generate.main, ["--run-dir", str(tmp_path), *arguments])
    assert exit_info.value.code == 2
    assert "not enough disk space for 19 more episodes" in capsys.readouterr().err
    assert len(list_episodes(tmp_path / "rollouts")) == 1 and list_episodes(tmp_path / "rollouts")[0].stat().st_size > 10_000
    assert not (tmp_path / "rollouts" / "done.json").exists()


def test_a_full_disk_mid_write_leaves_no_partial_file_and_a_rerun_completes(tmp_path, monkeypatch, capsys):
    real_write = np.lib.format.write_array
    calls = {"count": 0}

    def write_until_full(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] > 4:  # the first episode's 4 arrays fit, the next write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_until_full)
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(generate.main, ["--run-dir", str(tmp_path), *CARRACING])
    assert exit_info.value.code == 2
    assert "the disk is full" in capsys.readouterr().err
    folder = tmp_path / "rollouts"
    assert [path.name for path in list_episodes(folder)] == ["000000.npz"]
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")], "a partial file was left"
    assert not (folder / "done.json").exists()
    monkeypatch.setattr(np.lib.format, "write_array", real_write)
    stage.release_locks()
    generate.main(["--run-dir", str(tmp_path)])
    assert len(list_episodes(folder)) == 2 and (folder / "done.json").exists()


def test_atomic_write_removes_its_temporary_file_on_enospc(tmp_path, monkeypatch):
    monkeypatch.setattr(np.lib.format, "write_array", lambda *args, **kwargs: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError) as error:
        save_npz(tmp_path / "table.npz", values=np.zeros(3))
    assert disk.is_disk_full(error.value)
    assert list(tmp_path.iterdir()) == []


def test_extract_refuses_to_start_without_room(tmp_path, monkeypatch, capsys):
    from vae.model import build_encoder

    generate.main(["--run-dir", str(tmp_path), *CARRACING, "--set", "vae.z_size=8"])
    config = stage.build_config(tmp_path, None, [])
    (tmp_path / "vae").mkdir()
    build_encoder(config.vae.z_size).save_weights(tmp_path / "vae" / "encoder.weights.h5")
    stage.mark_done(tmp_path, "train_vae", config)
    disk_with_free(monkeypatch, 1000)  # 30 frames of series need ~30 x (4 x (2 x 8 + 3) + 5) bytes
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(extract.main, ["--run-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "not enough disk space for the series of 2 episodes (30 frames)" in capsys.readouterr().err
    assert not (tmp_path / "series").exists() or not list((tmp_path / "series").iterdir())
