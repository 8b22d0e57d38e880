"""scripts.export_agent: exactly the files evaluate, dream and fidelity read, the same returns on
the same seeds, fidelity's skip note without series episodes, and every refusal leaving disk as it was."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.files import write_jsonl
from controller import store
from controller.policy import controller_from_config
from scripts import dream, evaluate, export_agent, stage
from scripts import fidelity as fidelity_script
from tests.controller_fixtures import make_run

TINY = ["vae.z_size=8", "rnn.hidden_size=16", "rnn.num_mixtures=2", "env.max_steps=30", "controller.max_dream_steps=25", "controller.envs_per_worker=2"]
EPISODES = "3"
EXPECTED = {
    "config.json",
    "vae/encoder.weights.h5",
    "vae/decoder.weights.h5",
    "vae/done.json",
    "series/initial_z.npz",
    "rnn/mdn_rnn.weights.h5",
    "rnn/done.json",
    "controller/best.npz",
    "controller/mean.npz",
    "controller/done.json",
}
# What a finished run holds besides: none of it may reach the export.
LEFT_BEHIND = [
    "rollouts/000000.npz",
    "rollouts/done.json",
    "series/000000.npz",
    "series/000001.npz",
    "series/source.json",
    "series/done.json",
    "vae/checkpoints/last.npz",
    "vae/tensorboard/events.out",
    "vae/started.json",
    "rnn/checkpoints/last.npz",
    "rnn/metrics.jsonl",
    "controller/es_state.pkl",
    "controller/metrics.jsonl",
    "controller/curve.png",
    ".locks/controller.lock",
]


def _files(folder):
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def _states(folder):
    return {name: (folder / name).read_bytes() for name in _files(folder)} if folder.exists() else None


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished tiny Doom run (random V and M, two saved controllers, every stage's extras) and its evaluation."""
    from vae.series import write_series

    run_dir = tmp_path_factory.mktemp("export") / "run"
    config = make_run(run_dir, "doom-smoke", TINY)
    controller = controller_from_config(config)
    rng = np.random.default_rng(4)
    for name in ("best.npz", "mean.npz"):
        store.save_params(run_dir / "controller" / name, rng.normal(scale=0.4, size=controller.num_params).astype(np.float32), controller, generation=1)
    stage.mark_done(run_dir, "train_controller", config)
    stage.mark_done(run_dir, "generate", config)
    stage.mark_started(run_dir, "train_vae", config)
    for name in LEFT_BEHIND:
        path = run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("series/0"):
            steps = 6
            write_series(path, rng.normal(size=(steps, 8)), np.full((steps, 8), -2.0), rng.uniform(-1, 1, (steps, 1)), np.ones(steps), np.zeros(steps, bool))
        elif not path.exists():
            path.write_bytes(b"x" * 100)
    write_jsonl(run_dir / "rnn" / "metrics.jsonl", [{"step": 10, "z_loss": 1.0}])
    evaluate.main(["--run-dir", str(run_dir), "--episodes", EPISODES])
    return run_dir


def test_the_export_holds_exactly_the_files_the_stages_read(source, tmp_path, capsys):
    out = tmp_path / "pretrained" / "doom"
    record = export_agent.main(["--run-dir", str(source), "--to", str(out)])
    assert _files(out) == EXPECTED | {"EXPORTED.json"}
    assert set(export_agent.exported_files()) == EXPECTED
    for name in EXPECTED:
        assert (out / name).read_bytes() == (source / name).read_bytes(), name
    marker = json.loads((out / "EXPORTED.json").read_text())
    assert marker == record
    assert marker["source"] == str(source.resolve())
    assert marker["files"] == {name: {"bytes": (source / name).stat().st_size, "sha256": _sha256(source / name)} for name in EXPECTED}
    assert marker["total_bytes"] == sum((source / name).stat().st_size for name in EXPECTED) < export_agent.MAX_BYTES
    assert marker["source_evaluation"] == json.loads((source / "eval" / "summary.json").read_text())
    assert marker["command"] == f"python -m scripts.export_agent --run-dir {source} --to {out}"
    assert f"{marker['total_bytes'] / 1e6:.1f} MB" in capsys.readouterr().out
    assert not [path for path in out.parent.iterdir() if path.name.startswith(".")], "no staging folder is left behind"


def test_the_calibration_goes_with_m_when_the_run_has_one(source, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "doom"
    shutil.copytree(source, run_dir)
    (run_dir / "rnn" / "calibration.json").write_text('{"offset": -1.0}')
    record = export_agent.main(["--run-dir", str(run_dir), "--to", str(out)])
    assert _files(out) == EXPECTED | {"EXPORTED.json", "rnn/calibration.json"} and "rnn/calibration.json" in record["files"]
    assert (out / "rnn" / "calibration.json").read_bytes() == (run_dir / "rnn" / "calibration.json").read_bytes()


def test_evaluate_in_the_export_gives_the_source_returns_and_dream_runs(source, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "doom"
    shutil.copytree(source, run_dir)  # its evaluation of the mean (the default) is the fixture's
    export_agent.main(["--run-dir", str(run_dir), "--to", str(out)])
    for params in ("mean", "best"):
        if params == "best":
            evaluate.main(["--run-dir", str(run_dir), "--episodes", EPISODES, "--params", "best"])
        evaluate.main(["--run-dir", str(out), "--episodes", EPISODES, "--params", params])
        exported = json.loads((out / "eval" / "returns.json").read_text())["episodes"]
        original = json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
        assert len(exported) == int(EPISODES) and exported == original, params
    assert json.loads((out / "eval" / "summary.json").read_text())["params"] == "best"
    dream.main(["--run-dir", str(out), "--max-steps", "10"])
    assert (out / "dream" / "dream.mp4").stat().st_size > 0 and (out / "dream" / "real.mp4").stat().st_size > 0


def test_a_selected_mean_is_exported_and_every_reader_takes_it_with_params_selected(source, tmp_path, capsys):
    """controller/selected.npz (controller.eval_set=validation) travels with the export when the
    run has one; evaluate, dream and fidelity play it with --params selected."""
    run_dir, out = tmp_path / "run", tmp_path / "doom"
    shutil.copytree(source, run_dir)
    config = stage.build_config(run_dir, None, [])
    shape = controller_from_config(config)
    params = np.random.default_rng(9).normal(scale=0.4, size=shape.num_params).astype(np.float32)
    store.save_params(run_dir / "controller" / "selected.npz", params, shape, generation=7, validation_return=12.5)
    selected = {"controller/selected.npz"}
    export_agent.main(["--run-dir", str(run_dir), "--to", str(out)])
    assert _files(out) == EXPECTED | selected | {"EXPORTED.json"} and set(export_agent.exported_files(out)) == EXPECTED | selected
    assert (out / "controller" / "selected.npz").read_bytes() == (run_dir / "controller" / "selected.npz").read_bytes()
    for folder in (run_dir, out):
        evaluate.main(["--run-dir", str(folder), "--episodes", EPISODES, "--params", "selected"])
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert summary["params"] == "selected" and summary["controller_generation"] == 7
    assert json.loads((out / "eval" / "returns.json").read_text())["episodes"] == json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
    played = json.loads((out / "eval" / "returns.json").read_text())["key"]
    assert played["params_sha256"] == hashlib.sha256(params.tobytes()).hexdigest() and played["controller"].endswith("selected.npz")
    capsys.readouterr()
    dream.main(["--run-dir", str(out), "--max-steps", "10", "--params", "selected"])
    assert "acted by the saved controller controller/selected.npz" in capsys.readouterr().out
    report = fidelity_script.main(["--run-dir", str(out), "--episodes", "2", "--params", "selected"])
    assert report["controller"]["path"] == "controller/selected.npz" and report["controller"]["generation"] == 7


def test_params_selected_without_a_selected_mean_names_the_setting_that_keeps_one(source, tmp_path, capsys):
    for command in (evaluate.main, dream.main):
        with pytest.raises(SystemExit) as exit_info:
            stage.run_main(command, ["--run-dir", str(source), "--params", "selected"])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert f"{source / 'controller' / 'selected.npz'} is missing" in error and "controller.eval_set=validation" in error


def test_fidelity_in_the_export_skips_the_heldout_parts_with_a_note(source, tmp_path, capsys):
    out = tmp_path / "doom"
    export_agent.main(["--run-dir", str(source), "--to", str(out)])
    capsys.readouterr()
    report = fidelity_script.main(["--run-dir", str(out), "--episodes", "2"])
    assert report["random_policy"]["dream"]["count"] == 2 == report["random_policy"]["real"]["count"]
    assert report["controller"]["skipped"] is False and report["controller"]["real"]["count"] == 2
    for part in ("done_calibration", "heldout_z_nll", "heldout"):
        assert report[part]["skipped"] is True and "no series episodes" in report[part]["note"], part
    held = {f"held_{name}_{side}" for name in ("noop", "left", "right") for side in ("dream", "real")}  # need only M and the first frames
    assert set(report["seconds"]) == {"random_policy_dream", "random_policy_real", "controller_dream", "controller_real"} | held
    assert report["held_actions"]["skipped"] is False and report["held_actions"]["actions"]["right"]["real"]["count"] == 2
    assert json.loads((out / "fidelity" / "report.json").read_text()) == report
    assert (out / "fidelity" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "done head and held-out z NLL: skipped (no series episodes" in printed and "controller (mean): dream" in printed


@pytest.mark.parametrize(
    "missing, command",
    [
        ("controller/done.json", "scripts.train_controller"),
        ("controller/best.npz", "scripts.train_controller"),
        ("rnn/mdn_rnn.weights.h5", "scripts.train_rnn"),
        ("vae/done.json", "scripts.train_vae"),
        ("series/initial_z.npz", "scripts.extract"),
    ],
)
def test_a_run_missing_a_piece_is_refused_naming_it_and_nothing_is_written(source, tmp_path, capsys, missing, command):
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    (run_dir / missing).unlink()
    before = _states(run_dir)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(export_agent.main, ["--run-dir", str(run_dir), "--to", str(out)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert str(run_dir / missing) in error and f"python -m {command} --run-dir {run_dir}" in error
    assert not out.exists() and sorted(path.name for path in tmp_path.iterdir()) == ["run"]
    assert _states(run_dir) == before


def test_a_run_that_trained_c_in_an_exported_agents_shared_folders_exports(source, tmp_path):
    """A run that links an exported agent's V, M and first frames (experiments/common.sh, share) and
    trained its own C has series/initial_z.npz and no extract done.json: the export takes it, with the
    run's controller and the agent's V and M byte for byte; without the table it names extract."""
    agent, run_dir, out = tmp_path / "agent", tmp_path / "run", tmp_path / "out"
    export_agent.main(["--run-dir", str(source), "--to", str(agent)])
    run_dir.mkdir()
    for folder in ("vae", "rnn", "series"):
        (run_dir / folder).symlink_to(agent / folder, target_is_directory=True)
    shutil.copyfile(agent / "config.json", run_dir / "config.json")
    shutil.copytree(source / "controller", run_dir / "controller")
    assert not (run_dir / "series" / "done.json").exists()
    export_agent.main(["--run-dir", str(run_dir), "--to", str(out)])
    assert _files(out) == EXPECTED | {"EXPORTED.json"}
    for name in EXPECTED:
        assert (out / name).read_bytes() == (run_dir / name).read_bytes(), name
    bare = tmp_path / "bare"
    bare.mkdir()
    for folder in ("vae", "rnn"):
        (bare / folder).symlink_to(agent / folder, target_is_directory=True)
    shutil.copyfile(agent / "config.json", bare / "config.json")
    shutil.copytree(source / "controller", bare / "controller")
    with pytest.raises(stage.StageError, match=r"series/done.json is missing: stage 'extract' has not finished"):
        export_agent.export_agent(bare, tmp_path / "out2")


def test_a_non_empty_folder_is_refused_and_force_replaces_only_an_earlier_export(source, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--force"]):
        with pytest.raises(SystemExit) as exit_info:
            stage.run_main(export_agent.main, ["--run-dir", str(source), "--to", str(out), *extra])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert f"--to {out} is not empty" in error and "notes.txt" in error and "EXPORTED.json" in error
        assert _files(out) == {"notes.txt"}

    (out / "notes.txt").unlink()  # an empty folder is fine
    export_agent.main(["--run-dir", str(source), "--to", str(out)])
    stale = out / "eval" / "returns.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    before = _states(out)
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(export_agent.main, ["--run-dir", str(source), "--to", str(out)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "already holds an exported agent" in error and "rerun with --force" in error
    assert _states(out) == before

    export_agent.main(["--run-dir", str(source), "--to", str(out), "--force"])
    assert _files(out) == EXPECTED | {"EXPORTED.json"}, "--force replaces the whole earlier export, its evaluation included"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"], "no staging or previous folder is left behind"


def test_the_run_directory_itself_or_a_folder_holding_it_is_refused(source, capsys):
    before = _states(source)
    for out in (source, source.parent):
        with pytest.raises(SystemExit) as exit_info:
            stage.run_main(export_agent.main, ["--run-dir", str(source), "--to", str(out), "--force"])
        assert exit_info.value.code == 2 and "holds the run directory" in capsys.readouterr().err
    assert _states(source) == before


def test_above_the_size_limit_is_refused_unless_allowed(source, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export_agent, "MAX_BYTES", 1000)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(export_agent.main, ["--run-dir", str(source), "--to", str(out)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "above the 0.001 MB" in error and "--allow-large" in error and "nothing was written" in error
    assert not out.exists()
    export_agent.main(["--run-dir", str(source), "--to", str(out), "--allow-large"])
    assert _files(out) == EXPECTED | {"EXPORTED.json"} and "warning:" in capsys.readouterr().out


def _committed_agents():
    root = Path(__file__).resolve().parents[1] / "pretrained"
    return sorted(path.parent for path in root.glob(f"*/{export_agent.MARKER_NAME}"))


@pytest.mark.parametrize("folder", _committed_agents(), ids=lambda folder: folder.name)
def test_a_committed_agent_is_exactly_its_export_record(folder):
    """Each pretrained/<env>/ holds the files its EXPORTED.json lists, byte for byte (a truncated
    or LFS-pointer checkout fails here, not in evaluate), those are what evaluate needs, and the
    folder stays under the limit."""
    record = json.loads((folder / export_agent.MARKER_NAME).read_text())
    # what re-scoring and check_vae write (eval_random/, eval_seed<N>/; ignored by git)
    ignored = (".locks/", "eval/", "eval_", "dream/", "fidelity/", "vae/reconstructions.png")
    present = {name for name in _files(folder) if not name.startswith(ignored)} - {export_agent.MARKER_NAME}
    assert present == set(record["files"]) == set(export_agent.exported_files(folder))
    for name, entry in record["files"].items():
        assert (folder / name).stat().st_size == entry["bytes"], name
        assert _sha256(folder / name) == entry["sha256"], name
    assert sum(entry["bytes"] for entry in record["files"].values()) < export_agent.MAX_BYTES
    assert json.loads((folder / "config.json").read_text())["env"]["name"] == folder.name


PRETRAINED_DOOM = Path(__file__).resolve().parents[1] / "pretrained" / "doom"


@pytest.mark.skipif(not (PRETRAINED_DOOM / export_agent.MARKER_NAME).is_file(), reason="no committed Doom agent in this checkout")
def test_no_message_sends_training_data_into_an_exported_agent(tmp_path, capsys):
    """Stages that need training data, or a config change, on a copy of pretrained/doom: each
    refuses, saying it is an exported agent and what to do instead, and never advises making
    rollouts, series or weights in it (10,000 Doom rollouts are 13.9 GB); nothing is written."""
    from scripts import extract, generate, iterate, pipeline, train_controller, train_rnn, train_vae

    agent = tmp_path / "doom"
    shutil.copytree(PRETRAINED_DOOM, agent, ignore=shutil.ignore_patterns(".locks", "eval*", "dream", "fidelity", "reconstructions.png"))
    before = _states(agent)
    cases = [
        (generate, [], "Training there would write gigabytes of data into it"),
        (pipeline, [], "Training there would write gigabytes of data into it"),
        (extract, [], "'extract' needs generate"),
        (train_vae, ["--force"], "'train_vae' needs generate"),
        (train_rnn, [], "'train_rnn' needs generate, extract"),
        (train_controller, ["--force"], "'train_controller' needs generate, extract"),
        (iterate, ["--rounds", "1"], "'iterate' needs generate, extract"),
        (evaluate, ["--set", "vae.z_size=32"], "vae.z_size=32 contradicts"),
        (export_agent, ["--to", str(tmp_path / "out")], "is itself an exported agent"),
    ]
    for module, arguments, reason in cases:
        with pytest.raises(SystemExit) as exit_info:
            stage.run_main(module.main, ["--run-dir", str(agent), *arguments])
        stage.release_locks()
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and reason in error, (module.__name__, error)
        assert "exported agent" in error and f"{agent / 'EXPORTED.json'}" in error
        for maker in ("generate", "extract", "train_vae", "train_rnn", "train_controller", "iterate"):
            assert f"scripts.{maker} --run-dir {agent}" not in error, (module.__name__, error)
        assert _states(agent) == before
    assert "python -m scripts.pipeline --run-dir runs/doom-train --set vae.z_size=32`" in stage.exported_agent_advice(agent, ("vae.z_size=32",))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["doom"]
