"""End to end on the third game: the healthgathering-smoke pipeline (V, M and C on ViZDoom Health
Gathering, C trained in M's dream as for TakeCover), every artifact checked for its sizes and
content, then the fidelity report with the game's own held actions, replayed one game at a time.
V trains for 1 epoch instead of the preset's 8: no test here reads how well it learned."""

import json

import numpy as np
import pytest

from env.rollouts import list_episodes, read_rollout
from scripts import config as config_module
from scripts import pipeline
from vae.series import list_series, read_initial_z, read_series

PRESET = "healthgathering-smoke"
# The random player of seeds 0 and 1 dies on the acid at step 384; seed 2 lives to the 400-step cap.
LENGTHS = [384, 384, 400]
FIDELITY_EPISODES = 2


@pytest.fixture(scope="module")
def config():
    return config_module.build(PRESET)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pipeline") / PRESET
    timings = pipeline.main(["--preset", PRESET, "--set", "vae.epochs=1", "--run-dir", str(run_dir)])
    return run_dir, timings


def test_every_stage_ran_once(finished_run):
    _, timings = finished_run
    assert [name for name, status, _ in timings if status == "ran"] == list(pipeline.ORDER)


def test_rollouts_hold_the_games_episodes(finished_run, config):
    run_dir, _ = finished_run
    paths = list_episodes(run_dir / "rollouts")
    episodes = [read_rollout(path, action_size=2) for path in paths]
    assert [len(episode["obs"]) for episode in episodes] == LENGTHS
    for episode, steps in zip(episodes, LENGTHS, strict=True):
        assert episode["obs"].shape == (steps, 64, 64, 3) and episode["obs"].dtype == np.uint8
        assert episode["action"].shape == (steps, 2) and np.abs(episode["action"]).max() <= 1
        assert (episode["reward"] == 1.0).all()  # +1 per step survived
        # a death ends the episode; the cap does not count as one
        assert episode["done"][:-1].sum() == 0 and episode["done"][-1] == (steps < config.env.max_steps)


def test_v_m_and_c_have_the_papers_doom_sizes_with_two_actions(finished_run, config):
    from rnn.store import load_mdn_rnn

    run_dir, _ = finished_run
    for name in ("encoder.weights.h5", "decoder.weights.h5"):
        assert (run_dir / "vae" / name).stat().st_size > 1_000_000, name
    series = list_series(run_dir / "series")
    for path, steps in zip(series, LENGTHS, strict=True):
        arrays = read_series(path, z_size=64, action_size=2)
        assert arrays["mu"].shape == (steps, 64) and np.isfinite(arrays["mu"]).all()
    initial_mu, _ = read_initial_z(run_dir / "series", z_size=64)
    assert initial_mu.shape == (3, 64)
    # M: LSTM over [z 64, a 2, restart] with 512 units, head 3 x 5 x 64 + the done logit
    assert load_mdn_rnn(run_dir / "rnn", config).count_params() == 4 * (67 + 512 + 1) * 512 + 513 * (3 * 5 * 64 + 1) == 1_680_833
    with np.load(run_dir / "controller" / "mean.npz", allow_pickle=False) as mean:
        assert mean["params"].shape == ((64 + 2 * 512) * 2,) and np.isfinite(mean["params"]).all()  # [z, c, h] -> 2 outputs, no bias


def test_evaluation_counts_steps_survived(finished_run, config):
    run_dir, _ = finished_run
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    episodes = json.loads((run_dir / "eval" / "returns.json").read_text())["episodes"]
    assert len(episodes) == config.evaluate.episodes
    assert all(episode["return"] == episode["length"] <= config.env.max_steps for episode in episodes)
    assert summary["env"] == "healthgathering" and summary["env_renderer"] is None and summary["solved_return"] is None
    assert summary["mean"] == pytest.approx(np.mean([episode["return"] for episode in episodes]))
    assert pipeline._videos(run_dir / "dream")


def test_fidelity_plays_the_games_held_actions(finished_run, config):
    from env.collect import collect_episode
    from env.make import make_env
    from scripts import fidelity as fidelity_script

    run_dir, _ = finished_run
    report = fidelity_script.main(["--run-dir", str(run_dir), "--episodes", str(FIDELITY_EPISODES)])
    held = report["held_actions"]
    assert not held["skipped"]
    assert {name: part["action"] for name, part in held["actions"].items()} == {
        "noop": 0.0,
        "left": [-1.0, -1.0],
        "forward": [0.0, 1.0],
        "forward_left": [-1.0, 1.0],
    }
    seeds = report["first_seed"] + np.arange(FIDELITY_EPISODES)
    env = make_env(config.env)
    try:
        for name, part in held["actions"].items():
            actions = np.broadcast_to(np.asarray(part["action"], np.float32), (config.env.max_steps, 2))
            assert part["real"]["lengths"] == [len(collect_episode(env, actions, int(seed))["done"]) for seed in seeds], name
    finally:
        env.close()
    assert held["actions"]["noop"]["real"]["lengths"] == [384] * FIDELITY_EPISODES  # standing still on the acid
    assert list(report["random_policy"]["real"]["actions"]["discrete"]) == ["noop", "left", "right", "forward", "forward_left", "forward_right"]
