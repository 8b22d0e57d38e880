"""The mixture maths of M: losses against NumPy references, sampling with temperature."""

import numpy as np
import tensorflow as tf

from rnn import counter_random, mdn


def _mixture_parameters(rng, batch=6, z_size=4, num_mixtures=5):
    logits = rng.normal(size=(batch, z_size, num_mixtures)).astype(np.float32)
    means = rng.normal(size=(batch, z_size, num_mixtures)).astype(np.float32)
    log_sigmas = rng.normal(scale=0.5, size=(batch, z_size, num_mixtures)).astype(np.float32)
    return logits, means, log_sigmas


def test_split_head_layout():
    z_size, num_mixtures = 3, 5
    width = mdn.head_size(z_size, num_mixtures, True, True)
    assert width == 3 * 3 * 5 + 2
    output = np.arange(2 * width, dtype=np.float32).reshape(2, width)
    parts = mdn.split_head(tf.constant(output), z_size, num_mixtures, True, True)
    per_dimension = output[:, : z_size * 3 * num_mixtures].reshape(2, z_size, 3 * num_mixtures)
    np.testing.assert_array_equal(parts["logits"], per_dimension[..., :5])
    np.testing.assert_array_equal(parts["means"], per_dimension[..., 5:10])
    np.testing.assert_array_equal(parts["log_sigmas"], per_dimension[..., 10:])
    np.testing.assert_array_equal(parts["done_logit"], output[:, -2])
    np.testing.assert_array_equal(parts["reward"], output[:, -1])
    plain = mdn.split_head(tf.constant(output[:, :-2]), z_size, num_mixtures, False, False)
    assert plain["done_logit"] is None and plain["reward"] is None


def test_z_loss_matches_numpy_log_sum_exp_per_dimension():
    rng = np.random.default_rng(0)
    logits, means, log_sigmas = _mixture_parameters(rng)
    target = rng.normal(size=means.shape[:2]).astype(np.float32)
    mask = np.array([1, 1, 0, 1, 0, 1], np.float32)
    # log pi_k + log N(z | mu_k, sigma_k), log-sum-exp over k, per dimension
    log_pi = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    sigma = np.exp(log_sigmas)
    log_normal = -0.5 * ((target[..., None] - means) / sigma) ** 2 - log_sigmas - 0.5 * np.log(2 * np.pi)
    joint = log_pi + log_normal
    peak = joint.max(-1, keepdims=True)
    log_likelihood = (peak + np.log(np.exp(joint - peak).sum(-1, keepdims=True)))[..., 0]
    per_step = -log_likelihood.mean(-1)
    expected = (per_step * mask).sum() / mask.sum()
    got = mdn.z_loss(tf.constant(target), tf.constant(logits), tf.constant(means), tf.constant(log_sigmas), tf.constant(mask))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def test_done_loss_weights_positives():
    logits = np.array([-2.0, 0.5, 1.5, -0.3], np.float32)
    labels = np.array([1, 0, 1, 0], np.float32)
    probability = 1 / (1 + np.exp(-logits))
    per_step = -(10.0 * labels * np.log(probability) + (1 - labels) * np.log(1 - probability))
    got = mdn.done_loss(tf.constant(logits), tf.constant(labels), 10.0)
    np.testing.assert_allclose(got.numpy(), per_step.mean(), rtol=1e-5)
    unweighted = mdn.done_loss(tf.constant(logits), tf.constant(labels), 1.0).numpy()
    positives_only = mdn.done_loss(tf.constant(logits), tf.constant(labels), 1.0, tf.constant(labels)).numpy()
    weighted_positives = mdn.done_loss(tf.constant(logits), tf.constant(labels), 10.0, tf.constant(labels)).numpy()
    np.testing.assert_allclose(weighted_positives, 10 * positives_only, rtol=1e-5)
    assert got.numpy() > unweighted


def _samples(logits, means, log_sigmas, tau, num_rows, base_seed=0):
    """num_rows independent draws of the same (1, Z, K) mixture, one seed per row."""
    tile = lambda array: tf.constant(np.repeat(array, num_rows, axis=0))  # noqa: E731
    keys = counter_random.row_keys(tf.range(base_seed, base_seed + num_rows, dtype=tf.int64), 0, counter_random.STREAM_MIXTURE)
    return mdn.sample(tile(logits), tile(means), tile(log_sigmas), tau, keys).numpy()


def test_low_temperature_gives_the_most_likely_components_mean():
    rng = np.random.default_rng(1)
    logits, means, log_sigmas = _mixture_parameters(rng, batch=1, z_size=6)
    logits[0, :, 2] += 2.0  # a clear favourite in every dimension
    draws = _samples(logits, means, log_sigmas, 1e-4, 200)
    favourite = means[0, np.arange(6), logits[0].argmax(-1)]
    np.testing.assert_allclose(draws, np.broadcast_to(favourite, draws.shape), atol=0.05)


def test_high_temperature_spreads_samples():
    rng = np.random.default_rng(2)
    logits, means, log_sigmas = _mixture_parameters(rng, batch=1, z_size=8)
    narrow = _samples(logits, means, log_sigmas, 1.0, 2000).std(0)
    wide = _samples(logits, means, log_sigmas, 4.0, 2000).std(0)
    assert np.all(wide > narrow)


def test_empirical_moments_of_a_known_mixture():
    logits = np.log(np.array([[[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]], np.float32))
    means = np.array([[[-2.0, 0.0, 3.0], [1.0, -1.0, 0.5]]], np.float32)
    sigmas = np.array([[[0.5, 1.0, 0.3], [0.2, 2.0, 1.0]]], np.float32)
    draws = _samples(logits, means, np.log(sigmas), 1.0, 40000)
    weights = np.exp(logits[0])
    mean = (weights * means[0]).sum(-1)
    variance = (weights * (sigmas[0] ** 2 + means[0] ** 2)).sum(-1) - mean**2
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.04)
    np.testing.assert_allclose(draws.var(0), variance, rtol=0.04)
    # component choice independent across dimensions: the two dimensions are uncorrelated
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.03


def test_each_rows_draw_depends_only_on_its_own_seed():
    rng = np.random.default_rng(3)
    logits, means, log_sigmas = _mixture_parameters(rng, batch=5)
    seeds = tf.constant([11, 12, 13, 14, 15], tf.int64)
    whole = mdn.sample(logits, means, log_sigmas, 1.15, counter_random.row_keys(seeds, 7, counter_random.STREAM_MIXTURE)).numpy()
    part = mdn.sample(logits[3:], means[3:], log_sigmas[3:], 1.15, counter_random.row_keys(seeds[3:], 7, counter_random.STREAM_MIXTURE)).numpy()
    np.testing.assert_array_equal(whole[3:], part)
    other_step = mdn.sample(logits, means, log_sigmas, 1.15, counter_random.row_keys(seeds, 8, counter_random.STREAM_MIXTURE)).numpy()
    assert not np.any(other_step == whole)


def test_uniforms_are_uniform():
    keys = counter_random.row_keys(tf.range(2000, dtype=tf.int64), 0, counter_random.STREAM_START_INDEX)
    values = counter_random.uniform(keys, 16).numpy()
    assert values.min() > 0 and values.max() < 1
    np.testing.assert_allclose(values.mean(), 0.5, atol=0.01)
    np.testing.assert_allclose(np.histogram(values, bins=10, range=(0, 1))[0] / values.size, 0.1, atol=0.01)


def test_sampling_from_the_raw_head_equals_sampling_from_split_parameters():
    z_size, num_mixtures = 6, 5
    output = np.random.default_rng(4).normal(size=(9, mdn.head_size(z_size, num_mixtures, True, False))).astype(np.float32)
    parts = mdn.split_head(tf.constant(output), z_size, num_mixtures, True, False)
    keys = counter_random.row_keys(tf.range(9, dtype=tf.int64), 2, counter_random.STREAM_MIXTURE)
    from_parts = mdn.sample(parts["logits"], parts["means"], parts["log_sigmas"], 1.15, keys).numpy()
    from_head = mdn.sample_from_head(tf.constant(output), z_size, num_mixtures, 1.15, keys).numpy()
    np.testing.assert_array_equal(from_head, from_parts)
