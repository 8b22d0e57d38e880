"""The dream: gymnasium compliance, batched == single-episode, per-row seeding."""

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rnn.config import RnnConfig
from rnn.dream import BatchedDream, DreamEnv, linear_controller
from rnn.model import build_mdn_rnn

Z_SIZE, ACTION_SIZE, HIDDEN_SIZE, MAX_STEPS = 4, 1, 16, 40


@pytest.fixture(scope="module")
def dream_parts():
    """A small Doom-like M (restart input, done head) whose episodes end at varied times."""
    import keras

    keras.utils.set_random_seed(0)
    config = dataclasses.replace(RnnConfig(), hidden_size=HIDDEN_SIZE, num_mixtures=3, restart_input=True, predict_done=True)
    model = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    kernel, bias = model.head.get_weights()
    kernel[:, -1] = np.random.default_rng(5).normal(scale=4.0, size=HIDDEN_SIZE)  # the done logit follows h strongly ...
    bias[-1] = -2.5  # ... from a negative start: episodes of varied lengths
    model.head.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    initial_mu = rng.normal(size=(5, Z_SIZE)).astype(np.float32)
    initial_logvar = rng.normal(scale=0.3, size=(5, Z_SIZE)).astype(np.float32) - 1.0
    return model, initial_mu, initial_logvar


def _controllers(num_rows, feature_size, seed=1):
    rng = np.random.default_rng(seed)
    weights = rng.normal(scale=0.5, size=(num_rows, feature_size, ACTION_SIZE)).astype(np.float32)
    biases = rng.normal(scale=0.1, size=(num_rows, ACTION_SIZE)).astype(np.float32)
    return weights, biases


def test_dream_env_passes_check_env(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=True)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=3)
    assert observation.shape == (Z_SIZE + 2 * HIDDEN_SIZE,)
    np.testing.assert_array_equal(observation[Z_SIZE:], 0.0)  # zero LSTM state at the start


def test_batched_and_single_episode_dreams_agree(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    num_rows = 21
    seeds = np.arange(100, 100 + num_rows, dtype=np.int64)
    batched = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=True)
    weights, biases = _controllers(num_rows, batched.feature_size)
    returns, lengths = batched.run(weights, biases, seeds, return_lengths=True)
    assert len(set(lengths.tolist())) > 3, f"episode lengths should vary: {lengths}"  # compaction is exercised
    np.testing.assert_array_equal(returns, lengths.astype(np.float32))  # +1 per step

    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=True)
    for row in range(num_rows):
        observation, _ = env.reset(seed=int(seeds[row]))
        total, finished = 0.0, False
        while not finished:
            action = linear_controller(env.core, observation[None], weights[row : row + 1], biases[row : row + 1])[0]
            observation, reward, terminated, truncated, _ = env.step(action)
            total += reward
            finished = terminated or truncated
        assert total == returns[row], f"row {row}: single {total} vs batched {returns[row]}"


def test_same_seeds_same_returns_and_split_batches_agree(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    num_rows = 37
    seeds = np.arange(7, 7 + num_rows, dtype=np.int64) * 1_000_003
    batched = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=False)
    weights, biases = _controllers(num_rows, batched.feature_size, seed=2)
    whole = batched.run(weights, biases, seeds)
    np.testing.assert_array_equal(batched.run(weights, biases, seeds), whole)
    # as two MPI ranks would: each runs a part of the rows
    for parts in ([0, 5, 37], [0, 1, 20, 37], [0, 36, 37]):
        split = np.concatenate([batched.run(weights[a:b], biases[a:b], seeds[a:b]) for a, b in zip(parts[:-1], parts[1:], strict=True)])
        np.testing.assert_array_equal(split, whole)
    # a permuted batch gives each row the same return
    order = np.random.default_rng(0).permutation(num_rows)
    np.testing.assert_array_equal(batched.run(weights[order], biases[order], seeds[order]), whole[order])
    other = batched.run(weights, biases, seeds + 1)
    assert not np.array_equal(other, whole)


def test_no_bias_and_hook(dream_parts):
    model, initial_mu, initial_logvar = dream_parts
    batched = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=True)
    weights, _ = _controllers(3, batched.feature_size)
    steps = []
    returns, lengths = batched.run(weights, None, np.array([1, 2, 3]), return_lengths=True, on_step=lambda step, rows, z, action, done: steps.append(len(rows)))
    assert len(steps) == lengths.max() and steps[0] == 3
    assert sum(steps) == lengths.sum()
    with pytest.raises(ValueError, match="weights have shape"):
        batched.run(weights[:, :5], None, np.array([1, 2, 3]))


def test_render_decodes_z_with_the_decoder(dream_parts):
    from vae.encode import decode_z, to_uint8
    from vae.model import build_decoder

    model, initial_mu, initial_logvar = dream_parts
    decoder = build_decoder(Z_SIZE)
    env = DreamEnv(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=False, decoder=decoder, render_mode="rgb_array")
    env.reset(seed=5)
    env.step(np.zeros(ACTION_SIZE, np.float32))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    np.testing.assert_array_equal(frame, to_uint8(decode_z(decoder, env.z[None]))[0])


def test_reward_head_gives_the_reward_and_tau_must_be_positive(dream_parts):
    """With predict_reward, each step's reward is M's reward head (here a constant 0.25)."""
    _, initial_mu, initial_logvar = dream_parts
    config = dataclasses.replace(RnnConfig(), hidden_size=HIDDEN_SIZE, num_mixtures=3, predict_done=True, predict_reward=True)
    model = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    kernel, bias = model.head.get_weights()
    kernel[:, -1], bias[-1] = 0.0, 0.25  # the reward head: a constant 0.25
    kernel[:, -2] = np.random.default_rng(5).normal(scale=4.0, size=HIDDEN_SIZE)  # done logit (before the reward)
    bias[-2] = -2.5
    model.head.set_weights([kernel, bias])
    batched = BatchedDream(model, initial_mu, initial_logvar, 1.15, MAX_STEPS, use_cell_state=False)
    weights, biases = _controllers(9, batched.feature_size)
    returns, lengths = batched.run(weights, biases, np.arange(9), return_lengths=True)
    assert len(set(lengths.tolist())) > 1
    np.testing.assert_allclose(returns, 0.25 * lengths)
    for tau in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="expected tau > 0"):
            BatchedDream(model, initial_mu, initial_logvar, tau, MAX_STEPS, use_cell_state=False)
