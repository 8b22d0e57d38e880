"""One writer per stage: a second process of a stage on the same run stops at once, naming the first."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import generate, stage

REPO = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from pathlib import Path; from scripts import stage; stage.acquire_lock(Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); time.sleep(120)"
CARRACING = ["--preset", "carracing-smoke", "--set", "generate.num_rollouts=1", "--set", "env.max_steps=5", "--set", "generate.num_workers=1"]


def hold_lock(path: Path, name: str) -> subprocess.Popen:
    """Another process holding a stage's lock, as a running stage does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), name], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_stops_at_once_naming_the_first_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    run_dir = tmp_path / "run"
    holder = hold_lock(stage.lock_path(run_dir, "generate"), "generate")
    try:
        with pytest.raises(SystemExit) as exit_info:
            stage.run_main(generate.main, ["--run-dir", str(run_dir), *CARRACING])
        assert exit_info.value.code == 2
        message = capsys.readouterr().err
        assert f"{run_dir / 'rollouts'} is in use by 'generate' (pid {holder.pid} on host {socket.gethostname()}, started " in message
        assert f"tail --pid={holder.pid} -f /dev/null" in message and f"kill {holder.pid}" in message
        assert not (run_dir / "config.json").exists() and not (run_dir / "rollouts" / "started.json").exists()  # nothing written
        record = json.loads(stage.lock_path(run_dir, "generate").read_text())
        assert record["pid"] == holder.pid and record["stage"] == "generate"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 released the lock with the process: the stage runs
    generate.main(["--run-dir", str(run_dir), *CARRACING])
    assert (run_dir / "rollouts" / "done.json").exists()
    assert json.loads(stage.lock_path(run_dir, "generate").read_text())["pid"] == os.getpid()


def test_two_train_vae_processes_cannot_both_write_and_check_vae_shares_the_folder_lock(tmp_path):
    assert stage.lock_path(tmp_path, "check_vae") == stage.lock_path(tmp_path, "train_vae") == tmp_path / ".locks" / "vae.lock"
    holder = hold_lock(stage.lock_path(tmp_path, "train_vae"), "train_vae")
    try:
        invocation = stage.parse("check_vae", "", ["--run-dir", str(tmp_path), "--preset", "doom-smoke"])
        with pytest.raises(stage.StageError, match=rf"in use by 'train_vae' \(pid {holder.pid}"):
            stage.begin(invocation)
        # another MPI rank of the writer's job only reads: it takes no lock
        stage.begin(stage.parse("train_vae", "", ["--run-dir", str(tmp_path), "--preset", "doom-smoke"]), requires=(), write=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_the_lock_is_reentrant_in_one_process_and_released_on_request(tmp_path):
    path = stage.lock_path(tmp_path, "train_rnn")
    stage.acquire_lock(path, "train_rnn")
    stage.acquire_lock(path, "train_rnn")  # the pipeline runs stages in its own process
    stage.release_locks()
    holder = hold_lock(path, "train_rnn")  # released: another process can take it
    holder.send_signal(signal.SIGKILL)
    holder.wait()


def test_stage_table_drives_the_pipeline():
    from scripts import pipeline

    assert pipeline.ORDER == ("generate", "train_vae", "check_vae", "extract", "train_rnn", "train_controller", "evaluate", "dream")
    assert pipeline.LEAVES == ("check_vae", "evaluate", "dream")
    assert stage.STAGES["train_controller"].required(None) == ("train_rnn",)
    import scripts.config as config_module

    real = config_module.build("carracing")
    assert stage.STAGES["train_controller"].required(real) == ("train_rnn", "train_vae")  # C never reads series/ in the real env
    assert stage.STAGES["train_controller"].required(config_module.build("doom")) == ("train_rnn", "extract")  # the dream's first frames
    assert pipeline.OUTPUTS == {"check_vae": ("vae/reconstructions.png",), "dream": ("dream/dream.mp4", "dream/real.mp4")}
