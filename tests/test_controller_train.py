"""train_controller in one process: files of every generation, exact resume, refusal of a changed run."""

import json
import shutil

import numpy as np
import pytest

from common.errors import ArtifactError
from common.files import read_jsonl
from controller import noise, store
from controller.policy import ControllerShape, controller_from_config, make_controller
from controller.seeds import TRAINING_SEED_BASE, generation_seeds, mean_evaluation_seeds
from scripts import train_controller
from tests.controller_fixtures import TINY_CARRACING, TINY_DOOM, make_run, vary_dream_deaths


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


def test_dream_training_needs_only_the_first_frame_table_of_extract(tmp_path, capsys):
    """An exported agent ships series/initial_z.npz without extract's done.json: C trains in its
    dream all the same (the same generations as a run with every series); without the table the
    error names extract, the stage that makes it."""
    full, shared = tmp_path / "full", tmp_path / "shared"
    for run_dir in (full, shared):
        make_run(run_dir, "doom-smoke", TINY_DOOM + ["controller.num_generations=2"], with_vae=False)
    (shared / "series" / "done.json").unlink()
    train_controller.main(["--run-dir", str(full)])
    train_controller.main(["--run-dir", str(shared)])
    assert read_results(shared)[2] == read_results(full)[2]

    missing = tmp_path / "missing"
    make_run(missing, "doom-smoke", TINY_DOOM, with_vae=False)
    shutil.rmtree(missing / "series")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train_controller.stage.run_main(train_controller.main, ["--run-dir", str(missing)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"{missing / 'series' / 'done.json'} is missing" in error and "extract" in error
    assert not (missing / "controller").exists()


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


# --- ranking by skill: shared episodes, adaptive rollouts, the validation set (issue 23) ---------

RANKING = [
    "controller.sigma_init=1.0",  # candidates far enough apart to act differently in the tiny dream
    "controller.population_size=8",
    "controller.shared_episodes=true",
    "controller.adaptive_rollouts=true",
    "controller.max_rollouts_per_candidate=8",
    "controller.rank_reliability=0.99",  # a tiny random M ranks by luck: R doubles to its most
    "controller.eval_set=validation",
]


def test_shared_validation_and_evaluation_seeds_follow_the_seed_map():
    from controller.seeds import VALIDATION_SEED_BASE, VALIDATION_SEED_END, evaluation_seeds, validation_seeds
    from workflows import iterate

    shared = generation_seeds(0, 3, 4, 2, shared=True).reshape(4, 2)
    assert (shared == shared[0]).all() and shared[0, 0] != shared[0, 1]  # the same R seeds for every candidate
    assert not np.array_equal(shared[0], generation_seeds(0, 4, 4, 2, shared=True)[:2])  # new ones each generation
    np.testing.assert_array_equal(generation_seeds(0, 3, 6, 2, shared=True)[:2], shared[0])  # rollout r's seed ignores P
    assert shared.min() >= TRAINING_SEED_BASE and not set(shared.ravel()) & set(generation_seeds(0, 3, 4, 2).tolist())
    validation = validation_seeds(100)
    np.testing.assert_array_equal(validation, 2**29 + np.arange(100))  # the same in every run and generation
    assert VALIDATION_SEED_BASE == 2**29 and VALIDATION_SEED_END == iterate.COLLECTION_SEED_BASE == 2**30
    assert evaluation_seeds(2**29 - 100, 100)[-1] == 2**29 - 1  # evaluation may come up to the validation seeds
    with pytest.raises(ArtifactError, match=r"evaluate.seed=536870900 with 100 episodes: evaluation seeds must lie below 2\^29"):
        evaluation_seeds(2**29 - 12, 100)


def recorded_tells(monkeypatch, duplicate: bool):
    """Each tell's (mean returns, episode seeds); with duplicate, candidate 1 is candidate 0."""
    from controller.es import EvolutionStrategy

    tells, ask, tell = [], EvolutionStrategy.ask, EvolutionStrategy.tell

    def asked(self):
        candidates = ask(self)
        if duplicate:
            self._pending[1] = self._pending[0]
        return self._pending.astype(np.float32) if duplicate else candidates

    def told(self, mean_returns, episode_seeds=None):
        tells.append((np.array(mean_returns), np.array(episode_seeds)))
        return tell(self, mean_returns, episode_seeds)

    monkeypatch.setattr(EvolutionStrategy, "ask", asked)
    monkeypatch.setattr(EvolutionStrategy, "tell", told)
    return tells


@pytest.mark.parametrize(("preset", "tiny"), [("doom-smoke", TINY_DOOM), ("carracing-smoke", TINY_CARRACING)], ids=["dream", "real"])
def test_with_shared_episodes_two_equal_candidates_get_equal_fitness(tmp_path, monkeypatch, preset, tiny):
    """Both envs: the dream's first frames and random streams, and the real env's track and z
    noise, are functions of the episode seed alone, so equal controllers on shared seeds are equal."""
    outcomes, tells = {}, recorded_tells(monkeypatch, duplicate=True)
    for shared in (True, False):
        tells.clear()
        run_dir = tmp_path / f"shared{shared}"
        settings = ["controller.num_generations=2", "controller.rollouts_per_candidate=2", "controller.eval_every=0", "controller.sigma_init=1.0"]
        config = make_run(run_dir, preset, tiny + settings + [f"controller.shared_episodes={shared}"], with_vae=preset.startswith("carracing"))
        if preset.startswith("doom"):
            vary_dream_deaths(run_dir, config)
        train_controller.main(["--run-dir", str(run_dir)])
        outcomes[shared] = list(tells)
    for mean_returns, seeds in outcomes[True]:
        assert (seeds == seeds[0]).all()
        assert mean_returns[1] == mean_returns[0]
    # each its own episodes: the same controller scores differently, so the test can tell
    assert any(mean_returns[1] != mean_returns[0] for mean_returns, _ in outcomes[False])


def read_selected(run_dir):
    with np.load(run_dir / "controller" / "selected.npz") as archive:
        return {key: archive[key] for key in archive.files}


def test_ranking_settings_log_their_measure_keep_the_selected_mean_and_resume_exactly(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    config = make_run(uninterrupted, "doom-smoke", TINY_DOOM + RANKING + ["controller.num_generations=5"], with_vae=False)
    vary_dream_deaths(uninterrupted, config)
    resumed = tmp_path / "resumed"
    shutil.copytree(uninterrupted, resumed)  # the same M (make_run's weights are random)
    train_controller.main(["--run-dir", str(uninterrupted)])
    mean, best, records = read_results(uninterrupted)
    # R follows the rule from each generation's measure, and changed
    rollouts = [record["rollouts"] for record in records]
    assert rollouts[0] == 2 and len(set(rollouts)) > 1
    for record, following in zip(records, rollouts[1:], strict=False):
        assert following == noise.next_rollouts(record["rollouts"], record["rank_correlation"], 2, 8, 0.99)
        assert record["rank_reliability"] == noise.reliability(record["rank_correlation"])
    # the selected mean is the best-scoring mean on the validation episodes (the first of equal scores)
    scores = [record["mean_params_return"] for record in records]
    chosen = int(np.argmax(scores))
    selected = read_selected(uninterrupted)
    assert int(selected["generation"]) == chosen == records[-1]["selected_generation"] and len(set(scores)) > 1
    assert float(selected["validation_return"]) == max(scores) == records[-1]["selected_return"]
    assert int(selected["validation_episodes"]) == 3 and int(selected["validation_first_seed"]) == 2**29
    for record in records:
        assert record["selected_generation"] == int(np.argmax(scores[: record["generation"] + 1]))
    # re-scored on the validation episodes, the selected mean gives its validation score
    from controller.seeds import validation_seeds
    from controller.train import dream_scorer

    returns = dream_scorer(config, uninterrupted)(selected["params"][None].repeat(3, axis=0), validation_seeds(3))
    assert float(returns.mean()) == pytest.approx(float(selected["validation_return"]), abs=1e-4)
    if chosen != 4:
        assert not np.array_equal(selected["params"], mean)

    # 2 generations, a kill before the files derived from the state were written, then 5
    train_controller.main(["--run-dir", str(resumed), "--set", "controller.num_generations=2"])
    (resumed / "controller" / "selected.npz").unlink()
    (resumed / "controller" / "done.json").unlink()
    train_controller.main(["--run-dir", str(resumed), "--set", "controller.num_generations=5"])
    resumed_mean, resumed_best, resumed_records = read_results(resumed)
    np.testing.assert_array_equal(resumed_mean, mean)
    np.testing.assert_array_equal(resumed_best, best)
    assert resumed_records == records
    resumed_selected = read_selected(resumed)
    assert resumed_selected.keys() == selected.keys()
    for key, value in selected.items():
        np.testing.assert_array_equal(resumed_selected[key], value)

    # the validation set is the first eval_rollouts episodes: another count cannot pick between means
    (resumed / "controller" / "done.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        train_controller.stage.run_main(
            train_controller.main, ["--run-dir", str(resumed), "--set", "controller.num_generations=6", "--set", "controller.eval_rollouts=5"]
        )
    assert exit_info.value.code == 2
    assert read_results(resumed)[2] == records


def test_fresh_scores_of_the_mean_select_nothing(tmp_path):
    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", TINY_DOOM + ["controller.eval_set=fresh"], with_vae=False)
    train_controller.main(["--run-dir", str(run_dir)])
    records = read_results(run_dir)[2]
    assert all("mean_params_return" in record and "selected_generation" not in record for record in records)
    assert [record["rollouts"] for record in records] == [2, 2]  # not adaptive: rollouts_per_candidate
    assert not (run_dir / "controller" / "selected.npz").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["controller.rollouts_per_candidate=3"], "needs an even controller.rollouts_per_candidate >= 2"),
        (["controller.max_rollouts_per_candidate=1"], "controller.max_rollouts_per_candidate=1 is below controller.rollouts_per_candidate=2"),
        (["controller.rank_reliability=1.0"], "controller.rank_reliability=1.0: expected a correlation strictly between 0 and 1"),
    ],
)
def test_adaptive_rollouts_refuse_settings_they_cannot_run_with(tmp_path, capsys, settings, message):
    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", TINY_DOOM, with_vae=False)
    with pytest.raises(SystemExit) as exit_info:
        train_controller.stage.run_main(
            train_controller.main, ["--run-dir", str(run_dir), "--set", "controller.adaptive_rollouts=true", *sum([["--set", s] for s in settings], [])]
        )
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (run_dir / "controller").exists()


def test_init_from_starts_cma_es_at_another_runs_controller_and_is_recorded(tmp_path, capsys):
    from controller.es import EvolutionStrategy

    source = tmp_path / "source"
    make_run(source, "doom-smoke", TINY_DOOM + ["controller.num_generations=1"], with_vae=False)
    train_controller.main(["--run-dir", str(source)])
    source_mean, source_best, _ = read_results(source)
    for kind, expected in (("", source_mean), (":best", source_best)):
        run_dir = tmp_path / f"run{kind}"
        config = make_run(run_dir, "doom-smoke", TINY_DOOM + ["controller.num_generations=1"], with_vae=False)
        train_controller.main(["--run-dir", str(run_dir), "--init-from", f"{source}{kind}"])
        recorded = json.loads((run_dir / "config.json").read_text())["controller"]["init_from"]
        assert recorded == f"{source.resolve()}:{kind.lstrip(':') or 'mean'}"
        assert json.loads((run_dir / "controller" / "done.json").read_text())["locked"]["controller.init_from"] == recorded
        state = EvolutionStrategy.load(run_dir / "controller" / "es_state.pkl", controller_from_config(config).num_params)
        np.testing.assert_array_equal(state.strategy.x0, expected)
        assert f"CMA-ES starts from {source / 'controller' / (kind.lstrip(':') or 'mean')}.npz (generation 0)" in capsys.readouterr().out
    # a resume knows where it started: no option needed, and another start is refused by the lock
    train_controller.main(["--run-dir", str(run_dir), "--set", "controller.num_generations=2"])
    with pytest.raises(SystemExit) as exit_info:
        train_controller.stage.run_main(train_controller.main, ["--run-dir", str(run_dir), "--init-from", str(source)])
    assert exit_info.value.code == 2 and "controller.init_from" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source_settings", "init", "message"),
    [
        (["rnn.hidden_size=32"], "", "this controller was made for another environment, kind or size"),
        ([], ":selected", "selected.npz is missing"),
    ],
)
def test_init_from_a_controller_that_does_not_fit_is_refused_before_anything_is_written(tmp_path, capsys, source_settings, init, message):
    source = tmp_path / "source"
    make_run(source, "doom-smoke", TINY_DOOM + ["controller.num_generations=1", "controller.eval_set=fresh", *source_settings], with_vae=False)
    train_controller.main(["--run-dir", str(source)])
    run_dir = tmp_path / "run"
    make_run(run_dir, "doom-smoke", TINY_DOOM, with_vae=False)
    config_before = (run_dir / "config.json").read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        train_controller.stage.run_main(train_controller.main, ["--run-dir", str(run_dir), "--init-from", f"{source}{init}"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "controller.init_from (--init-from)" in error and message in error
    assert not (run_dir / "controller").exists() and (run_dir / "config.json").read_bytes() == config_before
