"""train_controller in one process: files of every generation, exact resume, refusal of a changed run."""

import json
import shutil

import numpy as np
import pytest

from common.files import read_jsonl
from controller import store
from controller.policy import ControllerShape, make_controller
from controller.seeds import TRAINING_SEED_BASE, generation_seeds, mean_evaluation_seeds
from scripts import train_controller
from tests.controller_fixtures import TINY_CARRACING, TINY_DOOM, make_run


def test_training_seeds_are_pure_and_disjoint_from_evaluation_seeds():
    first = generation_seeds(0, 3, 4, 2)
    np.testing.assert_array_equal(first, generation_seeds(0, 3, 4, 2))
    assert len(set(first.tolist())) == 8
    assert not np.array_equal(first, generation_seeds(0, 4, 4, 2))
    assert not np.array_equal(first, generation_seeds(1, 3, 4, 2))
    every = np.concatenate([first, mean_evaluation_seeds(0, 3, 10)])
    assert every.min() >= TRAINING_SEED_BASE and every.max() < 2**32  # evaluation uses evaluate.seed + k < 2^31


def read_results(run_dir):
    mean, _ = np.load(run_dir / "controller" / "mean.npz")["params"], None
    best = np.load(run_dir / "controller" / "best.npz")["params"]
    records = read_jsonl(run_dir / "controller" / "metrics.jsonl")
    for record in records:
        record.pop("seconds")
    return mean, best, records


def test_dream_training_writes_every_file_and_resumes_exactly(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    make_run(uninterrupted, "doom-smoke", TINY_DOOM + ["controller.num_generations=4"], with_vae=False)
    train_controller.main(["--run-dir", str(uninterrupted)])
    controller_dir = uninterrupted / "controller"
    for name in ("es_state.pkl", "best.npz", "mean.npz", "metrics.jsonl", "curve.png", "done.json"):
        assert (controller_dir / name).exists(), name
    mean, best, records = read_results(uninterrupted)
    assert [record["generation"] for record in records] == [0, 1, 2, 3]
    for record in records:
        assert record["fitness_worst"] <= record["fitness_mean"] <= record["fitness_best"]
        assert "mean_params_return" in record  # eval_every=1
    config = json.loads((uninterrupted / "config.json").read_text())
    controller = make_controller(ControllerShape("doom", 8, 16, 1, use_cell_state=True, use_bias=False))
    assert config["controller"]["mode"] == "dream"
    assert mean.shape == (controller.num_params,)
    store.load_params(controller_dir / "mean.npz", controller)

    # 2 generations, "killed", then resumed to 4: the same as 4 in one go
    resumed = tmp_path / "resumed"
    make_run(resumed, "doom-smoke", TINY_DOOM + ["controller.num_generations=2"], with_vae=False)
    train_controller.main(["--run-dir", str(resumed)])
    two_generations = read_results(resumed)
    # a kill after the last state was saved but before the files derived from it: a rerun repairs them
    lines = (resumed / "controller" / "metrics.jsonl").read_text().splitlines()
    (resumed / "controller" / "metrics.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    (resumed / "controller" / "mean.npz").unlink()
    (resumed / "controller" / "done.json").unlink()
    train_controller.main(["--run-dir", str(resumed)])
    repaired = read_results(resumed)
    np.testing.assert_array_equal(repaired[0], two_generations[0])
    assert repaired[2] == two_generations[2] == records[:2]
    train_controller.main(["--run-dir", str(resumed), "--set", "controller.num_generations=4"])
    resumed_mean, resumed_best, resumed_records = read_results(resumed)
    np.testing.assert_array_equal(resumed_mean, mean)
    np.testing.assert_array_equal(resumed_best, best)
    assert resumed_records == records


def test_a_changed_setting_is_refused_on_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", TINY_DOOM + ["controller.num_generations=1"], with_vae=False)
    train_controller.main(["--run-dir", str(run_dir)])
    (run_dir / "controller" / "done.json").unlink()  # as if it had been killed
    with pytest.raises(SystemExit) as exit_info:
        train_controller.stage.run_main(train_controller.main, ["--run-dir", str(run_dir), "--set", "controller.population_size=6"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    # refused by the stage's lock (controller/started.json) before anything loads: nothing is lost
    assert "controller.population_size=6" in error and "started.json" in error and "--force" in error
    assert (run_dir / "controller" / "es_state.pkl").exists()
    # --force starts over with the new value
    train_controller.main(["--run-dir", str(run_dir), "--set", "controller.population_size=6", "--force"])
    shutil.rmtree(run_dir)


def test_a_rerun_killed_before_it_finishes_leaves_the_stage_unfinished(tmp_path, monkeypatch):
    import controller.train

    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", TINY_DOOM + ["controller.num_generations=1"], with_vae=False)
    train_controller.main(["--run-dir", str(run_dir)])
    assert (run_dir / "controller" / "done.json").exists()

    def killed(*arguments, **keywords):
        raise KeyboardInterrupt

    monkeypatch.setattr(controller.train, "train_controller", killed)
    with pytest.raises(KeyboardInterrupt):
        train_controller.main(["--run-dir", str(run_dir), "--set", "controller.num_generations=3"])
    # else the pipeline, evaluate and dream would take the 1-generation controller as the finished one
    assert not (run_dir / "controller" / "done.json").exists()


def test_real_mode_results_do_not_depend_on_how_many_envs_a_worker_steps(tmp_path):
    """CarRacing in the real env: 1 env stepping every episode in turn, or 3 in lockstep (the
    periodic mean scoring then leaves rows idle): the same episodes, so the same results."""
    outcomes = []
    for envs in (1, 3):
        run_dir = tmp_path / f"envs{envs}"
        make_run(run_dir, "carracing-smoke", TINY_CARRACING + ["controller.eval_every=1", "controller.eval_rollouts=2", f"controller.envs_per_worker={envs}"])
        train_controller.main(["--run-dir", str(run_dir)])
        outcomes.append(read_results(run_dir))
    (mean_one, best_one, records_one), (mean_three, best_three, records_three) = outcomes
    assert records_one[0]["mean_params_return_std"] >= 0 and records_one[0]["fitness_best"] > records_one[0]["fitness_worst"]
    np.testing.assert_array_equal(mean_three, mean_one)
    np.testing.assert_array_equal(best_three, best_one)
    assert records_three == records_one


def test_a_non_finite_return_names_the_generation_candidate_and_episode_seeds(tmp_path):
    """Issue 11: CMA-ES cannot rank a NaN; the error says which candidate and episodes gave it."""
    from controller.parallel import Workers
    from controller.train import train_controller as train

    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", TINY_DOOM + ["controller.num_generations=1"], with_vae=False)
    seeds = generation_seeds(config.controller.seed, 0, 4, 2)  # job j: candidate j // 2, rollout j % 2

    def scorer(params, job_seeds):
        return np.where(job_seeds == seeds[3], np.nan, 1.0).astype(np.float32)  # candidate 1, rollout 1

    expected = rf"generation 0: candidate 1 of 4 has a non-finite mean return nan \(episode seeds \[{seeds[2]}, {seeds[3]}\]\)"
    with pytest.raises(ValueError, match=expected):
        train(config, run_dir, Workers(communicator=None), scorer=scorer, log=lambda line: None, progress=False)
    assert not (run_dir / "controller" / "es_state.pkl").exists()  # nothing told, nothing saved
