"""Random collection policies: seeded, in range, smooth (brownian) or held (hold)."""

import numpy as np

from env.config import GenerateConfig
from env.policies import brownian_actions, episode_actions, hold_actions


def test_same_seed_same_actions_other_seed_other_actions():
    for policy, env_name, size in (("brownian", "carracing", 3), ("hold", "doom", 1)):
        config = GenerateConfig(policy=policy)
        first = episode_actions(config, env_name, size, 300, seed=7)
        assert first.shape == (300, size) and first.dtype == np.float32
        np.testing.assert_array_equal(first, episode_actions(config, env_name, size, 300, seed=7))
        assert not np.array_equal(first, episode_actions(config, env_name, size, 300, seed=8))


def test_brownian_is_a_clipped_random_walk():
    scale = 0.1
    actions = brownian_actions(np.random.default_rng(0), 2000, 2, scale)
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    steps = np.abs(np.diff(actions, axis=0))
    assert steps.max() < 6 * scale  # increments are N(0, scale), never jumps
    assert 0.5 * scale < np.diff(actions, axis=0).std() < 1.5 * scale
    assert actions.std() > 0.3  # it wanders across the range


def test_carracing_brownian_drives():
    config = GenerateConfig(policy="brownian", brownian_drive_bias=1.0)
    actions = np.concatenate([episode_actions(config, "carracing", 3, 500, seed) for seed in range(20)])
    gas = (actions[:, 1] + 1) / 2
    brake = np.clip(actions[:, 2], 0, 1)
    assert gas.mean() > 0.6 and brake.mean() < 0.15
    unbiased = np.concatenate([episode_actions(GenerateConfig(brownian_drive_bias=0.0), "carracing", 3, 500, seed) for seed in range(20)])
    assert np.clip(unbiased[:, 2], 0, 1).mean() > brake.mean()


def test_hold_holds_each_value_for_min_to_max_steps():
    actions = hold_actions(np.random.default_rng(3), 1000, 1, 1, 10)[:, 0]
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    change = np.flatnonzero(np.diff(actions) != 0) + 1
    runs = np.diff(np.concatenate([[0], change]))
    assert runs.min() >= 1 and runs.max() <= 10
    assert len(set(runs.tolist())) > 5  # lengths vary
    long_holds = hold_actions(np.random.default_rng(4), 500, 1, 5, 5)[:, 0]
    runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(long_holds) != 0) + 1]))
    assert (runs == 5).all()
