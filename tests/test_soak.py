"""Failure soak (opt in: `pytest -m slow tests/test_soak.py`): the doom-smoke pipeline is killed
with SIGKILL at 10 seeded random moments spread over its whole run, rerun after each kill, and
its final artifacts must equal an uninterrupted pipeline's: V's and M's weights, the CMA-ES
mean and the evaluation returns."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from common.stopping import descendants, is_alive

REPO = Path(__file__).resolve().parents[1]
ARGUMENTS = ["--preset", "doom-smoke", "--skip-dream", "--set", "generate.num_workers=2"]
KILLS = 10
SEED = 12


def pipeline(run_dir: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.pipeline", "--run-dir", str(run_dir), *ARGUMENTS],
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill reaches workers and engines too
    )


def kill_tree(process: subprocess.Popen) -> None:
    below = descendants(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    for pid in below:
        if is_alive(pid):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def weights(path: Path) -> dict[str, np.ndarray]:
    import h5py

    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def artifacts(run_dir: Path) -> dict:
    result = {}
    for name in ("vae/encoder.weights.h5", "vae/decoder.weights.h5", "rnn/mdn_rnn.weights.h5"):
        for key, value in weights(run_dir / name).items():
            result[f"{name}:{key}"] = value
    with np.load(run_dir / "controller" / "mean.npz") as mean:
        result["controller/mean"] = mean["params"]
    result["eval/returns"] = np.array([episode["return"] for episode in json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]])
    return result


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)  # a reference pipeline, ten killed ones and a final rerun
def test_killed_ten_times_the_pipeline_ends_with_the_artifacts_of_an_uninterrupted_run(tmp_path):
    reference_dir = tmp_path / "reference"
    started = time.monotonic()
    reference = pipeline(reference_dir)
    _, errors = reference.communicate(timeout=3600)
    assert reference.returncode == 0, errors[-3000:]
    duration = time.monotonic() - started

    # Kill moments: seeded, spread over the reference run's length (a rerun skips finished work,
    # so each moment is measured from the start of that rerun).
    moments = np.sort(np.random.default_rng(SEED).uniform(0.05, 0.95, KILLS)) * duration
    soaked = tmp_path / "soaked"
    elapsed_before = 0.0
    log = []
    for moment in moments:
        process = pipeline(soaked)
        wait = max(moment - elapsed_before, 1.0)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            log.append(f"killed after {wait:.1f} s")
        else:
            log.append(f"finished before the kill at {wait:.1f} s (status {process.returncode})")
            assert process.returncode == 0, process.stderr.read()[-3000:]
        elapsed_before = moment
    final = pipeline(soaked)
    _, errors = final.communicate(timeout=3600)
    assert final.returncode == 0, errors[-3000:] + "\n" + "\n".join(log)
    assert not list(soaked.rglob(".*.tmp*")), "temporary files left behind"

    expected, actual = artifacts(reference_dir), artifacts(soaked)
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{key} differs after kills: {log}")
    print(f"soak: reference pipeline {duration:.0f} s; {log}")
