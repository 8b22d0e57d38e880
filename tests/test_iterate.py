"""scripts.iterate (paper, section 6): one round on a tiny doom-smoke run (random V and M, synthetic
series, a random controller) gives the documented layout and rounds.json; the collected actions are
the controller's plus the documented noise; M starts from the previous weights and CMA-ES from the
previous mean; a rerun of a finished round rewrites nothing; a round stopped mid-way and rerun ends
with the files of an uninterrupted one; bad input stops with status 2 and changes nothing."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from common.files import read_json, read_jsonl
from controller import store
from controller.agent import ACTION_NOISE_STREAM
from controller.policy import controller_from_config
from scripts import iterate as iterate_script
from scripts import stage
from tests.controller_fixtures import make_run
from workflows import iterate

TINY = [
    "vae.z_size=8",
    "rnn.hidden_size=16",
    "rnn.num_mixtures=2",
    "rnn.batch_size=2",
    "rnn.sequence_length=10",
    "env.max_steps=30",
    "controller.population_size=4",
    "controller.rollouts_per_candidate=2",
    "controller.max_dream_steps=25",
    "controller.eval_every=1",
    "controller.eval_rollouts=3",
    "controller.envs_per_worker=2",
    "iterate.episodes_per_round=3",
    "iterate.rnn_epochs=1",
    "iterate.controller_generations=2",
    "iterate.eval_episodes=2",
    "iterate.action_noise=0.3",
    "iterate.fidelity_episodes=2",
]
STEP_FOLDERS = ("rollouts", "series", "rnn", "controller", "eval", "eval_validation", "fidelity")


def _write_series(run_dir, config, count=6):
    from vae.series import write_series

    rng = np.random.default_rng(3)
    for index in range(count):
        steps = int(rng.integers(12, 30))
        done = np.zeros(steps, bool)
        done[-1] = index % 2 == 1  # the held-out 000003 dies: M's calibration has a death to fit
        z_size = config.vae.z_size
        write_series(
            run_dir / "series" / f"{index:06d}.npz",
            rng.normal(size=(steps, z_size)),
            rng.normal(scale=0.2, size=(steps, z_size)) - 2.0,
            rng.uniform(-1, 1, size=(steps, 1)),
            np.ones(steps),
            done,
        )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished tiny pipeline: V, M, series, first frames and C's mean (no rounds yet)."""
    run_dir = tmp_path_factory.mktemp("iterate") / "base"
    config = make_run(run_dir, "doom-smoke", TINY)
    _write_series(run_dir, config)
    controller = controller_from_config(config)
    params = np.random.default_rng(2).normal(scale=0.3, size=controller.num_params).astype(np.float32)
    store.save_params(run_dir / "controller" / "mean.npz", params, controller, generation=1)
    stage.mark_done(run_dir, "train_controller", config)
    return run_dir, config


def copy_run(base_dir, target):
    shutil.copytree(base_dir, target, symlinks=True)
    return target


def tree(run_dir):
    """Every file below the run (links not followed, lock files aside) -> SHA-256."""
    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and not path.is_symlink() and ".locks" not in path.parts
    }


@pytest.fixture(scope="module")
def one_round(base, tmp_path_factory):
    base_dir, config = base
    run_dir = copy_run(base_dir, tmp_path_factory.mktemp("one") / "run")
    records = iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1"])
    return run_dir, config, records


def test_round_layout_and_record(one_round):
    run_dir, config, records = one_round
    folder = run_dir / "iterate" / "round_001"
    for name in STEP_FOLDERS:
        assert read_json(folder / name / "done.json")["summary"], name
    assert (folder / "vae").is_symlink() and (folder / "vae" / "encoder.weights.h5").exists()
    round_config = read_json(folder / "config.json")
    assert round_config["controller"]["num_generations"] == 2 and round_config["evaluate"]["episodes"] == 2
    assert (folder / "rnn" / "mdn_rnn.weights.h5").exists() and (folder / "controller" / "es_state.pkl").exists()
    assert (folder / "eval" / "summary.json").exists() and (folder / "eval" / "returns.json").exists()

    rounds = read_json(run_dir / "iterate" / "rounds.json")
    assert rounds == {"rounds": records, "best_round_by_validation": 1} and len(records) == 1
    record = records[0]
    assert set(record) == {
        "round",
        "new_episodes",
        "real_mean",
        "real_std",
        "validation_mean",
        "validation_std",
        "dream_mean",
        "dream_over_real",
        "dream_over_real_standard_error",
        "seconds",
    }
    assert record["round"] == 1 and record["new_episodes"] == config.iterate.episodes_per_round == 3
    summary = read_json(folder / "eval" / "summary.json")
    returns = [episode["return"] for episode in read_json(folder / "eval" / "returns.json")["episodes"]]
    assert len(returns) == 2 and (record["real_mean"], record["real_std"]) == (summary["mean"], summary["std"]) == (np.mean(returns), np.std(returns))
    assert 0 < record["real_mean"] <= config.env.max_steps  # TakeCover: one point per step survived
    metrics = read_jsonl(folder / "controller" / "metrics.jsonl")
    assert [line["generation"] for line in metrics] == [0, 1]
    assert record["dream_mean"] == metrics[-1]["mean_params_return"] and 0 < record["dream_mean"] <= config.controller.max_dream_steps
    labels = {"collect", "encode", "rnn", "controller", "evaluate", "validate", "fidelity"}
    assert set(record["seconds"]) == labels and all(value > 0 for value in record["seconds"].values())
    assert read_json(run_dir / "iterate" / "done.json")["summary"] == {"rounds": 1}


def test_validation_scores_use_the_validation_seeds(one_round):
    """eval_validation/ plays the mean on 2^29 + k (controller/seeds.py), not on evaluate's seeds,
    and rounds.json's validation figures are those episodes' mean and std."""
    from controller.seeds import validation_seeds

    run_dir, config, records = one_round
    folder = run_dir / "iterate" / "round_001"
    validation = read_json(folder / "eval_validation" / "returns.json")["episodes"]
    evaluation = read_json(folder / "eval" / "returns.json")["episodes"]
    assert [episode["seed"] for episode in validation] == validation_seeds(2).tolist() == [2**29, 2**29 + 1]
    assert [episode["seed"] for episode in evaluation] == [config.evaluate.seed, config.evaluate.seed + 1]
    returns = [episode["return"] for episode in validation]
    assert (records[0]["validation_mean"], records[0]["validation_std"]) == (np.mean(returns), np.std(returns))
    summary = read_json(folder / "eval_validation" / "summary.json")
    assert summary["first_seed"] == 2**29 and summary["mean"] == records[0]["validation_mean"]


def test_length_ratios_are_the_fidelity_parts(one_round):
    """rounds.json's dream_over_real: for the random policy, each held action and the controller,
    the dream's mean episode length over the game's, as saved in the round's fidelity parts."""
    run_dir, config, records = one_round
    parts = run_dir / "iterate" / "round_001" / "fidelity" / "parts"
    assert len(list(parts.glob("*.json"))) == 12  # 2 per policy and side (random, controller, 3 held), 2 held-out checks

    def mean_length(name):
        result = read_json(parts / f"{name}.json")["result"]
        assert result["count"] == config.iterate.fidelity_episodes == 2
        return np.mean(result["lengths"])

    names = ["random_policy", "held_noop", "held_left", "held_right", "controller"]
    expected = {name: mean_length(f"{name}_dream") / mean_length(f"{name}_real") for name in names}
    assert records[0]["dream_over_real"] == pytest.approx(expected, rel=1e-12)

    def relative_variance(name):  # of the mean length, for the delta method's standard error of the ratio
        lengths = np.array(read_json(parts / f"{name}.json")["result"]["lengths"], float)
        return np.var(lengths, ddof=1) / (len(lengths) * lengths.mean() ** 2)

    errors = {name: expected[name] * np.sqrt(relative_variance(f"{name}_dream") + relative_variance(f"{name}_real")) for name in names}
    assert records[0]["dream_over_real_standard_error"] == pytest.approx(errors, rel=1e-12)
    summary = read_json(run_dir / "iterate" / "round_001" / "fidelity" / "done.json")["summary"]
    assert summary["mean_lengths"]["controller"] == {"dream": mean_length("controller_dream"), "real": mean_length("controller_real")}
    report = read_json(run_dir / "iterate" / "round_001" / "fidelity" / "report.json")
    assert report["episodes"] == 2 and report["controller"]["params"] == "mean"


def _record(number, real_mean, validation_mean):
    return {"round": number, "real_mean": real_mean, "validation_mean": validation_mean}


def test_the_best_round_is_chosen_by_validation_not_by_evaluate(tmp_path):
    """Round 2 scores best on evaluate's seeds, round 3 on validation: round 3 is named; equals go to the first."""
    records = [_record(1, 600.0, 500.0), _record(2, 900.0, 550.0), _record(3, 700.0, 800.0)]
    assert int(np.argmax([record["real_mean"] for record in records])) + 1 == 2
    assert iterate.best_round(records) == 3
    assert iterate.best_round([_record(1, 1.0, 7.0), _record(2, 2.0, 7.0)]) == 1 and iterate.best_round([]) is None
    assert iterate.write_rounds(tmp_path, records)
    assert read_json(tmp_path / "iterate" / "rounds.json") == {"rounds": records, "best_round_by_validation": 3}
    assert not iterate.write_rounds(tmp_path, records)  # unchanged: not rewritten
    full = [
        {**record, "new_episodes": 3, "real_std": 1.0, "validation_std": 2.0, "dream_mean": None, "dream_over_real": None, "seconds": {}} for record in records
    ]
    assert iterate_script.summary_lines(full)[-1].startswith("iterate: best round by validation: 3 (validation 800.0;")


def test_a_round_made_before_its_scores_gets_them_and_fidelity_episodes_0_skips_the_report(one_round, tmp_path):
    """A finished round without eval_validation/ and fidelity/ (made before those steps existed) gets
    them on the next run: with iterate.fidelity_episodes=0 only the validation score (dream_over_real
    None, no fidelity/), then the report too, ending with the uninterrupted round's rounds.json."""
    run_dir, config, records = one_round
    copy = copy_run(run_dir, tmp_path / "copy")
    folder = copy / "iterate" / "round_001"
    for name in ("eval_validation", "fidelity"):
        shutil.rmtree(folder / name)
    for path in (copy / "iterate" / "rounds.json", copy / "iterate" / "done.json"):
        path.unlink()
    off = iterate_script.round_config(config)
    off.iterate.fidelity_episodes = 0
    assert iterate.round_steps(off) == ["generate", "extract", "train_rnn", "train_controller", "evaluate", "evaluate_validation"]

    def without_seconds(values):
        return [{key: value for key, value in record.items() if key != "seconds"} for record in values]

    skipped = iterate_script.main(["--run-dir", str(copy), "--rounds", "1", "--set", "iterate.fidelity_episodes=0"])
    assert (
        without_seconds(skipped) == without_seconds([{**records[0], "dream_over_real": None, "dream_over_real_standard_error": None}])
        and "fidelity" not in skipped[0]["seconds"]
    )
    assert not (folder / "fidelity").exists() and (folder / "eval_validation" / "done.json").exists()
    stage.release_locks()
    again = iterate_script.main(["--run-dir", str(copy), "--rounds", "1", "--set", "iterate.fidelity_episodes=2"])  # config.json kept the 0
    assert without_seconds(again) == without_seconds(records)
    assert read_json(copy / "iterate" / "rounds.json")["best_round_by_validation"] == 1


def test_rollouts_are_noisy_controller_episodes(one_round):
    """The files hold the rollout format; replayed alone, each episode is the controller's with the
    documented noise (clip(a + std * N(0, 1) from the episode's own stream, -1, 1)), and differs
    from the noiseless controller's."""
    from controller.store import load_agent
    from env.batch import BatchEnv
    from env.rollouts import list_episodes, read_rollout

    run_dir, config, _ = one_round
    folder = run_dir / "iterate" / "round_001" / "rollouts"
    paths = list_episodes(folder)
    assert [path.name for path in paths] == ["000000.npz", "000001.npz", "000002.npz"]
    controller = controller_from_config(config)
    params, _ = store.load_params(run_dir / "controller" / "mean.npz", controller)
    seeds = iterate.collection_seeds(config.iterate.seed, 1, 3)
    assert len(set(seeds.tolist())) == 3 and all(2**30 <= seed < 2**31 for seed in seeds)
    agent, batch_env = load_agent(config, run_dir), BatchEnv(config.env, 1)
    try:
        for path, seed in zip(paths, seeds, strict=True):
            episode = read_rollout(path, action_size=1)
            steps = len(episode["done"])
            assert 1 <= steps <= config.env.max_steps and episode["obs"].shape == (steps, 64, 64, 3)
            assert (episode["obs"].dtype, episode["action"].dtype, episode["reward"].dtype, episode["done"].dtype) == (
                np.uint8,
                np.float32,
                np.float32,
                np.bool_,
            )
            assert not episode["done"][:-1].any() and np.abs(episode["action"]).max() <= 1.0
            replayed, noiseless = {}, {}
            iterate.play_episodes(agent, batch_env, params, np.array([seed]), 0.3, lambda job, value, into=replayed: into.update(value))
            iterate.play_episodes(agent, batch_env, params, np.array([seed]), 0.0, lambda job, value, into=noiseless: into.update(value))
            for key in ("obs", "reward", "done"):
                np.testing.assert_array_equal(replayed[key], episode[key])
            # a batch of 1 row rounds V's and C's float32 sums differently from the collection's 2 rows: last-bit differences
            np.testing.assert_allclose(replayed["action"], episode["action"], rtol=0, atol=1e-6)
            # the first step: same frame, z noise and zero state, so only the action noise differs
            noise = np.random.default_rng(np.random.SeedSequence([int(seed), ACTION_NOISE_STREAM])).standard_normal(1, dtype=np.float32)
            expected = np.clip(noiseless["action"][0] + np.float32(0.3) * noise, -1.0, 1.0)
            np.testing.assert_allclose(episode["action"][0], expected, rtol=0, atol=1e-6)
            assert not np.array_equal(episode["action"][: len(noiseless["action"])], noiseless["action"][: len(episode["action"])])
            # noiseless, the loop plays exactly the agent's own episode (same steps, same return)
            alone = agent.run_episodes(batch_env, params[None], np.array([seed]))
            assert (len(noiseless["done"]), float(noiseless["reward"].sum())) == (int(alone["lengths"][0]), float(alone["returns"][0]))
    finally:
        batch_env.close()


def test_series_encode_the_round_rollouts(one_round):
    from env.rollouts import list_episodes, read_rollout
    from vae.series import list_series, read_initial_z, read_series

    run_dir, config, _ = one_round
    folder = run_dir / "iterate" / "round_001"
    series = list_series(folder / "series")
    assert [path.name for path in series] == [path.name for path in list_episodes(folder / "rollouts")]
    for series_path in series:
        arrays = read_series(series_path, config.vae.z_size, 1)
        rollout = read_rollout(folder / "rollouts" / series_path.name)
        np.testing.assert_array_equal(arrays["action"], rollout["action"])
        assert arrays["mu"].shape == (len(rollout["obs"]), config.vae.z_size)
    assert read_initial_z(folder / "series")[0].shape == (3, config.vae.z_size)


def test_controller_starts_from_the_previous_mean(one_round):
    from controller.es import EvolutionStrategy

    run_dir, config, _ = one_round
    controller = controller_from_config(config)
    previous, _ = store.load_params(run_dir / "controller" / "mean.npz", controller)
    strategy = EvolutionStrategy.load(run_dir / "iterate" / "round_001" / "controller" / "es_state.pkl", controller.num_params)
    np.testing.assert_array_equal(strategy.strategy.x0, previous.astype(np.float64))
    assert strategy.generation == 2 and strategy.strategy.sigma0 == config.controller.sigma_init


def test_rnn_finetune_starts_from_the_previous_weights(one_round, tmp_path):
    """With 0 epochs the fine-tuned M is the previous one; with 1 it has moved from it."""
    from rnn.store import load_mdn_rnn

    run_dir, config, _ = one_round
    previous = load_mdn_rnn(run_dir / "rnn", config).get_weights()
    folders = iterate.series_folders(run_dir, 1)
    no_epochs = iterate_script.round_config(config)
    no_epochs.rnn.epochs = 0
    iterate.finetune_rnn(folders, tmp_path / "rnn", run_dir / "rnn" / "mdn_rnn.weights.h5", no_epochs, progress=False)
    for kept, old in zip(load_mdn_rnn(tmp_path / "rnn", config).get_weights(), previous, strict=True):
        np.testing.assert_array_equal(kept, old)
    trained = load_mdn_rnn(run_dir / "iterate" / "round_001" / "rnn", config).get_weights()
    assert len(trained) == len(previous) and any(not np.array_equal(new, old) for new, old in zip(trained, previous, strict=True))


def test_each_round_calibrates_m_on_the_episodes_it_held_out_of_every_folder(one_round, tmp_path):
    """The round's rnn/calibration.json is fit on M's held-out split of the run's series and of the
    round's own (the controller's episodes); scripts.calibrate on the round folder remakes it exactly."""
    import os

    from rnn.data import split_series_paths
    from scripts import calibrate
    from vae.extract import weights_fingerprint
    from vae.series import list_series

    run_dir, config, _ = one_round
    folder = run_dir / "iterate" / "round_001"
    record = read_json(folder / "rnn" / "calibration.json")
    paths = [path for series in iterate.series_folders(run_dir, 1) for path in list_series(series)]
    _, held_out = split_series_paths(paths, config.rnn.validation_fraction, config.rnn.seed)
    expected = {}
    for path in held_out:
        expected.setdefault(os.path.relpath(path.parent, folder), []).append(path.name)
    assert record["data"]["series"] == expected and set(expected) == {"../../series", "series"}  # the round's own episodes are in
    assert {group: values["episodes"] for group, values in record["death_rate_by_group"].items()} == {"../../series": 1, "series": 1}
    assert record["data"]["episodes"] == len(held_out) == 2 and record["m_sha256"] == weights_fingerprint(folder / "rnn" / "mdn_rnn.weights.h5")
    assert read_json(folder / "rnn" / "done.json")["summary"]["calibration"]["offset"] == record["offset"]

    copy = copy_run(run_dir, tmp_path / "copy")
    (copy / "iterate" / "round_001" / "rnn" / "calibration.json").unlink()
    calibrate.main(["--run-dir", str(copy / "iterate" / "round_001")])
    assert (copy / "iterate" / "round_001" / "rnn" / "calibration.json").read_bytes() == (folder / "rnn" / "calibration.json").read_bytes()


def test_rerun_of_a_finished_round_rewrites_nothing(one_round):
    run_dir, _, records = one_round
    before = tree(run_dir)
    assert iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1"]) == records
    assert tree(run_dir) == before


def test_a_changed_locked_setting_is_refused_after_a_round(one_round):
    run_dir, _, _ = one_round
    with pytest.raises(stage.StageError, match="iterate.action_noise"):
        iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1", "--set", "iterate.action_noise=0.5"])


def _comparable(run_dir):
    """The round's results as content: every array of every .npz, JSON files without timings and paths."""
    folder = run_dir / "iterate" / "round_001"
    arrays = {}
    for path in sorted(folder.rglob("*.npz")):
        with np.load(path, allow_pickle=False) as archive:
            arrays.update({f"{path.relative_to(folder)}:{key}": archive[key] for key in archive.files})
    metrics = [{key: value for key, value in record.items() if key != "seconds"} for record in read_jsonl(folder / "controller" / "metrics.jsonl")]
    returns = [read_json(folder / name / "returns.json")["episodes"] for name in ("eval", "eval_validation")]
    parts = {path.name: read_json(path)["result"] for path in sorted((folder / "fidelity" / "parts").glob("*.json"))}
    rounds = read_json(run_dir / "iterate" / "rounds.json")
    rounds["rounds"] = [{key: value for key, value in record.items() if key != "seconds"} for record in rounds["rounds"]]
    return arrays, metrics, returns, parts, rounds


class Stop(Exception):
    pass


def test_a_round_stopped_mid_way_ends_like_an_uninterrupted_one(one_round, base, tmp_path, monkeypatch):
    """Stopped after one collected episode, then (rerun) after C's first generation, then (rerun)
    after three parts of the fidelity report: the final rollouts, series, M, C, both evaluations,
    the fidelity parts and rounds.json (best round included) equal the uninterrupted round's."""
    import controller.train
    import workflows.fidelity

    run_dir = copy_run(base[0], tmp_path / "run")
    written = []
    original_write = iterate.write_rollout

    def write_then_stop(path, **arrays):
        original_write(path, **arrays)
        written.append(path)
        raise Stop

    monkeypatch.setattr(iterate, "write_rollout", write_then_stop)
    with pytest.raises(Stop):
        iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1"])
    assert len(written) == 1 and not (run_dir / "iterate" / "round_001" / "rollouts" / "done.json").exists()
    monkeypatch.setattr(iterate, "write_rollout", original_write)
    stage.release_locks()

    original_save = controller.train.Rank0.save

    def save_then_stop(self, record, seconds):
        original_save(self, record, seconds)
        raise Stop

    monkeypatch.setattr(controller.train.Rank0, "save", save_then_stop)
    with pytest.raises(Stop):
        iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1"])
    folder = run_dir / "iterate" / "round_001"
    assert (folder / "rnn" / "done.json").exists() and len(read_jsonl(folder / "controller" / "metrics.jsonl")) == 1
    assert not (folder / "controller" / "done.json").exists() and not (run_dir / "iterate" / "rounds.json").exists()
    monkeypatch.setattr(controller.train.Rank0, "save", original_save)
    stage.release_locks()

    original_get, calls = workflows.fidelity._Parts.get, []

    def get_then_stop(self, name, key, compute):
        stored = original_get(self, name, key, compute)
        calls.append(name)
        if len(calls) == 3:
            raise Stop
        return stored

    monkeypatch.setattr(workflows.fidelity._Parts, "get", get_then_stop)
    with pytest.raises(Stop):
        iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1"])
    assert (folder / "eval_validation" / "done.json").exists() and len(list((folder / "fidelity" / "parts").glob("*.json"))) == 3
    assert not (folder / "fidelity" / "done.json").exists() and not (run_dir / "iterate" / "rounds.json").exists()
    monkeypatch.setattr(workflows.fidelity._Parts, "get", original_get)
    stage.release_locks()

    iterate_script.main(["--run-dir", str(run_dir), "--rounds", "1"])
    resumed, uninterrupted = _comparable(run_dir), _comparable(one_round[0])
    assert resumed[0].keys() == uninterrupted[0].keys()
    for key, value in uninterrupted[0].items():
        np.testing.assert_array_equal(resumed[0][key], value, err_msg=key)
    assert resumed[1:] == uninterrupted[1:]


def test_no_controller_is_refused_with_status_2_and_nothing_changes(base, tmp_path, capsys):
    run_dir = copy_run(base[0], tmp_path / "run")
    (run_dir / "controller" / "mean.npz").unlink()
    before = tree(run_dir)
    with pytest.raises(SystemExit) as stopped:
        stage.run_main(iterate_script.main, ["--run-dir", str(run_dir), "--rounds", "1"])
    stage.release_locks()
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "mean.npz is missing" in message and "scripts.train_controller" in message
    assert tree(run_dir) == before and not (run_dir / "iterate").exists()


def test_rounds_that_cannot_continue_are_refused_naming_the_command_that_starts_them_over(one_round, tmp_path, capsys):
    """A missing round, rounds made from another M and an unfinished round's broken checkpoint each
    stop with status 2, naming the file and iterate's --force command (built by the run layout), and
    change nothing."""
    run_dir, _, _ = one_round
    start_over = "`python -m scripts.iterate --run-dir {} --rounds N --force`"

    gap = copy_run(run_dir, tmp_path / "gap")
    (gap / "iterate" / "round_001").rename(gap / "iterate" / "round_002")
    changed = copy_run(run_dir, tmp_path / "changed")
    source = changed / "iterate" / "source.json"
    source.write_text(json.dumps({**read_json(source), "rnn_sha256": "0" * 64}))
    broken = copy_run(run_dir, tmp_path / "broken")
    (broken / "iterate" / "round_001" / "controller" / "done.json").unlink()  # the round's C still to finish
    checkpoint = broken / "iterate" / "round_001" / "rnn" / "checkpoints" / "last.npz"
    checkpoint.write_bytes(b"not a checkpoint")
    for copy, expected in (
        (gap, f"{gap / 'iterate'} holds rounds [2]: expected 1..1 with none missing; rerun {start_over.format(gap)}"),
        (changed, f"{source}: the rounds in {source.parent} were made from another rnn than the run's"),
        (broken, f"{checkpoint}: unreadable checkpoint"),
    ):
        before = tree(copy)
        with pytest.raises(SystemExit) as stopped:
            stage.run_main(iterate_script.main, ["--run-dir", str(copy), "--rounds", "2"])
        stage.release_locks()
        message = capsys.readouterr().err
        assert stopped.value.code == 2 and expected in message and start_over.format(copy) in message
        assert tree(copy) == before


def test_a_fidelity_report_already_on_the_round_is_kept(one_round, tmp_path):
    """scripts.fidelity's report on a round (here: the round's own, its done.json gone) is reused with
    its episode count, whatever iterate.fidelity_episodes says: no part is recomputed or replaced."""
    run_dir, _, records = one_round
    copy = copy_run(run_dir, tmp_path / "copy")
    folder = copy / "iterate" / "round_001" / "fidelity"
    for path in (folder / "done.json", copy / "iterate" / "rounds.json", copy / "iterate" / "done.json"):
        path.unlink()
    before = tree(folder)
    again = iterate_script.main(["--run-dir", str(copy), "--rounds", "1", "--set", "iterate.fidelity_episodes=5"])
    assert again[0]["dream_over_real"] == records[0]["dream_over_real"]
    assert {name: digest for name, digest in tree(folder).items() if name != "done.json"} == before
    assert read_json(folder / "done.json")["summary"]["episodes"] == 2


def test_fidelity_reports_need_two_episodes_a_round(base):
    config = iterate_script.round_config(base[1])
    config.iterate.episodes_per_round = 1
    with pytest.raises(stage.StageError, match="iterate.fidelity_episodes=2 with iterate.episodes_per_round=1"):
        iterate_script.check_settings(config)
    config.iterate.fidelity_episodes = 0
    iterate_script.check_settings(config)
    config.iterate.fidelity_episodes = -1
    with pytest.raises(stage.StageError, match="iterate.fidelity_episodes=-1: expected at least 0"):
        iterate_script.check_settings(config)


def test_a_real_mode_run_is_refused(base, tmp_path, capsys):
    run_dir = copy_run(base[0], tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["controller"]["mode"] = "real"
    (run_dir / "config.json").write_text(json.dumps(config))
    done = json.loads((run_dir / "controller" / "done.json").read_text())
    done["locked"]["controller.mode"] = "real"  # as if C had been trained in the real env
    (run_dir / "controller" / "done.json").write_text(json.dumps(done))
    before = tree(run_dir)
    with pytest.raises(SystemExit) as stopped:
        stage.run_main(iterate_script.main, ["--run-dir", str(run_dir), "--rounds", "1"])
    stage.release_locks()
    assert stopped.value.code == 2 and "controller.mode='real'" in capsys.readouterr().err
    assert tree(run_dir) == before
