"""The start every stage shares (scripts.stage.begin): inputs first, then --force, then the record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.files import write_json
from scripts import stage


def _invocation(tmp_path, *arguments):
    return stage.parse("train_rnn", "test", ["--run-dir", str(tmp_path), "--preset", "doom-smoke", *arguments])


def test_force_with_a_missing_input_deletes_nothing(tmp_path):
    (tmp_path / "rnn").mkdir()
    (tmp_path / "rnn" / "mdn_rnn.weights.h5").write_bytes(b"weights of an earlier run")
    invocation = _invocation(tmp_path, "--force")
    with pytest.raises(stage.StageError, match=r"series/done.json is missing: 'train_rnn' needs generate, train_vae, extract.*scripts.generate"):
        stage.begin(invocation, requires=("extract",))
    assert (tmp_path / "rnn" / "mdn_rnn.weights.h5").read_bytes() == b"weights of an earlier run"


def test_force_with_inputs_present_discards_outputs_and_records_the_locked_values(tmp_path):
    write_json(tmp_path / "series" / "done.json", {"stage": "extract", "locked": {}})
    (tmp_path / "rnn").mkdir()
    (tmp_path / "rnn" / "mdn_rnn.weights.h5").write_bytes(b"old")
    invocation = _invocation(tmp_path, "--force")
    stage.begin(invocation, requires=("extract",))
    assert sorted(path.name for path in (tmp_path / "rnn").iterdir()) == ["started.json"]
    locked = json.loads((tmp_path / "rnn" / "started.json").read_text())["locked"]
    assert locked["rnn.hidden_size"] == 512 and "rnn.epochs" not in locked  # the training length is not locked


def test_other_mpi_ranks_only_check(tmp_path):
    write_json(tmp_path / "series" / "done.json", {"stage": "extract", "locked": {}})
    (tmp_path / "rnn").mkdir()
    (tmp_path / "rnn" / "checkpoint.npz").write_bytes(b"kept")
    stage.begin(_invocation(tmp_path, "--force"), requires=("extract",), write=False)
    assert sorted(path.name for path in (tmp_path / "rnn").iterdir()) == ["checkpoint.npz"]


def test_build_config_is_read_only_and_names_the_set_on_a_bad_value(tmp_path):
    stage.resolve_config(tmp_path, "doom-smoke", [])
    before = (tmp_path / "config.json").read_bytes()
    config = stage.build_config(tmp_path, None, ["rnn.epochs=7"])
    assert config.rnn.epochs == 7 and config.preset == "doom-smoke"
    assert (tmp_path / "config.json").read_bytes() == before
    with pytest.raises(stage.StageError, match=r"^--set rnn.epochs=many: expected a number"):  # the value came from --set, not config.json
        stage.build_config(tmp_path, None, ["rnn.epochs=many"])


def test_force_refuses_a_stage_folder_that_is_a_link(tmp_path):
    """An iterate round links vae/ to the run's V: --force there must not delete the run's V."""
    run, linked = tmp_path / "run", tmp_path / "round"
    stage.resolve_config(run, "doom-smoke", [])
    (run / "vae").mkdir()
    (run / "vae" / "encoder.weights.h5").write_bytes(b"the run's V")
    stage.resolve_config(linked, "doom-smoke", [])
    (linked / "vae").symlink_to(run / "vae", target_is_directory=True)
    write_json(linked / "rollouts" / "done.json", {"stage": "generate", "locked": {}})
    invocation = stage.parse("train_vae", "", ["--run-dir", str(linked), "--force"])
    with pytest.raises(stage.StageError, match=r"vae is a link to .*--force here would delete the outputs it links to"):
        stage.begin(invocation)
    stage.release_locks()
    assert (run / "vae" / "encoder.weights.h5").read_bytes() == b"the run's V"


def test_entry_points_load_numpy_with_one_blas_thread():
    # OpenBLAS starts its threads when NumPy loads: a process that imports an entry point must
    # already have the limit set then (a second BLAS thread slows CMA-ES 2-3x on a loaded machine).
    environment = {key: value for key, value in os.environ.items() if key not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    probe = "import os, scripts.stage, numpy; print(os.environ['OPENBLAS_NUM_THREADS'], open('/proc/self/status').read().split('Threads:')[1].split()[0])"
    output = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]).stdout
    assert output.split() == ["1", "1"]


def _run(module, arguments, capsys) -> str:
    """Run an entry point as its command does; returns what it printed to stderr (it must exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(module.main, arguments)
    assert exit_info.value.code == 2
    stage.release_locks()
    return capsys.readouterr().err


def test_a_stage_on_a_new_folder_names_the_first_missing_stage_and_leaves_nothing_behind(tmp_path, capsys):
    from scripts import train_rnn

    run_dir = tmp_path / "runs" / "new"
    error = _run(train_rnn, ["--run-dir", str(run_dir), "--preset", "doom-smoke", "--set", "rnn.epochs=3"], capsys)
    assert f"{run_dir / 'series' / 'done.json'} is missing: 'train_rnn' needs generate, train_vae, extract" in error
    # the first missing stage, with what a new run needs to start: its preset and --set
    assert f"Start at the first, generate: `python -m scripts.generate --run-dir {run_dir} --preset doom-smoke --set rnn.epochs=3`" in error
    assert "then run train_vae, extract in that order" in error
    assert not (tmp_path / "runs").exists()  # no run folder, no .locks/, no lock file


def test_a_missing_stage_in_an_existing_run_names_it_and_writes_no_lock(tmp_path, capsys):
    from scripts import train_rnn

    config = stage.resolve_config(tmp_path, "doom-smoke", [])
    for name in ("generate", "train_vae"):
        stage.mark_done(tmp_path, name, config)
    error = _run(train_rnn, ["--run-dir", str(tmp_path)], capsys)
    assert error.strip() == (
        f"error: {tmp_path / 'series' / 'done.json'} is missing: stage 'extract' has not finished in {tmp_path}. "
        f"Run `python -m scripts.extract --run-dir {tmp_path}` first."
    )
    assert not (tmp_path / stage.LOCKS_FOLDER).exists()


def test_a_refused_start_removes_only_the_lock_and_folders_it_created(tmp_path, capsys):
    from scripts import generate

    refused = ["--preset", "doom-smoke", "--set", "generate.min_episode_steps=500"]  # refused by generate's validation, after the lock
    new_run = tmp_path / "new" / "run"
    assert "every episode would be dropped" in _run(generate, ["--run-dir", str(new_run), *refused], capsys)
    assert not (tmp_path / "new").exists()
    # In an existing run the lock file goes if this start made it, and stays if it was there.
    stage.resolve_config(tmp_path / "run", "doom-smoke", [])
    _run(generate, ["--run-dir", str(tmp_path / "run"), *refused], capsys)
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["config.json"]
    lock = stage.lock_path(tmp_path / "run", "generate")
    lock.parent.mkdir()
    lock.write_text("{}")
    _run(generate, ["--run-dir", str(tmp_path / "run"), *refused], capsys)
    assert lock.exists()


def _has_nvidia_driver() -> bool:
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def test_without_a_gpu_driver_tensorflow_is_asked_for_cpu_devices_only(monkeypatch):
    import ctypes

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    for variable in ("TF_ENABLED_DEVICE_TYPES", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    stage.quiet_cuda_without_driver()
    assert os.environ["TF_ENABLED_DEVICE_TYPES"] == "CPU" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"  # info hidden, warnings and errors shown
    stage.limit_threads(1)  # the entry points that hide TensorFlow's warnings (MPI ranks) still do
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # a user's level is kept
    monkeypatch.delenv("TF_ENABLED_DEVICE_TYPES")
    stage.quiet_cuda_without_driver()
    stage.limit_threads(1)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and os.environ["TF_ENABLED_DEVICE_TYPES"] == "CPU"
    # a user's own choice is kept
    monkeypatch.setenv("TF_ENABLED_DEVICE_TYPES", "CPU,GPU")
    stage.quiet_cuda_without_driver()
    assert os.environ["TF_ENABLED_DEVICE_TYPES"] == "CPU,GPU"
    # with the driver (a GPU machine, the GPU image) TensorFlow sees every device type as before
    monkeypatch.delenv("TF_ENABLED_DEVICE_TYPES")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())
    stage.quiet_cuda_without_driver()
    assert "TF_ENABLED_DEVICE_TYPES" not in os.environ and "TF_CPP_MIN_LOG_LEVEL" not in os.environ


@pytest.mark.skipif(_has_nvidia_driver(), reason="the NVIDIA driver is installed here: TensorFlow's CUDA probe is meant to run")
def test_a_cpu_only_stage_prints_no_cuinit_error(tmp_path):
    """TensorFlow's CUDA build logs `E... failed call to cuInit ... CUDA error` where no driver
    is installed; an entry point that runs V (check_vae) must not."""
    from tests.vae_synthetic import write_synthetic_rollouts
    from vae.model import build_decoder, build_encoder

    config = stage.resolve_config(tmp_path, "carracing-smoke", ["vae.z_size=8"])
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=2, num_steps=6)
    (tmp_path / "vae").mkdir()
    build_encoder(8).save_weights(tmp_path / "vae" / "encoder.weights.h5")
    build_decoder(8).save_weights(tmp_path / "vae" / "decoder.weights.h5")
    stage.mark_done(tmp_path, "train_vae", config)
    environment = {key: value for key, value in os.environ.items() if key not in ("TF_ENABLED_DEVICE_TYPES", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run(
        [sys.executable, "-m", "scripts.check_vae", "--run-dir", str(tmp_path), "--num-frames", "2"],
        env=environment,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "mean held-out reconstruction error" in result.stdout and (tmp_path / "vae" / "reconstructions.png").exists()
    assert "cuInit" not in result.stderr and "CUDA error" not in result.stderr, result.stderr


def test_a_read_only_file_stands_in_for_its_stage_except_in_an_exported_agent(tmp_path):
    """train_controller reads only series/initial_z.npz from extract: with that file in the run, extract
    needs no done.json; without it, or in an exported agent itself, or for a stage that declares no
    such file, nothing stands in."""
    run = tmp_path / "run"
    (run / "series").mkdir(parents=True)
    assert stage.stood_in_for(run, "train_controller") == set()
    (run / "series" / "initial_z.npz").write_bytes(b"table")
    assert stage.stood_in_for(run, "train_controller") == {"extract"}
    assert stage.stood_in_for(run, "evaluate") == set() and stage.stood_in_for(run, "no-such-stage") == set()
    (run / stage.EXPORTED_MARKER).write_text("{}")
    assert stage.stood_in_for(run, "train_controller") == set()
