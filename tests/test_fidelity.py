"""scripts.fidelity: every field of report.json recounted independently (real episodes replayed one
at a time, dream episodes by the single-episode dream, the done head and the z loss by eager Keras
calls), resume and --force, the skip without a controller, and the error without M's weights."""

import json
import shutil

import numpy as np
import pytest

from common.files import write_jsonl
from controller import store
from controller.policy import controller_from_config
from scripts import fidelity as fidelity_script
from tests.controller_fixtures import make_run
from workflows import fidelity, fidelity_summary
from workflows.behaviour import action_stats

EPISODES = 5
FIRST_SEED = 500_000_008  # the random player of seed 500_000_012 dies at step 107, the others survive 120 steps
TINY = [
    "vae.z_size=8",
    "rnn.hidden_size=16",
    "rnn.num_mixtures=2",
    "env.max_steps=120",  # long enough for a random player to die in some episodes
    "controller.max_dream_steps=40",
    "controller.envs_per_worker=2",
    "rnn.validation_fraction=0.1",  # 2 of the 20 series held out
]
NUM_SERIES = 20
STAT_KEYS = {"mean", "std", "median", "min", "max", "count", "lengths", "actions"}


def _write_series(run_dir, config):
    from vae.series import write_series

    rng = np.random.default_rng(3)
    for index in range(NUM_SERIES):
        steps = int(rng.integers(12, 40))
        done = np.zeros(steps, bool)
        done[-1] = index % 3 != 0  # two episodes in three end by death, the others at the cap
        write_series(
            run_dir / "series" / f"{index:06d}.npz",
            rng.normal(size=(steps, config.vae.z_size)),
            rng.normal(scale=0.2, size=(steps, config.vae.z_size)) - 2.0,
            rng.uniform(-1, 1, size=(steps, config.env.action_size)),
            np.ones(steps),
            done,
        )


def _spread_done_logits(run_dir, config):
    """A done logit that follows h strongly: dream episodes end at varied times, calibration bins fill."""
    from rnn.store import WEIGHTS_NAME, load_mdn_rnn

    model = load_mdn_rnn(run_dir / "rnn", config)
    kernel, bias = model.head.get_weights()
    done_index = config.vae.z_size * 3 * config.rnn.num_mixtures
    kernel[:, done_index] = np.random.default_rng(5).normal(scale=4.0, size=config.rnn.hidden_size)
    bias[done_index] = -1.5
    model.head.set_weights([kernel, bias])
    model.save_weights(run_dir / "rnn" / WEIGHTS_NAME)


def _build(run_dir, with_controller=True):
    config = make_run(run_dir, "doom-smoke", TINY)
    _spread_done_logits(run_dir, config)
    _write_series(run_dir, config)
    records = [{"step": 10 * (k + 1), "loss": 3.0, "z_loss": 2.0 - 0.05 * k} for k in range(15)]
    write_jsonl(run_dir / "rnn" / "metrics.jsonl", [*records, {"step": 150, "epoch": 0, "validation_z_loss": 1.75}])
    if with_controller:
        controller = controller_from_config(config)
        params = np.random.default_rng(2).normal(scale=0.5, size=controller.num_params).astype(np.float32)
        store.save_params(run_dir / "controller" / "mean.npz", params, controller, generation=3)
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fidelity") / "run"
    config = _build(run_dir)
    report = fidelity_script.main(["--run-dir", str(run_dir), "--episodes", str(EPISODES), "--seed", str(FIRST_SEED)])
    return run_dir, config, report


def _states(folder):
    return {str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(folder.rglob("*")) if path.is_file()}


def _heldout(run_dir, config):
    from rnn.fidelity import heldout_series
    from vae.series import read_series

    paths = heldout_series(run_dir / "series", config.rnn.validation_fraction, config.rnn.seed)
    return paths, [read_series(path) for path in paths]


def test_report_has_every_part_with_its_structure(finished):
    run_dir, _, report = finished
    assert json.loads((run_dir / "fidelity" / "report.json").read_text()) == report
    for part in ("random_policy", "controller"):
        assert report[part]["dream"].keys() == STAT_KEYS == report[part]["real"].keys()
        for side in ("dream", "real"):
            stats = report[part][side]
            lengths = np.array(stats["lengths"])
            assert stats["count"] == len(lengths) == EPISODES
            assert stats["mean"] == pytest.approx(lengths.mean()) and stats["std"] == pytest.approx(lengths.std())
            assert (stats["median"], stats["min"], stats["max"]) == (np.median(lengths), lengths.min(), lengths.max())
            assert 1 <= lengths.min() and lengths.max() <= report["max_steps"][side] == {"dream": 40, "real": 120}[side]
    assert report["controller"]["skipped"] is False and report["controller"]["params"] == "mean" and report["controller"]["generation"] == 3
    assert len(set(report["random_policy"]["dream"]["lengths"])) > 1, "the dream's episodes should end at varied times"
    calibration = report["done_calibration"]
    assert len(calibration["bins"]) == 10 and calibration["fires"]["last_steps"] == 10
    assert {"low", "high", "count", "deaths", "mean_predicted", "observed_frequency"} == calibration["bins"][0].keys()
    assert report["heldout"]["held_out_from_training"] is True  # M's own validation split (rnn.validation_fraction)
    held = {f"held_{name}_{side}" for name in ("noop", "left", "right") for side in ("dream", "real")}
    assert (
        set(report["seconds"])
        == {"random_policy_dream", "random_policy_real", "controller_dream", "controller_real", "done_calibration", "heldout_z_nll"} | held
    )
    assert report["held_actions"]["skipped"] is False
    assert {name: part["action"] for name, part in report["held_actions"]["actions"].items()} == {"noop": 0.0, "left": -1.0, "right": 1.0}
    with open(run_dir / "fidelity" / "report.png", "rb") as picture:
        assert picture.read(8) == b"\x89PNG\r\n\x1a\n"


def test_real_lengths_equal_episodes_played_one_at_a_time(finished):
    """Lockstep batches (2 envs, refilled) give each seed the episode generate and evaluate would play alone."""
    from controller.store import load_agent
    from env.batch import BatchEnv
    from env.collect import collect_episode
    from env.make import make_env
    from env.policies import episode_actions

    run_dir, config, report = finished
    seeds = report["first_seed"] + np.arange(EPISODES)
    env = make_env(config.env)
    try:
        played = [collect_episode(env, episode_actions(config.generate, "doom", 1, config.env.max_steps, int(seed)), int(seed)) for seed in seeds]
    finally:
        env.close()
    expected = [len(episode["done"]) for episode in played]
    assert report["random_policy"]["real"]["lengths"] == expected
    assert min(expected) < 120, "some real episode should end by death"
    _assert_same_actions(report["random_policy"]["real"]["actions"], action_stats([episode["action"] for episode in played], "doom"))

    params, _ = store.load_params(run_dir / "controller" / "mean.npz", controller_from_config(config))
    agent, batch_env = load_agent(config, run_dir), BatchEnv(config.env, 1)
    taken = []
    try:
        alone = [
            int(agent.run_episodes(batch_env, params[None], np.array([seed]), on_episode=lambda job, episode: taken.append(episode["action"]))["lengths"][0])
            for seed in seeds
        ]
    finally:
        batch_env.close()
    assert report["controller"]["real"]["lengths"] == alone
    # the same steps; C's float32 outputs may differ in the last bit between a batch of 2 and of 1
    _assert_same_actions(report["controller"]["real"]["actions"], action_stats(taken, "doom"))


def _single_dream(run_dir, config):
    """The run's M as a one-episode DreamEnv at the controller's tau and dream cap."""
    from rnn.dream import DreamEnv
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z

    initial_mu, initial_logvar = read_initial_z(run_dir / "series")
    return DreamEnv(load_mdn_rnn(run_dir / "rnn", config), initial_mu, initial_logvar, config.controller.temperature, config.controller.max_dream_steps)


def _dream_episode(env, seed, act) -> np.ndarray:
    """One dream episode from seed's first frame, act(step, observation) choosing each action: the actions taken (length, 1)."""
    observation, _ = env.reset(seed=int(seed))
    episode, ended = [], False
    while not ended:
        action = np.asarray(act(len(episode), observation), np.float32).reshape(1)
        episode.append(action)
        observation, _, terminated, truncated, _ = env.step(action)
        ended = terminated or truncated
    return np.array(episode)


def test_dream_lengths_equal_single_episode_dreams(finished):
    from controller.dream_scoring import ControllerDreamPolicy
    from env.policies import episode_actions

    run_dir, config, report = finished
    env = _single_dream(run_dir, config)
    controller_policy = ControllerDreamPolicy(controller_from_config(config))
    params, _ = store.load_params(run_dir / "controller" / "mean.npz", controller_policy.controller)
    taken = {"random": [], "controller": []}
    for seed in report["first_seed"] + np.arange(EPISODES):
        actions = episode_actions(config.generate, "doom", 1, config.controller.max_dream_steps, int(seed))
        taken["random"].append(_dream_episode(env, seed, lambda step, observation, actions=actions: actions[step]))
        taken["controller"].append(_dream_episode(env, seed, lambda step, observation: controller_policy.episode_action(observation, params)))
    assert report["random_policy"]["dream"]["lengths"] == [len(episode) for episode in taken["random"]]
    assert report["controller"]["dream"]["lengths"] == [len(episode) for episode in taken["controller"]]
    for part, policy in (("random_policy", "random"), ("controller", "controller")):
        _assert_same_actions(report[part]["dream"]["actions"], action_stats(taken[policy], "doom"))


def test_held_actions_equal_episodes_played_one_at_a_time(finished):
    """Each held action: the real lengths equal single games taking that action every step, the
    dream lengths equal single-episode dreams doing the same, and the summary prints both."""
    from env.collect import collect_episode
    from env.make import make_env

    run_dir, config, report = finished
    seeds = report["first_seed"] + np.arange(EPISODES)
    dream = _single_dream(run_dir, config)
    env = make_env(config.env)
    try:
        for name, part in report["held_actions"]["actions"].items():
            action = np.full((config.env.max_steps, 1), part["action"], np.float32)
            assert part["real"]["lengths"] == [len(collect_episode(env, action, int(seed))["done"]) for seed in seeds], name
            dream_lengths = [len(_dream_episode(dream, seed, lambda step, observation, action=action: action[0])) for seed in seeds]
            assert part["dream"]["lengths"] == dream_lengths, name
            assert part["dream_over_real_mean"] == pytest.approx(np.mean(dream_lengths) / np.mean(part["real"]["lengths"]))
            real_lengths = np.array(part["real"]["lengths"], float)
            relative = [np.var(side, ddof=1) / (len(side) * np.mean(side) ** 2) for side in (np.array(dream_lengths, float), real_lengths)]
            assert part["dream_over_real_standard_error"] == pytest.approx(part["dream_over_real_mean"] * np.sqrt(sum(relative)))
    finally:
        env.close()
    lines = fidelity_summary.summary_lines(report, run_dir / "fidelity")
    held = report["held_actions"]["actions"]
    assert (
        "  one action held all episode, dream / real steps: "
        + ", ".join(f"{name} {held[name]['dream']['mean']:.0f} / {held[name]['real']['mean']:.0f}" for name in ("noop", "left", "right"))
    ) in lines


def _assert_same_actions(actual: dict, expected: dict) -> None:
    """Action statistics equal to float32 rounding (the counts exactly)."""
    assert actual.keys() == expected.keys()
    assert (actual["steps"], actual["discrete"]) == (expected["steps"], expected["discrete"])
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=1e-6), key


def _eager_outputs(model, episode, z):
    """M called eagerly on one whole episode: done logits (T,), and mdn.z_loss of z_{t+1} (the training loss)."""
    import tensorflow as tf

    from rnn import mdn

    steps = len(z)
    restart = np.zeros(steps, np.float32)
    restart[0] = 1.0
    inputs = model.make_input(z[None], episode["action"][None], restart[None])
    head_output, _, _ = model(inputs)
    parts = model.split(head_output)
    z_loss = mdn.z_loss(tf.constant(z[None, 1:]), parts["logits"][:, :-1], parts["means"][:, :-1], parts["log_sigmas"][:, :-1])
    return parts["done_logit"].numpy()[0].astype(np.float64), float(z_loss)


def test_calibration_and_heldout_nll_equal_a_recount(finished):
    from rnn.store import load_mdn_rnn

    run_dir, config, report = finished
    model = load_mdn_rnn(run_dir / "rnn", config)
    paths, episodes = _heldout(run_dir, config)
    assert report["heldout"]["series"] == [path.name for path in paths] and len(paths) == 2
    logits, nll_at_mu, nll_sampled = [], [], []
    for index, episode in enumerate(episodes):
        done_logit, z_loss = _eager_outputs(model, episode, episode["mu"])
        logits.append(done_logit)
        nll_at_mu.append(z_loss)
        eps = np.random.default_rng([0, index]).standard_normal(episode["mu"].shape, dtype=np.float32)
        nll_sampled.append(_eager_outputs(model, episode, episode["mu"] + np.exp(episode["logvar"] / 2) * eps)[1])
    dones = [episode["done"] for episode in episodes]
    probability = 1.0 / (1.0 + np.exp(-np.concatenate(logits)))
    died = np.concatenate(dones)
    bin_index = np.minimum(np.floor(probability * 10).astype(int), 9)
    calibration = report["done_calibration"]
    assert sum(entry["count"] for entry in calibration["bins"]) == calibration["steps"] == sum(len(done) for done in dones)
    assert calibration["deaths"] == died.sum() == sum(entry["deaths"] for entry in calibration["bins"])
    assert sum(entry["count"] > 0 for entry in calibration["bins"]) > 2, "the fixture should fill several bins"
    for number, entry in enumerate(calibration["bins"]):
        in_bin = bin_index == number
        assert entry["count"] == in_bin.sum() and entry["deaths"] == died[in_bin].sum()
        if in_bin.any():
            assert entry["observed_frequency"] == pytest.approx(died[in_bin].mean())
            assert entry["mean_predicted"] == pytest.approx(probability[in_bin].mean(), rel=1e-5)
        else:
            assert entry["observed_frequency"] is None
    near = np.concatenate([np.arange(len(done)) >= len(done) - 10 if done[-1] else np.zeros(len(done), bool) for done in dones])
    fires = np.concatenate(logits) > 0
    assert calibration["fires"]["near_death"] == {"steps": int(near.sum()), "fires": int(fires[near].sum()), "rate": pytest.approx(fires[near].mean())}
    assert calibration["fires"]["elsewhere"]["fires"] == fires[~near].sum() and calibration["fires"]["elsewhere"]["steps"] == (~near).sum()

    # z loss: the training loss on each file; over several files, the mean over every step with a next frame
    weights = np.array([len(episode["mu"]) - 1 for episode in episodes], np.float64)
    nll = report["heldout_z_nll"]
    assert nll["z_nll_at_mu"] == pytest.approx(np.average(nll_at_mu, weights=weights), rel=1e-5)
    assert nll["z_nll"] == pytest.approx(np.average(nll_sampled, weights=weights), rel=1e-5)
    assert nll["steps"] == weights.sum() and nll["episodes"] == 2
    assert nll["training"]["z_loss"] == pytest.approx(np.mean([2.0 - 0.05 * k for k in range(5, 15)]))
    assert nll["training"]["records"] == 10 and nll["training"]["steps"] == [60, 150] and nll["training"]["validation_z_loss"] == 1.75


def test_teacher_forcing_on_one_file_equals_the_training_loss(finished):
    from rnn.fidelity import TeacherForcing
    from rnn.store import load_mdn_rnn

    run_dir, config, _ = finished
    model = load_mdn_rnn(run_dir / "rnn", config)
    _, episodes = _heldout(run_dir, config)
    done_logit, z_loss = _eager_outputs(model, episodes[0], episodes[0]["mu"])
    output = TeacherForcing(model).run(episodes[:1])[0]
    np.testing.assert_allclose(output["done_logit"], done_logit, rtol=1e-5, atol=1e-5)
    assert output["z_nll"].mean() == pytest.approx(z_loss, rel=1e-5)


def test_rerun_keeps_every_part_and_force_recomputes_them(finished, tmp_path, capsys):
    source, _, report = finished
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    arguments = ["--run-dir", str(run_dir), "--seed", str(FIRST_SEED)]
    before = _states(run_dir / "fidelity")
    capsys.readouterr()
    fidelity_script.main([*arguments, "--episodes", str(EPISODES)])
    assert _states(run_dir / "fidelity") == before, "a rerun must leave every file as it was"
    assert capsys.readouterr().out.count(": kept from ") == 12

    # another k: only the part it changes is computed again
    changed = fidelity_script.main([*arguments, "--episodes", str(EPISODES), "--last-steps", "4"])
    assert changed["done_calibration"]["fires"]["last_steps"] == 4 and capsys.readouterr().out.count(": kept from ") == 11
    after = _states(run_dir / "fidelity")
    assert {name for name in before if after[name] != before[name]} == {"parts/done_calibration.json", "report.json", "report.png"}

    # --force computes every part again; the same seeds give the same episodes
    recomputed = fidelity_script.main([*arguments, "--episodes", "3", "--force"])
    assert "kept from" not in capsys.readouterr().out
    final = _states(run_dir / "fidelity")
    assert final.keys() == before.keys() and all(final[name][0] != after[name][0] for name in final)
    for part in ("random_policy", "controller"):
        for side in ("dream", "real"):
            assert recomputed[part][side]["count"] == 3
            assert recomputed[part][side]["lengths"] == report[part][side]["lengths"][:3]
    assert recomputed["done_calibration"] == report["done_calibration"] and recomputed["heldout_z_nll"] == report["heldout_z_nll"]


def test_a_part_saved_before_action_statistics_is_computed_again(finished, tmp_path, capsys):
    """A report made by an older version (episode parts without "actions") gains them on a rerun."""
    source, _, report = finished
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    part_path = run_dir / "fidelity" / "parts" / "controller_dream.json"
    stored = json.loads(part_path.read_text())
    del stored["key"]["episode_stats"], stored["result"]["actions"]
    part_path.write_text(json.dumps(stored))
    capsys.readouterr()
    rerun = fidelity_script.main(["--run-dir", str(run_dir), "--seed", str(FIRST_SEED), "--episodes", str(EPISODES)])
    output = capsys.readouterr().out
    assert output.count(": kept from ") == 11 and "controller_dream.json was made from other inputs" in output
    assert {key: value for key, value in rerun.items() if key != "seconds"} == {key: value for key, value in report.items() if key != "seconds"}
    assert "actions in the dream: noop" in output and "switches per 100 steps" in output


def test_without_a_controller_the_report_says_it_skipped(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _build(run_dir, with_controller=False)
    report = fidelity_script.main(["--run-dir", str(run_dir), "--episodes", "2"])
    assert report["controller"]["skipped"] is True
    assert "no controller/mean.npz" in report["controller"]["note"] and "scripts.train_controller" in report["controller"]["note"]
    assert report["random_policy"]["dream"]["count"] == 2 == report["random_policy"]["real"]["count"]
    assert json.loads((run_dir / "fidelity" / "report.json").read_text())["controller"]["skipped"] is True
    assert not (run_dir / "fidelity" / "parts" / "controller_real.json").exists()
    assert "controller: skipped" in capsys.readouterr().out


def test_missing_rnn_weights_is_an_error_and_loses_nothing(tmp_path, capsys):
    from rnn.store import WEIGHTS_NAME

    run_dir = tmp_path / "run"
    _build(run_dir, with_controller=False)
    kept = run_dir / "fidelity" / "parts" / "random_policy_real.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    (run_dir / "rnn" / WEIGHTS_NAME).unlink()
    with pytest.raises(SystemExit) as exit_info:
        fidelity_script.stage.run_main(fidelity_script.main, ["--run-dir", str(run_dir), "--force"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"{run_dir / 'rnn' / WEIGHTS_NAME} is missing" in error and f"python -m scripts.train_rnn --run-dir {run_dir}" in error
    assert kept.read_text() == "{}" and not (run_dir / "fidelity" / "report.json").exists()

    (run_dir / "rnn" / "done.json").unlink()
    with pytest.raises(SystemExit) as exit_info:
        fidelity_script.stage.run_main(fidelity_script.main, ["--run-dir", str(run_dir)])
    assert exit_info.value.code == 2 and "stage 'train_rnn' has not finished" in capsys.readouterr().err


def test_done_calibration_on_known_logits():
    from rnn.fidelity import done_calibration

    # episode 1 dies at its last step; episode 2 reaches the cap
    logits = [np.array([-5.0, -5.0, 0.5, 3.0]), np.array([-3.0, 1.0, -5.0])]
    dones = [np.array([False, False, False, True]), np.array([False, False, False])]
    result = done_calibration(logits, dones, num_bins=2, last_steps=2)
    # p: 0.0067 0.0067 0.62 0.95 | 0.047 0.73 0.0067 -> bin 0: 4 steps, no death; bin 1: 3 steps, 1 death
    assert [(entry["count"], entry["deaths"]) for entry in result["bins"]] == [(4, 0), (3, 1)]
    assert result["bins"][1]["observed_frequency"] == pytest.approx(1 / 3)
    assert result["fires"]["near_death"] == {"steps": 2, "fires": 2, "rate": 1.0}
    assert result["fires"]["elsewhere"] == {"steps": 5, "fires": 1, "rate": 0.2}
    assert result["fires"]["death_step"]["rate"] == 1.0
    assert result["fires"]["deaths_with_a_fire_in_last_steps"] == {"deaths": 1, "detected": 1, "rate": 1.0}
    with pytest.raises(ValueError, match="done logits for"):
        done_calibration(logits, dones[:1], num_bins=2, last_steps=2)


def test_without_calibration_the_report_shows_the_threshold_and_a_note(finished):
    run_dir, _, report = finished
    section = report["done_rule"]
    assert section["rule"] == "threshold" and section["description"] == "threshold (done logit > 0)"
    assert section["calibration"]["skipped"] and "DIR/rnn/calibration.json is missing" in section["calibration"]["note"]
    assert "python -m scripts.calibrate --run-dir DIR" in section["calibration"]["note"]
    assert "  dream done rule: threshold (done logit > 0)" in fidelity_summary.summary_lines(report, run_dir / "fidelity")


def test_the_sampled_rule_remakes_only_the_dream_parts_and_shows_the_calibration(finished, tmp_path, capsys):
    """--done-rule sampled after scripts.calibrate: the five dream parts are made again with the rule
    (each length that of a single-episode dream with it), the real and held-out parts are kept, and
    report.json holds the calibration (its curve before and after); back to the threshold, the dream
    parts are the threshold's again."""
    from controller.dream_scoring import ControllerDreamPolicy
    from env.policies import episode_actions
    from rnn.calibration import done_rule
    from rnn.dream import DreamEnv
    from rnn.store import load_mdn_rnn
    from scripts import calibrate
    from vae.series import read_initial_z

    source, config, report = finished
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    arguments = ["--run-dir", str(run_dir), "--seed", str(FIRST_SEED), "--episodes", str(EPISODES)]
    with pytest.raises(fidelity.ArtifactError, match="calibration.json is missing"):
        fidelity_script.main([*arguments, "--done-rule", "sampled"])
    calibration = calibrate.main(["--run-dir", str(run_dir)])
    assert calibration["data"]["source"] == "heldout" and calibration["data"]["series"] == {"series": ["000004.npz", "000019.npz"]}
    capsys.readouterr()
    sampled = fidelity_script.main([*arguments, "--done-rule", "sampled"])
    output = capsys.readouterr().out
    kept = {line.split(":")[1].strip() for line in output.splitlines() if ": kept from " in line}
    assert kept == {"random_policy_real", "controller_real", "done_calibration", "heldout_z_nll"} | {f"held_{n}_real" for n in ("noop", "left", "right")}
    section = sampled["done_rule"]
    assert section["rule"] == "sampled" and section["calibration"] == {key: calibration[key] for key in fidelity.CALIBRATION_FIELDS}
    assert "dream done rule: sampled, p = sigmoid(" in output and "M's calibration (rnn/calibration.json): heldout, 2 episodes" in output
    assert sampled["random_policy"]["real"] == report["random_policy"]["real"]

    rule = done_rule(config, run_dir / "rnn", "sampled")
    initial_mu, initial_logvar = read_initial_z(run_dir / "series")
    env = DreamEnv(
        load_mdn_rnn(run_dir / "rnn", config), initial_mu, initial_logvar, config.controller.temperature, config.controller.max_dream_steps, done_rule=rule
    )
    controller = controller_from_config(config)
    policy = ControllerDreamPolicy(controller)
    params = store.load_params(run_dir / "controller" / "mean.npz", controller)[0]
    random_lengths, controller_lengths = [], []
    for seed in sampled["first_seed"] + np.arange(EPISODES):
        actions = episode_actions(config.generate, "doom", 1, config.controller.max_dream_steps, int(seed))
        random_lengths.append(len(_dream_episode(env, seed, lambda step, observation, actions=actions: actions[step])))
        controller_lengths.append(len(_dream_episode(env, seed, lambda step, observation: policy.episode_action(observation, params))))
    assert sampled["random_policy"]["dream"]["lengths"] == random_lengths
    assert sampled["controller"]["dream"]["lengths"] == controller_lengths
    assert sampled["random_policy"]["dream"]["lengths"] != report["random_policy"]["dream"]["lengths"]

    back = fidelity_script.main(arguments)
    assert back["done_rule"]["rule"] == "threshold" and back["done_rule"]["calibration"] == section["calibration"]
    for part in ("random_policy", "controller"):
        assert back[part]["dream"] == report[part]["dream"]


def test_calibrate_plays_fresh_episodes_for_a_run_without_series(finished, tmp_path):
    """An exported agent has only series/initial_z.npz: scripts.calibrate plays the random policy and the
    controller on seeds SEED + k, the same real episodes fidelity plays on those seeds, and fits on them."""
    from rnn.calibration import CALIBRATION_NAME
    from scripts import calibrate

    source, _, report = finished
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    for path in (run_dir / "series").glob("0*.npz"):
        path.unlink()
    seed, index = 500_000_012, 4  # the random player dies at step 107 (fidelity's episode 4)
    record = calibrate.main(["--run-dir", str(run_dir), "--episodes", "1", "--seed", str(seed)])
    random_length, controller_length = report["random_policy"]["real"]["lengths"][index], report["controller"]["real"]["lengths"][index]
    assert record["data"]["source"] == "play" and record["data"]["policies"] == {
        "random": {"policy": "hold", "episodes": 1, "first_seed": seed},
        "controller": {"params": "controller/mean.npz", "episodes": 1, "first_seed": seed},
    }
    assert (record["data"]["episodes"], record["data"]["steps"], record["data"]["deaths"]) == (2, random_length + controller_length, 1)
    by_policy = record["death_rate_by_group"]
    assert (by_policy["random"]["steps"], by_policy["random"]["deaths"], by_policy["controller"]["steps"]) == (random_length, 1, controller_length)
    first = (run_dir / "rnn" / CALIBRATION_NAME).read_bytes()
    calibrate.main(["--run-dir", str(run_dir), "--episodes", "1", "--seed", str(seed)])
    assert (run_dir / "rnn" / CALIBRATION_NAME).read_bytes() == first, "the same seeds play the same episodes"
    with pytest.raises(calibrate.stage.StageError, match="--source play"):
        calibrate.main(["--run-dir", str(run_dir), "--source", "heldout"])


def test_the_ratio_standard_error_by_the_delta_method():
    """dream 100, 200 (mean 150, s^2 5,000) over real 300, 300, 600 (mean 400, s^2 30,000): the ratio 0.375,
    its standard error 0.375 sqrt(5000 / (2 150^2) + 30000 / (3 400^2)) = 0.375 x 0.41667 = 0.15625;
    none with a single episode on a side."""
    from workflows.fidelity import length_stats, ratio_standard_error

    assert ratio_standard_error(length_stats([100, 200]), length_stats([300, 300, 600])) == pytest.approx(0.15625)
    assert ratio_standard_error(length_stats([100]), length_stats([300, 300])) is None
    assert fidelity_summary._plus_minus(0.15625) == " ± 0.16" and fidelity_summary._plus_minus(None) == ""
