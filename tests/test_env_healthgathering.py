"""ViZDoom Health Gathering (env/games/healthgathering.py): real episodes through make_env, and the
mapping from C's two outputs to the scenario's three buttons."""

import numpy as np
import pytest

from env.config import EnvConfig, GenerateConfig
from env.frames import preprocess_doom
from env.games.healthgathering import BUTTONS, NAMES, action_codes, buttons
from env.make import make_env
from env.policies import episode_actions
from tests.test_env_real import play
from workflows.behaviour import action_stats

STILL_DIES_AT = 384  # the acid alone: standing still, every seed


@pytest.fixture(scope="module")
def game():
    env = make_env(EnvConfig(name="healthgathering", max_steps=2100))
    yield env
    env.close()


def test_reset_and_step_shapes(game):
    assert game.action_size == 2
    frame = game.reset(0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert game.raw_frame.shape == (120, 160, 3) and game.raw_frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, preprocess_doom(game.raw_frame))
    frame, reward, terminated, truncated = game.step(np.array([0.5, 0.5], np.float32))
    assert frame.shape == (64, 64, 3) and isinstance(reward, float) and (terminated, truncated) == (False, False)


def test_standing_still_the_acid_kills_and_every_step_pays_one(game):
    frames, rewards, flags = play(game, 3, np.zeros((2100, 2), np.float32))
    assert len(rewards) == STILL_DIES_AT
    assert flags[-1] == (True, False) and all(flag == (False, False) for flag in flags[:-1])
    # +1 per tic survived, the death step included: the cfg's death_penalty of 100 is set to 0
    assert (rewards == 1.0).all() and rewards.sum() == STILL_DIES_AT
    np.testing.assert_array_equal(frames[-1], frames[-2])  # after death the last frame repeats


def test_the_step_cap_truncates():
    env = make_env(EnvConfig(name="healthgathering", max_steps=50))
    try:
        _, rewards, flags = play(env, 3, np.tile(np.array([0.0, 1.0], np.float32), (100, 1)))
    finally:
        env.close()
    assert len(rewards) == 50 and flags[-1] == (False, True)


def test_same_seed_same_episode_other_seed_other_episode(game):
    actions = episode_actions(GenerateConfig(policy="hold"), "healthgathering", 2, 600, seed=5)
    frames, rewards, flags = play(game, 5, actions)
    again = play(game, 5, actions)
    np.testing.assert_array_equal(frames, again[0])
    np.testing.assert_array_equal(rewards, again[1])
    assert flags == again[2]
    # another seed, the same actions: the medkits lie elsewhere, so the player sees another episode
    other = play(game, 6, actions[:50])[0]
    assert np.abs(other.astype(int) - frames[:51].astype(int)).mean() > 0.3  # 0.71 measured


def test_action_mapping_thresholds():
    third = np.float32(1 / 3)
    turn = {-1.0: 1, -0.34: 1, -third: 0, 0.0: 0, third: 0, 0.34: 2, 1.0: 2}
    forward = {-1.0: 0, 0.0: 0, 1e-6: 1, 1.0: 1}
    outputs = np.array([[a, b] for a in turn for b in forward], np.float32)
    expected = np.array([turn[a] + 3 * forward[b] for a in turn for b in forward])
    np.testing.assert_array_equal(action_codes(outputs), expected)
    np.testing.assert_array_equal(action_codes(outputs.reshape(4, -1, 2)), expected.reshape(4, -1))
    # code -> TURN_LEFT, TURN_RIGHT, MOVE_FORWARD: never both turns, forward on codes 3-5 only
    assert [buttons(np.array(row, np.float32)) for row in ([-1, -1], [1, 1], [0, 1], [0, -1])] == [[1, 0, 0], [0, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert all(not (left and right) and forward == (code >= 3) for code, (left, right, forward) in enumerate(BUTTONS))
    assert len(NAMES) == len(BUTTONS) == 6
    with pytest.raises(ValueError, match="takes 2 controller outputs"):
        action_codes(np.zeros((5, 1)))


def test_the_outputs_steer_the_player(game):
    """Turning and walking change what the player sees; no-op leaves the view as it was."""
    seed, steps = 4, 20
    start = game.reset(seed)
    after = {
        name: play(game, seed, np.tile(np.array(value, np.float32), (steps, 1)))[0][-1]
        for name, value in (("noop", [0, 0]), ("left", [-1, -1]), ("forward", [0, 1]))
    }
    np.testing.assert_array_equal(after["noop"], start)
    assert np.abs(after["left"].astype(int) - start.astype(int)).mean() > 3
    assert np.abs(after["forward"].astype(int) - start.astype(int)).mean() > 1
    assert np.abs(after["left"].astype(int) - after["forward"].astype(int)).mean() > 3


def test_random_policy_and_its_action_statistics():
    config = GenerateConfig(policy="hold")
    actions = episode_actions(config, "healthgathering", 2, 3000, seed=1)
    assert actions.shape == (3000, 2) and actions.dtype == np.float32 and np.abs(actions).max() <= 1
    np.testing.assert_array_equal(actions, episode_actions(config, "healthgathering", 2, 3000, seed=1))
    stats = action_stats([actions[:1500], actions[1500:]], "healthgathering")
    assert list(stats["discrete"]) == list(NAMES)
    shares = np.array(list(stats["discrete"].values()))
    assert shares.sum() == pytest.approx(1.0)
    # a ~ U[-1, 1]^2: each turn a third of the steps, forward half of them
    assert shares[3:].sum() == pytest.approx(0.5, abs=0.07)
    assert shares[[1, 4]].sum() == pytest.approx(1 / 3, abs=0.07)
    codes = action_codes(actions)
    expected_switches = 100 * np.mean(np.concatenate([codes[1:1500] != codes[:1499], codes[1501:] != codes[1500:-1]]))
    assert stats["switches_per_100_steps"] == pytest.approx(expected_switches)
