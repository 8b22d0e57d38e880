"""evaluate: every return saved, summary equal to NumPy's, a foreign controller refused."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from controller import store
from controller.policy import ControllerShape, controller_from_config, make_controller
from scripts import evaluate
from tests.controller_fixtures import make_run

TINY = ["vae.z_size=8", "rnn.hidden_size=16", "rnn.num_mixtures=2", "env.max_steps=12", "controller.envs_per_worker=2"]


def test_evaluate_writes_every_return_summary_histogram_and_video(tmp_path):
    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY)
    controller = controller_from_config(config)
    params = np.random.default_rng(0).normal(scale=0.3, size=controller.num_params).astype(np.float32)
    store.save_params(run_dir / "controller" / "best.npz", params, controller, generation=0)
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3", "--params", "best"])
    returns = json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
    assert [episode["episode"] for episode in returns] == [0, 1, 2]
    assert [episode["seed"] for episode in returns] == [1_000_000, 1_000_001, 1_000_002]
    assert all(1 <= episode["length"] <= 12 for episode in returns)
    values = np.array([episode["return"] for episode in returns])
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["params"] == "best"
    assert summary["mean"] == pytest.approx(values.mean()) and summary["std"] == pytest.approx(values.std())
    assert (run_dir / "eval" / "histogram.png").stat().st_size > 0
    video = imageio.mimread(run_dir / "eval" / "episode.mp4")
    assert len(video) == returns[0]["length"]
    assert (run_dir / "eval" / "done.json").exists()


def test_a_controller_for_another_env_or_size_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", TINY)
    carracing = make_controller(ControllerShape("carracing", 32, 256, 3, use_cell_state=False, use_bias=True))
    store.save_params(run_dir / "controller" / "mean.npz", np.zeros(carracing.num_params, np.float32), carracing)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.stage.run_main(evaluate.main, ["--run-dir", str(run_dir), "--episodes", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert str(run_dir / "controller" / "mean.npz") in error
    assert "made for another environment, kind or size" in error and "env_name='carracing' (expected 'doom')" in error
    assert not (run_dir / "eval" / "returns.json").exists()


def test_a_killed_evaluation_resumes_with_the_same_returns(tmp_path):
    from common.files import write_json
    from controller.evaluate import PARTIAL_NAME, _partial_key

    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY + ["evaluate.video=false"])
    controller = controller_from_config(config)
    params = np.random.default_rng(1).normal(scale=0.3, size=controller.num_params).astype(np.float32)
    store.save_params(run_dir / "controller" / "mean.npz", params, controller, generation=0)
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3"])
    uninterrupted = json.loads((run_dir / "eval" / "returns.json").read_text())
    assert not (run_dir / "eval" / PARTIAL_NAME).exists()
    # as if killed after episodes 0 and 1 were saved; episode 1 marked so its reuse shows
    (run_dir / "eval" / "returns.json").unlink()
    kept = [dict(uninterrupted["episodes"][0]), dict(uninterrupted["episodes"][1], length=999)]
    config.evaluate.seed = 1_000_000
    key = _partial_key(params, run_dir / "controller" / "mean.npz", config)
    write_json(run_dir / "eval" / PARTIAL_NAME, {"key": key, "episodes": kept})
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3"])
    resumed = json.loads((run_dir / "eval" / "returns.json").read_text())
    assert resumed["episodes"][1]["length"] == 999  # reused, not rerun
    resumed["episodes"][1]["length"] = uninterrupted["episodes"][1]["length"]
    assert resumed == uninterrupted  # episode 2, run again, gives the same return


def test_a_finished_evaluation_is_not_played_again_unless_the_controller_changes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY + ["evaluate.video=false"])
    controller = controller_from_config(config)
    mean_path = run_dir / "controller" / "mean.npz"
    store.save_params(mean_path, np.random.default_rng(2).normal(scale=0.3, size=controller.num_params).astype(np.float32), controller, generation=0)
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "2"])
    returns_path = run_dir / "eval" / "returns.json"
    stamp = returns_path.stat().st_mtime_ns
    capsys.readouterr()
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "2"])
    assert "already holds these 2 episodes of this controller" in capsys.readouterr().out
    assert returns_path.stat().st_mtime_ns == stamp  # nothing played, nothing written
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3"])  # more episodes: played
    assert len(json.loads(returns_path.read_text())["episodes"]) == 3
    store.save_params(mean_path, np.zeros(controller.num_params, np.float32), controller, generation=1)  # training went on
    capsys.readouterr()
    evaluate.main(["--run-dir", str(run_dir), "--episodes", "3"])
    assert "already holds" not in capsys.readouterr().out
    assert json.loads((run_dir / "eval" / "summary.json").read_text())["controller_generation"] == 1


def test_a_further_seed_set_is_scored_in_its_own_folder_and_leaves_the_run_as_it_was(tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY + ["evaluate.video=false", "evaluate.episodes=3"])
    controller = controller_from_config(config)
    store.save_params(
        run_dir / "controller" / "mean.npz", np.random.default_rng(3).normal(scale=0.3, size=controller.num_params).astype(np.float32), controller
    )
    copy_dir = tmp_path / "copy"
    shutil.copytree(run_dir, copy_dir)
    evaluate.main(["--run-dir", str(run_dir)])
    own = {path.name: path.read_bytes() for path in (run_dir / "eval").iterdir()}
    config_before = (run_dir / "config.json").read_bytes()

    evaluate.main(["--run-dir", str(run_dir), "--seed", "2000000"])
    further = json.loads((run_dir / "eval_seed2000000" / "returns.json").read_text())["episodes"]
    assert [episode["seed"] for episode in further] == [2_000_000, 2_000_001, 2_000_002]
    assert (run_dir / "eval_seed2000000" / "done.json").exists()
    assert {path.name: path.read_bytes() for path in (run_dir / "eval").iterdir()} == own
    assert (run_dir / "config.json").read_bytes() == config_before  # evaluate.seed is still the run's own
    # the same episodes as a run whose evaluate.seed is 2,000,000
    evaluate.main(["--run-dir", str(copy_dir), "--set", "evaluate.seed=2000000"])
    assert json.loads((copy_dir / "eval" / "returns.json").read_text())["episodes"] == further

    stamp = (run_dir / "eval_seed2000000" / "returns.json").stat().st_mtime_ns
    capsys.readouterr()
    evaluate.main(["--run-dir", str(run_dir), "--seed", "2000000"])
    assert f"{run_dir / 'eval_seed2000000'} already holds these 3 episodes" in capsys.readouterr().out
    assert (run_dir / "eval_seed2000000" / "returns.json").stat().st_mtime_ns == stamp

    evaluate.main(["--run-dir", str(run_dir), "--seed", "2000000", "--params", "random"])
    random_episodes = json.loads((run_dir / "eval_random_seed2000000" / "returns.json").read_text())["episodes"]
    assert [episode["seed"] for episode in random_episodes] == [2_000_000, 2_000_001, 2_000_002]
    assert not (run_dir / "eval_random").exists() and (run_dir / "config.json").read_bytes() == config_before


def test_a_further_seed_set_outside_the_evaluation_range_is_refused_before_anything_is_written(tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY + ["evaluate.video=false"])
    controller = controller_from_config(config)
    store.save_params(run_dir / "controller" / "mean.npz", np.zeros(controller.num_params, np.float32), controller)
    config_before = (run_dir / "config.json").read_bytes()
    for params in ("mean", "random"):
        with pytest.raises(SystemExit) as exit_info:
            evaluate.stage.run_main(evaluate.main, ["--run-dir", str(run_dir), "--episodes", "3", "--params", params, "--seed", str(2**31 - 2)])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert f"--seed={2**31 - 2} with 3 episodes: evaluation seeds must lie in [0, 2^31)" in error and "pick a smaller --seed" in error
    assert not list(run_dir.glob("eval*")) and (run_dir / "config.json").read_bytes() == config_before


def test_validation_scores_the_validation_episodes_into_their_own_folder(tmp_path, capsys):
    """--validation plays 2^29 + k (the set choices are made on) into eval_validation/, the folder and
    the returns iterate's evaluate_round writes; with --seed or the random policy it is refused."""
    from controller.evaluate import evaluate as evaluate_run
    from controller.seeds import VALIDATION_SEED_BASE

    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY + ["evaluate.video=false", "evaluate.episodes=3"])
    controller = controller_from_config(config)
    store.save_params(
        run_dir / "controller" / "mean.npz", np.random.default_rng(4).normal(scale=0.3, size=controller.num_params).astype(np.float32), controller
    )
    config_before = (run_dir / "config.json").read_bytes()
    evaluate.main(["--run-dir", str(run_dir), "--validation"])
    episodes = json.loads((run_dir / "eval_validation" / "returns.json").read_text())["episodes"]
    assert [episode["seed"] for episode in episodes] == [VALIDATION_SEED_BASE + k for k in range(3)]
    assert json.loads((run_dir / "eval_validation" / "summary.json").read_text())["first_seed"] == VALIDATION_SEED_BASE
    assert (run_dir / "eval_validation" / "done.json").exists() and not (run_dir / "eval").exists()
    assert (run_dir / "config.json").read_bytes() == config_before
    reference = evaluate_run(config, run_dir, folder="reference", validation=True, progress=False, log=lambda line: None)
    assert json.loads((run_dir / "reference" / "returns.json").read_text())["episodes"] == episodes
    assert reference["mean"] == pytest.approx(np.mean([episode["return"] for episode in episodes]))
    capsys.readouterr()
    evaluate.main(["--run-dir", str(run_dir), "--validation"])
    assert f"{run_dir / 'eval_validation'} already holds these 3 episodes" in capsys.readouterr().out

    for extra in (["--seed", "2000000"], ["--params", "random"]):
        with pytest.raises(SystemExit) as exit_info:
            evaluate.stage.run_main(evaluate.main, ["--run-dir", str(run_dir), "--validation", *extra])
        assert exit_info.value.code == 2
        assert "--validation" in capsys.readouterr().err
    assert not (run_dir / "eval_seed2000000").exists() and not (run_dir / "eval_random").exists()
