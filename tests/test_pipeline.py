"""End to end: the doom-smoke pipeline through `scripts.pipeline` in a temporary
run directory, every artifact checked for content (not only existence), then a
rerun that must be a no-op: every stage skipped and no file touched; and C's stages
again with `--set controller.kind=mlp` on a copy of the trained V and M.

V trains for 1 epoch instead of the preset's 8 (those took over half of the pipeline's time, and
no test here reads how well V learned); the preset's own 8 run in the slow tests
(tests/test_demo.py, tests/test_soak.py)."""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from env.rollouts import list_episodes, read_rollout
from scripts import config as config_module
from scripts import pipeline
from vae.series import list_series, read_initial_z, read_series

PRESET = "doom-smoke"
COMMAND = ["--preset", PRESET, "--set", "vae.epochs=1"]


def file_states(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file under the run directory -> (mtime in ns, size)."""
    return {str(path.relative_to(run_dir)): (path.stat().st_mtime_ns, path.stat().st_size) for path in sorted(run_dir.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pipeline") / "doom-smoke"
    timings = pipeline.main([*COMMAND, "--run-dir", str(run_dir)])
    return run_dir, timings


@pytest.fixture(scope="module")
def config():
    return config_module.build(PRESET)


def test_every_stage_ran_once(finished_run):
    _, timings = finished_run
    assert [name for name, _, _ in timings] == list(pipeline.ORDER)
    assert all(status == "ran" for _, status, _ in timings)


def test_rollouts_are_readable(finished_run, config):
    run_dir, _ = finished_run
    paths = list_episodes(run_dir / "rollouts")
    assert len(paths) == config.generate.num_rollouts
    for path in paths:
        episode = read_rollout(path, action_size=config.env.action_size)
        steps = len(episode["obs"])
        assert config.generate.min_episode_steps < steps <= config.env.max_steps
        assert episode["obs"].shape == (steps, 64, 64, 3) and episode["obs"].dtype == np.uint8
    assert json.loads((run_dir / "rollouts" / "done.json").read_text())["stage"] == "generate"


def test_vae_weights_and_reconstruction_grid(finished_run):
    from PIL import Image

    from vae.reconstruction import figure_size_pixels

    run_dir, _ = finished_run
    for name in ("encoder.weights.h5", "decoder.weights.h5"):
        path = run_dir / "vae" / name
        assert path.stat().st_size > 1_000_000, f"{path} is too small to hold the paper's VAE"
        assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    with Image.open(run_dir / "vae" / "reconstructions.png") as picture:
        assert picture.format == "PNG"
        assert picture.size == figure_size_pixels(8)
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.std() > 5, "the reconstruction grid is blank"


def test_series_match_rollouts(finished_run, config):
    run_dir, _ = finished_run
    rollouts = list_episodes(run_dir / "rollouts")
    series = list_series(run_dir / "series")
    assert [path.name for path in series] == [path.name for path in rollouts]
    for rollout_path, series_path in zip(rollouts, series, strict=True):
        arrays = read_series(series_path, z_size=config.vae.z_size, action_size=config.env.action_size)
        assert arrays["mu"].shape == (len(read_rollout(rollout_path)["obs"]), config.vae.z_size)
        assert np.isfinite(arrays["mu"]).all() and np.isfinite(arrays["logvar"]).all()
    initial_mu, initial_logvar = read_initial_z(run_dir / "series", z_size=config.vae.z_size)
    assert initial_mu.shape == (len(rollouts), config.vae.z_size) == initial_logvar.shape


def test_rnn_and_controller_outputs(finished_run, config):
    from PIL import Image

    run_dir, _ = finished_run
    rnn_weights = run_dir / "rnn" / "mdn_rnn.weights.h5"
    assert rnn_weights.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    with np.load(run_dir / "controller" / "mean.npz", allow_pickle=False) as mean:
        parameters = np.concatenate([np.ravel(mean[key]) for key in mean.files if np.issubdtype(mean[key].dtype, np.floating)])
    features = config.vae.z_size + 2 * config.rnn.hidden_size  # [z, c, h], no bias: 1,088 at paper scale
    assert parameters.size >= features * config.env.action_size
    assert np.isfinite(parameters).all()
    with Image.open(run_dir / "controller" / "curve.png") as curve:
        assert curve.format == "PNG" and min(curve.size) > 100


def test_evaluation_returns(finished_run, config):
    run_dir, _ = finished_run
    returns = json.loads((run_dir / "eval" / "returns.json").read_text())
    episodes = returns["episodes"]
    assert len(episodes) == config.evaluate.episodes
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    values = [episode["return"] for episode in episodes]
    assert summary["mean"] == pytest.approx(float(np.mean(values)), rel=1e-5)


def test_the_mlp_controller_trains_and_evaluates_in_the_pipeline(finished_run, tmp_path):
    """--set controller.kind=mlp: the pipeline's C stages on a copy of the trained V, M and series
    train and evaluate the one-hidden-layer controller (2 hidden units keep CMA-ES's covariance of
    Doom's 1,088 features small), and its files record the kind."""
    from controller import store
    from controller.policy import controller_from_config
    from scripts import stage

    run_dir = tmp_path / "mlp"
    shutil.copytree(finished_run[0], run_dir, ignore=shutil.ignore_patterns("controller", "eval", "dream"))
    settings = ["--set", "controller.kind=mlp", "--set", "controller.hidden_size=2"]
    timings = pipeline.main(["--run-dir", str(run_dir), *settings, "--only", "train_controller", "evaluate"])
    assert [(name, status) for name, status, _ in timings] == [("train_controller", "ran"), ("evaluate", "ran")]

    config = stage.build_config(run_dir, None, [])
    assert (config.controller.kind, config.controller.hidden_size) == ("mlp", 2)
    controller = controller_from_config(config)
    assert controller.num_params == 1088 * 2 + 2 + 2 * 1  # W1 (F, 2), b1, W2 (2, 1); Doom: no output bias
    for name in ("best.npz", "mean.npz"):
        with np.load(run_dir / "controller" / name) as saved:
            assert (saved["kind"].item(), saved["controller_hidden_size"].item()) == ("mlp", 2)
            assert saved["params"].shape == (controller.num_params,) and np.isfinite(saved["params"]).all()
        store.load_params(run_dir / "controller" / name, controller)
    records = [json.loads(line) for line in (run_dir / "controller" / "metrics.jsonl").read_text().splitlines()]
    assert [record["generation"] for record in records] == list(range(config.controller.num_generations))
    returns = json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert len(returns) == summary["episodes"] == config.evaluate.episodes
    assert summary["params"] == "mean" and summary["controller"] == str(run_dir / "controller" / "mean.npz")
    assert summary["mean"] == pytest.approx(float(np.mean([episode["return"] for episode in returns])), rel=1e-5)
    assert all(1 <= episode["length"] <= config.env.max_steps for episode in returns)


def test_dream_video(finished_run):
    run_dir, _ = finished_run
    videos = pipeline._videos(run_dir / "dream")
    assert videos, f"no video in {run_dir / 'dream'}"
    assert videos[0].stat().st_size > 1000


def test_summary_names_the_pictures(finished_run, capsys):
    run_dir, _ = finished_run
    lines = "\n".join(pipeline.summary_lines(run_dir))
    assert str(run_dir / "vae" / "reconstructions.png") in lines
    assert str(run_dir / "controller" / "curve.png") in lines
    assert "missing" not in lines.replace("evaluation video", "")


def test_rerun_is_a_no_op(finished_run):
    run_dir, _ = finished_run
    before = file_states(run_dir)
    time.sleep(0.01)  # a rewrite would get a different mtime
    timings = pipeline.main([*COMMAND, "--run-dir", str(run_dir)])
    # Skipped stages are not even imported, so the rerun takes well under a second.
    assert all(status == "skipped" and seconds == 0.0 for _, status, seconds in timings)
    assert file_states(run_dir) == before


def test_resume_after_a_crash_reruns_only_the_unfinished_stages(finished_run):
    """Remove the last stages' outputs, as a crash before they finished would leave them."""
    run_dir, _ = finished_run
    (run_dir / "eval" / "done.json").unlink()
    for video in pipeline._videos(run_dir / "dream"):
        video.unlink()
    untouched = {name: state for name, state in file_states(run_dir).items() if name.split(os.sep)[0] in ("rollouts", "vae", "series", "rnn")}
    timings = pipeline.main(["--run-dir", str(run_dir)])
    statuses = {name: status for name, status, _ in timings}
    assert statuses == {name: ("ran" if name in ("evaluate", "dream") else "skipped") for name in pipeline.ORDER}
    assert {name: state for name, state in file_states(run_dir).items() if name in untouched} == untouched
    assert (run_dir / "eval" / "done.json").exists() and pipeline._videos(run_dir / "dream")


def test_a_stage_that_reran_makes_the_later_ones_run_again(finished_run):
    """A crash in train_controller (as after a --set that asked for more generations): evaluate
    and dream ran before with the old controller, so they must run again, not be skipped.
    (Here the controller comes out the same, so evaluate finds its episodes already played for
    it; tests/test_evaluate.py checks that a changed controller is played again.)"""
    run_dir, _ = finished_run
    (run_dir / "controller" / "done.json").unlink()
    old_summary = (run_dir / "eval" / "summary.json").stat().st_mtime_ns
    timings = pipeline.main(["--run-dir", str(run_dir), "--skip-dream"])
    statuses = {name: status for name, status, _ in timings}
    assert statuses == {name: ("ran" if name in ("train_controller", "evaluate") else "skipped") for name in pipeline.ORDER if name != "dream"}
    assert (run_dir / "eval" / "summary.json").stat().st_mtime_ns == old_summary


def test_check_vae_and_dream_are_finished_only_with_every_file_they_make(tmp_path):
    for name, paths in pipeline.OUTPUTS.items():
        for path in paths:
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            assert not pipeline.is_finished(tmp_path, name)
            (tmp_path / path).write_bytes(b"x")
        assert pipeline.is_finished(tmp_path, name)
    (tmp_path / "dream" / "real.mp4").unlink()  # killed between the dream video and the real one
    assert not pipeline.is_finished(tmp_path, "dream")


def test_a_new_run_without_a_preset_names_the_command(tmp_path):
    from scripts import stage

    with pytest.raises(stage.StageError, match=r"python -m scripts.pipeline --preset doom-smoke"):
        pipeline.main(["--run-dir", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()


def test_a_failed_stage_is_named_with_its_exit_status_and_leaves_no_empty_run_folder(tmp_path, capsys):
    from scripts import stage

    run_dir = tmp_path / "runs" / "new"
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(pipeline.main, ["--preset", PRESET, "--set", "generate.min_episode_steps=500", "--run-dir", str(run_dir)])
    output = capsys.readouterr()
    assert exit_info.value.code == 2 and "every episode would be dropped" in output.err
    lines = output.out.splitlines()
    assert lines[0].startswith("[pipeline] 1/8 generate: ") and len(lines) == 2
    assert lines[1].startswith("[pipeline] generate failed after ") and lines[1].endswith(" s (exit status 2); the stages after it did not run")
    assert not (tmp_path / "runs").exists()  # neither the run folder nor its .locks/
    # A bad --set stops before anything is made (and blames the --set).
    with pytest.raises(stage.StageError, match=r"^--set vae.z_sise=32: unknown config field"):
        pipeline.main(["--preset", PRESET, "--set", "vae.z_sise=32", "--run-dir", str(run_dir)])
    assert not (tmp_path / "runs").exists()
