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
    with pytest.raises(stage.StageError, match=r"series/done.json is missing.*scripts.extract"):
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
