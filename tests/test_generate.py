"""The generate stage: valid files, seeded, resumable, independent of the worker count."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from env.collect import collect_rollouts, dropped_indices
from env.config import EnvConfig, GenerateConfig
from env.rollouts import list_episodes, read_rollout
from scripts import generate


def run_generate(run_dir, *arguments):
    generate.main(["--run-dir", str(run_dir), *arguments])


def snapshot(folder):
    """{file name: mtime_ns} of every entry of the rollouts folder."""
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.iterdir())}


def assert_same_rollouts(folder_a, folder_b, action_size):
    names_a = [path.name for path in list_episodes(folder_a)]
    assert names_a == [path.name for path in list_episodes(folder_b)]
    for name in names_a:
        first, second = read_rollout(folder_a / name, action_size), read_rollout(folder_b / name, action_size)
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=f"{name}:{key}")


CARRACING = ["--preset", "carracing-smoke", "--set", "generate.num_rollouts=2", "--set", "env.max_steps=15", "--set", "generate.num_workers=1"]


def test_carracing_smoke_files_rerun_and_repair(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_generate(run_dir, *CARRACING)
    folder = run_dir / "rollouts"
    files = list_episodes(folder)
    assert [path.name for path in files] == ["000000.npz", "000001.npz"]
    for path in files:
        episode = read_rollout(path, action_size=3)
        assert episode["obs"].shape == (15, 64, 64, 3)  # capped by env.max_steps: truncated, not done
        assert not episode["done"].any()
        assert episode["action"].min() >= -1 and episode["action"].max() <= 1
    assert (run_dir / "rollouts" / "done.json").exists() and (run_dir / "config.json").exists()
    output = capsys.readouterr().out
    assert "2 episodes, 30 frames" in output and "MB on disk" in output and "steps/s" in output

    # A rerun makes nothing new.
    before = snapshot(folder)
    run_generate(run_dir)
    after = snapshot(folder)
    assert {name: time for name, time in after.items() if name != "done.json"} == {name: time for name, time in before.items() if name != "done.json"}

    # Deleting one file and rerunning makes exactly that one again, identical.
    kept = read_rollout(folder / "000001.npz")
    (folder / "000001.npz").unlink()
    run_generate(run_dir)
    repaired = snapshot(folder)
    assert repaired["000000.npz"] == before["000000.npz"]
    assert repaired["000001.npz"] != before["000001.npz"]
    again = read_rollout(folder / "000001.npz")
    for key in kept:
        np.testing.assert_array_equal(kept[key], again[key])

    # The same seeds in another run directory give the same files.
    other = tmp_path / "other"
    run_generate(other, *CARRACING)
    assert_same_rollouts(folder, other / "rollouts", 3)

    # --force starts over: files rewritten.
    run_generate(run_dir, "--force")
    assert snapshot(folder)["000000.npz"] != before["000000.npz"]


def test_doom_drops_short_episodes_and_worker_count_does_not_change_files(tmp_path):
    # Episodes of <= 150 steps are dropped; 4 of the rest are kept.
    arguments = ["--preset", "doom-smoke", "--set", "generate.num_rollouts=4", "--set", "env.max_steps=160", "--set", "generate.min_episode_steps=150"]
    run_generate(tmp_path / "one", *arguments, "--set", "generate.num_workers=1")
    run_generate(tmp_path / "two", *arguments, "--set", "generate.num_workers=2")
    one, two = tmp_path / "one" / "rollouts", tmp_path / "two" / "rollouts"
    assert_same_rollouts(one, two, 1)
    kept = [int(path.stem) for path in list_episodes(one)]
    dropped = dropped_indices(one)
    assert dropped == dropped_indices(two)
    assert len(kept) == 4 and dropped, "the test needs some dropped episodes"
    # The kept set is the first 4 indices not dropped: nothing beyond it was played.
    assert sorted(kept + sorted(dropped)) == list(range(max(kept) + 1))
    for path in list_episodes(one):
        episode = read_rollout(path, action_size=1)
        assert len(episode["done"]) > 150
        # Doom: a death ends the episode with done on its last step only.
        assert episode["done"][:-1].sum() == 0
    # A rerun replays neither kept nor dropped episodes.
    before = snapshot(one)
    summary = collect_rollouts(one, EnvConfig(name="doom", max_steps=160), GenerateConfig(num_rollouts=4, policy="hold", min_episode_steps=150))
    assert summary.new_steps == 0 and snapshot(one) == before


def test_impossible_drop_rule_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate.stage.run_main(generate.main, ["--run-dir", str(tmp_path), "--preset", "doom-smoke", "--set", "generate.min_episode_steps=500"])
    assert exit_info.value.code == 2
    assert "every episode would be dropped" in capsys.readouterr().err


def test_malformed_rollout_on_rerun_names_the_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_generate(run_dir, *CARRACING)
    damaged = run_dir / "rollouts" / "000001.npz"
    damaged.write_bytes(b"not an npz")
    done_before = (run_dir / "rollouts" / "done.json").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        generate.stage.run_main(generate.main, ["--run-dir", str(run_dir)])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert str(damaged) in message and f"python -m scripts.generate --run-dir {run_dir}" in message
    # refused before anything is touched: the finished stage's marker is kept as it was
    assert (run_dir / "rollouts" / "done.json").read_bytes() == done_before


def test_killed_run_resumes_to_the_same_files(tmp_path):
    """SIGKILL mid-collection loses at most the episode in flight; the rerun completes the same set."""
    arguments = ["--preset", "carracing-smoke", "--set", "generate.num_rollouts=3", "--set", "env.max_steps=40", "--set", "generate.num_workers=1"]
    killed = tmp_path / "killed"
    repository = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.generate", "--run-dir", str(killed), *arguments],
        cwd=repository,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(repository)},
    )
    deadline = time.monotonic() + 120
    while not list_episodes(killed / "rollouts") and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list_episodes(killed / "rollouts")) < 3, "killed too late to test anything"
    assert not (killed / "rollouts" / "done.json").exists()
    # The partial folder was made with env.max_steps=40: resuming with another value is refused.
    with pytest.raises(generate.stage.StageError, match="unfinished stage 'generate'"):
        run_generate(killed, "--set", "env.max_steps=41")
    run_generate(killed)
    assert not [path for path in (killed / "rollouts").iterdir() if path.name.startswith(".")]  # no temporaries left
    reference = tmp_path / "reference"
    run_generate(reference, *arguments)
    assert_same_rollouts(killed / "rollouts", reference / "rollouts", 3)
    assert len(list_episodes(killed / "rollouts")) == 3
