"""common/layout.py: the run layout names the paths the stages have always used, the commands in
messages, and the launcher an entry point prints them with."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from common import layout
from common.errors import ArtifactError
from common.layout import RunLayout, with_launcher

ROOT = Path(__file__).resolve().parent.parent


def test_the_layout_names_the_paths_of_today(tmp_path):
    run = RunLayout(tmp_path)
    table = {
        run.config: "config.json",
        run.rollouts: "rollouts",
        run.vae: "vae",
        run.vae_weights(): "vae/encoder.weights.h5",
        run.vae_weights("decoder"): "vae/decoder.weights.h5",
        run.checkpoint("train_vae"): "vae/checkpoints/last.npz",
        run.series: "series",
        run.initial_z: "series/initial_z.npz",
        run.rnn: "rnn",
        run.rnn_weights: "rnn/mdn_rnn.weights.h5",
        run.calibration: "rnn/calibration.json",
        run.checkpoint("train_rnn"): "rnn/checkpoints/last.npz",
        run.metrics("train_rnn"): "rnn/metrics.jsonl",
        run.controller: "controller",
        run.controller_params(): "controller/mean.npz",
        run.controller_params(layout.BEST_NAME): "controller/best.npz",
        run.es_state: "controller/es_state.pkl",
        run.metrics("train_controller"): "controller/metrics.jsonl",
        run.eval: "eval",
        run.folder("evaluate_random"): "eval_random",
        run.eval_validation: "eval_validation",
        run.dream: "dream",
        run.fidelity: "fidelity",
        run.iterate: "iterate",
        run.rounds: "iterate/rounds.json",
        run.rounds_source: "iterate/source.json",
        run.round(3).run_dir: "iterate/round_003",
        run.round(3).rnn_weights: "iterate/round_003/rnn/mdn_rnn.weights.h5",
        run.round(12).controller_params(): "iterate/round_012/controller/mean.npz",
    }
    assert {path: str(path.relative_to(tmp_path)) for path in table} == table
    assert RunLayout(str(tmp_path)) == run  # a string run directory is a Path


def test_the_packages_read_their_names_from_the_layout():
    from controller import evaluate, store, train
    from rnn import calibration
    from rnn import store as rnn_store
    from scripts import stage
    from vae import extract, series
    from workflows import fidelity

    assert rnn_store.WEIGHTS_NAME == layout.RNN_WEIGHTS_NAME and calibration.CALIBRATION_NAME == layout.CALIBRATION_NAME
    assert series.INITIAL_Z_NAME == layout.INITIAL_Z_NAME and evaluate.PARTIAL_NAME == layout.PARTIAL_NAME
    assert extract.SOURCE_NAME == layout.SERIES_SOURCE_NAME
    assert (store.BEST_NAME, store.MEAN_NAME, store.SELECTED_NAME) == (layout.BEST_NAME, layout.MEAN_NAME, layout.SELECTED_NAME)
    assert (train.STATE_NAME, train.CURVE_NAME, train.METRICS_NAME) == (layout.ES_STATE_NAME, layout.CURVE_NAME, layout.METRICS_NAME)
    assert (fidelity.FOLDER, fidelity.REPORT_NAME, fidelity.PICTURE_NAME) == (layout.FOLDERS["fidelity"], layout.REPORT_NAME, layout.PICTURE_NAME)
    assert {name: stage.STAGES[name].folder for name in layout.FOLDERS if name in stage.STAGES} == {
        name: folder for name, folder in layout.FOLDERS.items() if name != "fidelity"
    }
    assert stage.STAGES["round_fidelity"].folder == layout.FOLDERS["fidelity"]  # an iterate round's fidelity report


def test_the_round_folders_on_disk_are_read_back_as_their_numbers(tmp_path):
    """round_numbers lists the folders round(number) names, in order; round_number inverts round()
    and refuses a folder round() does not name (another spelling of the number, another parent, a file)."""
    from scripts import calibrate

    run = RunLayout(tmp_path / "run")
    assert run.round_numbers() == []
    for number in (10, 2, 1):
        run.round(number).run_dir.mkdir(parents=True)
    (run.iterate / "round_7").mkdir()  # not how round 7 is spelled
    (run.iterate / "round_004").write_text("")  # a file, not a round folder
    (run.iterate / "round_x").mkdir()
    assert run.round_numbers() == [1, 2, 10]
    assert [layout.round_number(run.round(number).run_dir) for number in (1, 10, 123, 1000)] == [1, 10, 123, 1000]
    assert layout.round_number(run.iterate / "round_7") is None and layout.round_number(tmp_path / "round_001") is None
    assert layout.round_number(tmp_path / "other" / "round_001") is None
    # scripts.calibrate on a round folder reads the series M trained on: the run's and rounds 1..N's
    assert calibrate.series_folders(run.round(2).run_dir) == [run.series, run.round(1).series, run.round(2).series]
    assert calibrate.series_folders(run.iterate / "round_7") == [run.iterate / "round_7" / "series"]


def test_a_committed_agent_has_its_files_where_the_layout_says():
    run = RunLayout(ROOT / "pretrained" / "doom")
    for path in (run.config, run.vae_weights(), run.vae_weights("decoder"), run.initial_z, run.rnn_weights, run.controller_params()):
        assert path.is_file(), path


def test_a_message_names_the_command_that_remakes_a_stage(tmp_path):
    from vae.store import load_part

    run = RunLayout(tmp_path / "run")
    assert run.command("train_vae", "--force") == f"python -m scripts.train_vae --run-dir {tmp_path / 'run'} --force"
    from scripts.config import build

    config = build("doom-smoke")
    with pytest.raises(ArtifactError) as error:
        load_part(run.vae, "encoder", config.vae)
    assert run.command("train_vae") in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run `python -m scripts.extract --run-dir r` first", "run `./run.sh python -m scripts.extract --run-dir r` first"),
        ("`mkdir -p b && python -m scripts.pipeline --run-dir b`", "`mkdir -p b && ./run.sh python -m scripts.pipeline --run-dir b`"),
        ("mpiexec -n 4 python -m scripts.train_controller", "mpiexec -n 4 ./run.sh python -m scripts.train_controller"),
        ("already `./run.sh python -m scripts.generate --run-dir r`", "already `./run.sh python -m scripts.generate --run-dir r`"),
        ("/usr/bin/python -m scripts.generate and python -m pytest", "/usr/bin/python -m scripts.generate and python -m pytest"),
    ],
)
def test_the_launcher_starts_every_command_a_message_names(text, expected):
    assert with_launcher(text, "./run.sh python") == expected
    assert with_launcher(text, "python") == text


def test_an_entry_point_prints_commands_with_the_launcher_it_was_started_by(monkeypatch, capsys):
    from scripts import stage

    def fails(argv):
        raise ArtifactError(f"x is missing; run `{stage.command_for('generate', Path('runs/r'))}`")

    for launcher, expected in ((None, "python"), ("./run.sh python", "./run.sh python"), ("VENV=/v ./run.sh python", "VENV=/v ./run.sh python")):
        if launcher is None:
            monkeypatch.delenv(stage.LAUNCHER_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(stage.LAUNCHER_VARIABLE, launcher)
        with pytest.raises(SystemExit) as stopped:
            stage.run_main(fails, [])
        assert stopped.value.code == 2
        assert capsys.readouterr().err == f"error: x is missing; run `{expected} -m scripts.generate --run-dir runs/r`\n"


def test_run_sh_tells_the_entry_points_how_it_was_started(tmp_path):
    """run.sh with an environment whose python prints the variable (its pins' stamp in place, so nothing is installed)."""
    from scripts import stage

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\nprintf "%s" "$WORLD_MODELS_LAUNCHER"\n')
    python.chmod(0o755)
    pins = b"".join((ROOT / name).read_bytes() for name in ("requirements.txt", "requirements-dev.txt"))
    (venv / ".requirements.sha256").write_text(hashlib.sha256(pins).hexdigest() + "\n")
    environment = {key: value for key, value in os.environ.items() if key != stage.LAUNCHER_VARIABLE}
    printed = subprocess.run([str(ROOT / "run.sh"), "python"], env={**environment, "VENV": str(venv)}, capture_output=True, text=True, check=True).stdout
    assert printed == f"VENV={venv} ./run.sh python"


@pytest.mark.skipif(shutil.which("flock") is None, reason="run.sh serialises installs with flock (util-linux), absent here")
def test_run_sh_installs_once_when_two_jobs_start_together_on_stale_pins(tmp_path):
    """Two run.sh jobs on a venv whose stamp is stale: one installs (pip twice, never overlapping),
    the other waits for it and then finds the stamp current, so nothing is imported mid-install."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "pip.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nif [ "$2" = pip ]; then echo start >> {log}; sleep 1; echo end >> {log}; fi\n')
    python.chmod(0o755)
    (venv / ".requirements.sha256").write_text("stale\n")
    environment = {**os.environ, "VENV": str(venv)}
    jobs = [subprocess.Popen([str(ROOT / "run.sh"), "python"], env=environment) for _ in range(2)]
    assert [job.wait(timeout=60) for job in jobs] == [0, 0]
    assert log.read_text().split() == ["start", "end", "start", "end"]  # one job's two pip calls, one after the other
    pins = b"".join((ROOT / name).read_bytes() for name in ("requirements.txt", "requirements-dev.txt"))
    assert (venv / ".requirements.sha256").read_text().strip() == hashlib.sha256(pins).hexdigest()


def fake_interpreter_for_venv(tmp_path, log, venv_succeeds: bool):
    """A PYTHON that says it is 3.11 and whose `-m venv DIR` writes a python logging its arguments (or fails, as without ensurepip)."""
    python = tmp_path / "python3.11"
    made = '#!/bin/sh\\necho "$@" >> ' + str(log) + "\\n"
    body = f'printf \'{made}\' > "$3/bin/python" && chmod +x "$3/bin/python"; echo venv >> {log}' if venv_succeeds else f"echo venv >> {log}; exit 1"
    python.write_text(f'#!/bin/sh\nif [ "$1" = -c ]; then echo 3.11; exit 0; fi\nif [ "$2" = venv ]; then {body}; fi\n')
    python.chmod(0o755)
    return python


@pytest.mark.parametrize("venv_succeeds", [True, False])
def test_run_sh_remakes_a_half_made_venv_and_names_the_missing_package(tmp_path, venv_succeeds):
    """A venv with a python but no pip and no stamp (what `python -m venv` leaves without ensurepip)
    is made again on the next run; when making it fails, run.sh says which package to install."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")  # no pip in it
    (venv / "bin" / "python").chmod(0o755)
    log = tmp_path / "calls.log"
    python = fake_interpreter_for_venv(tmp_path, log, venv_succeeds)
    finished = subprocess.run([str(ROOT / "run.sh"), "python"], env={**os.environ, "VENV": str(venv), "PYTHON": str(python)}, capture_output=True, text=True)
    calls = log.read_text().splitlines()
    assert calls[0] == "venv"
    if venv_succeeds:
        assert finished.returncode == 0, finished.stderr
        assert calls[1:] == ["-m pip install --quiet --upgrade pip", "-m pip install --quiet -r requirements-dev.txt", ""]
        assert (venv / ".requirements.sha256").exists()
    else:
        assert finished.returncode == 2
        assert "python3.11-venv" in finished.stderr and str(venv) in finished.stderr
        assert calls == ["venv"] and not (venv / ".requirements.sha256").exists()
