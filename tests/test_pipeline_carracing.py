"""End to end on CarRacing: the carracing-smoke pipeline with the controller trained in the
real environment under `mpiexec -n 2`, then the same controller training as one process on a
copy of the run: both must give the same CMA-ES results (episode seeds, not ranks, decide);
and (`-m slow`: the fast tests cover it in parts, docs/ci.md) C's stages again with
`--set controller.kind=mlp` on another copy. V trains for 1 epoch instead of the preset's 8:
no test here reads how well it learned."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from common.files import read_jsonl
from scripts import pipeline, stage, train_controller
from tests.test_controller_mpi import MPIEXEC

pytestmark = [pytest.mark.mpi, pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found")]


def controller_results(run_dir: Path):
    records = read_jsonl(run_dir / "controller" / "metrics.jsonl")
    for record in records:
        record.pop("seconds")
    return np.load(run_dir / "controller" / "mean.npz")["params"], np.load(run_dir / "controller" / "best.npz")["params"], records


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("pipeline") / "carracing-smoke"
    pipeline.main(["--preset", "carracing-smoke", "--set", "vae.epochs=1", "--run-dir", str(run_dir), "--ranks", "2"])
    return run_dir


def test_carracing_smoke_real_mode_two_ranks_equal_one_process(finished_run, tmp_path):
    run_dir = finished_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["controller"]["mode"] == "real" and config["env"]["name"] == "carracing"
    mean_two, best_two, records_two = controller_results(run_dir)
    assert mean_two.shape == (867,) and best_two.shape == (867,)  # (32 + 256) x 3 + 3
    assert len(records_two) == config["controller"]["num_generations"]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    returns = json.loads((run_dir / "eval" / "returns.json").read_text())
    episode_returns = [episode["return"] for episode in returns["episodes"]]
    assert len(episode_returns) == config["evaluate"]["episodes"]
    assert [episode["seed"] for episode in returns["episodes"]] == [config["evaluate"]["seed"] + index for index in range(len(episode_returns))]
    assert summary["mean"] == pytest.approx(np.mean(episode_returns)) and summary["std"] == pytest.approx(np.std(episode_returns))

    single_dir = tmp_path / "single"
    shutil.copytree(run_dir, single_dir)
    train_controller.main(["--run-dir", str(single_dir), "--force"])  # one process, this one (at 1 or 2 TensorFlow threads alike)
    stage.release_locks()
    mean_one, best_one, records_one = controller_results(single_dir)
    np.testing.assert_array_equal(mean_one, mean_two)
    np.testing.assert_array_equal(best_one, best_two)
    assert records_one == records_two


@pytest.mark.slow
def test_the_mlp_controller_trains_in_the_real_env_and_evaluates(finished_run, tmp_path):
    """--set controller.kind=mlp: the pipeline's C stages on a copy of the trained V and M train
    the one-hidden-layer controller (controller.hidden_size 8) in the real environment under
    `mpiexec -n 2` and evaluate it; its files record the kind and its parameter count."""
    from controller import store
    from controller.policy import controller_from_config
    from scripts import stage

    run_dir = tmp_path / "mlp"
    shutil.copytree(finished_run, run_dir, ignore=shutil.ignore_patterns("controller", "eval", "dream"))
    timings = pipeline.main(["--run-dir", str(run_dir), "--set", "controller.kind=mlp", "--ranks", "2", "--only", "train_controller", "evaluate"])
    assert [(name, status) for name, status, _ in timings] == [("train_controller", "ran"), ("evaluate", "ran")]

    config = stage.build_config(run_dir, None, [])
    controller = controller_from_config(config)
    assert (config.controller.kind, config.controller.hidden_size) == ("mlp", 8)
    assert controller.num_params == (32 + 256) * 8 + 8 + 8 * 3 + 3 == 2339
    mean, best, records = controller_results(run_dir)
    assert mean.shape == best.shape == (2339,)
    for name in ("best.npz", "mean.npz"):
        with np.load(run_dir / "controller" / name) as saved:
            assert (saved["kind"].item(), saved["controller_hidden_size"].item()) == ("mlp", 8)
        store.load_params(run_dir / "controller" / name, controller)
    assert len(records) == config.controller.num_generations
    returns = json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert len(returns) == summary["episodes"] == config.evaluate.episodes
    assert summary["mean"] == pytest.approx(np.mean([episode["return"] for episode in returns]))
    assert all(1 <= episode["length"] <= config.env.max_steps for episode in returns)


def test_mpiexec_is_the_one_in_this_environment():
    # The pipeline's --ranks uses the venv's mpiexec (mpich from PyPI); a foreign MPI would not match mpi4py.
    output = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True, timeout=60).stdout
    assert "HYDRA" in output.upper() or "MPICH" in output.upper()
