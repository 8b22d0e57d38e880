"""Stopping cleanly: SIGTERM to a stage's main process (or to mpiexec) ends every process it
started, workers and game engines included, exits with 128 + 15 and a rerun resumes and finishes."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.files import read_jsonl
from common.stopping import descendants, is_alive
from env.rollouts import list_episodes
from tests.controller_fixtures import TINY_DOOM, make_run

REPO = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def start(command: list[str]) -> subprocess.Popen:
    # a session of its own: every process it starts (and did not move) has its pid as group id
    return subprocess.Popen(command, cwd=REPO, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def in_group(group: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def wait_for(condition, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"ended before the signal: {process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the run to get going"
        time.sleep(0.1)


def stop_and_check(process: subprocess.Popen, target: int | None = None) -> str:
    """SIGTERM, then: it ends within seconds, with 143, and no process it started is left."""
    below = descendants(process.pid)
    os.kill(target or process.pid, signal.SIGTERM)
    try:
        _, errors = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("still running 30 s after SIGTERM") from None
    time.sleep(0.5)
    left = [pid for pid in below if is_alive(pid)] + in_group(process.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left running after SIGTERM: {left}"
    assert process.returncode == 128 + signal.SIGTERM, errors[-3000:]
    return errors


def test_sigterm_to_generate_ends_its_workers_and_their_game_engines(tmp_path):
    run_dir = tmp_path / "run"
    arguments = [
        "--run-dir",
        str(run_dir),
        "--preset",
        "doom-smoke",
        "--set",
        "generate.num_workers=2",
        "--set",
        "generate.num_rollouts=48",  # ~10 s of play: a wide window for the signal, even on a loaded machine
        "--set",
        "env.max_steps=120",
    ]
    process = start([sys.executable, "-m", "scripts.generate", *arguments])
    # both workers have their engine (a `vizdoom` child process) and an episode is on disk
    engines = lambda: [pid for pid in descendants(process.pid) if Path(f"/proc/{pid}/exe").exists() and "vizdoom" in os.readlink(f"/proc/{pid}/exe")]  # noqa: E731
    wait_for(lambda: len(engines()) == 2 and list_episodes(run_dir / "rollouts"), process)
    errors = stop_and_check(process)
    assert "stopped by SIGTERM: rerun the same command to resume" in errors
    assert len(list_episodes(run_dir / "rollouts")) < 48, "stopped too late to test anything"

    from scripts import generate

    generate.main(["--run-dir", str(run_dir)])  # resumes and finishes
    assert len(list_episodes(run_dir / "rollouts")) == 48 and (run_dir / "rollouts" / "done.json").exists()
    assert not [path for path in (run_dir / "rollouts").iterdir() if path.name.startswith(".")]


@pytest.mark.mpi
@pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")
def test_sigterm_to_mpiexec_ends_every_rank_and_a_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", [*TINY_DOOM, "controller.num_generations=8"], with_vae=False)
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "scripts.train_controller", "--run-dir", str(run_dir)]
    process = start(command)
    wait_for(lambda: len(read_jsonl(run_dir / "controller" / "metrics.jsonl")) >= 1, process)
    errors = stop_and_check(process)
    assert "stopped by SIGTERM: rerun the same command to resume" in errors
    finished = len(read_jsonl(run_dir / "controller" / "metrics.jsonl"))
    assert finished < 8, "stopped too late to test anything"
    assert not (run_dir / "controller" / "done.json").exists()

    rerun = subprocess.run(command, cwd=REPO, env=ENVIRONMENT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    records = read_jsonl(run_dir / "controller" / "metrics.jsonl")
    assert [record["generation"] for record in records] == list(range(8))
    assert (run_dir / "controller" / "done.json").exists()
