"""V's architecture and loss (paper appendix A.1; docs/design.md section 5 item 2)."""

import numpy as np
import pytest
import tensorflow as tf

from vae.build import build_model
from vae.config import VaeConfig
from vae.model import ConvVAE, build_decoder, build_encoder, vae_loss


@pytest.mark.parametrize(("z_size", "expected"), [(32, 4_348_547), (64, 4_446_915)])
def test_parameter_counts_match_the_paper(z_size, expected):
    assert build_encoder(z_size).count_params() + build_decoder(z_size).count_params() == expected
    model = build_model(VaeConfig(z_size=z_size))
    assert isinstance(model, ConvVAE)
    assert model.count_params() == expected  # the whole V: nothing beyond encoder and decoder


@pytest.mark.parametrize("kind", ["vae", "vaegan"])
def test_shapes_and_ranges_for_both_kinds(kind):
    model = build_model(VaeConfig(kind=kind, z_size=32))
    frames = tf.random.uniform((3, 64, 64, 3), seed=1)
    mu, logvar = model.encoder(frames)
    assert mu.shape == (3, 32) and logvar.shape == (3, 32)
    decoded = model.decoder(tf.random.normal((3, 32), seed=2)).numpy()
    assert decoded.shape == (3, 64, 64, 3) and decoded.dtype == np.float32
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0  # sigmoid output, the data's range
    assert model(frames).shape == (3, 64, 64, 3)
    assert [layer.name for layer in model.encoder.layers if "conv" in layer.name] == ["conv1", "conv2", "conv3", "conv4"]
    assert model.encoder.get_layer("conv4").output.shape[1:] == (2, 2, 256)
    assert [model.decoder.get_layer(f"deconv{index}").output.shape[1] for index in range(1, 5)] == [5, 13, 30, 64]


def numpy_loss(frames, reconstructions, mu, logvar, kl_tolerance):
    """Reference: per image summed squared error + max(KL, kl_tolerance * Z), then the mean."""
    squared_error = ((frames - reconstructions) ** 2).reshape(len(frames), -1).sum(axis=1)
    kl = -0.5 * (1 + logvar - mu**2 - np.exp(logvar)).sum(axis=1)
    return float(np.mean(squared_error + np.maximum(kl, kl_tolerance * mu.shape[1]))), kl


def test_loss_matches_numpy_reference_with_per_image_kl_floor():
    rng = np.random.default_rng(0)
    z_size, kl_tolerance = 8, 0.5
    frames = rng.uniform(size=(4, 64, 64, 3)).astype(np.float32)
    reconstructions = rng.uniform(size=(4, 64, 64, 3)).astype(np.float32)
    # Images 0, 1: posterior close to the prior (KL below the floor of 4 nats); images 2, 3: far from it.
    mu = np.zeros((4, z_size), np.float32)
    logvar = np.zeros((4, z_size), np.float32)
    mu[0] = 0.1
    logvar[1] = -0.2
    mu[2] = 2.0
    mu[3] = 1.5
    logvar[3] = -1.0
    expected, kl = numpy_loss(frames, reconstructions, mu, logvar, kl_tolerance)
    floor = kl_tolerance * z_size
    assert (kl[:2] < floor).all() and (kl[2:] > floor).all()  # the floor binds for some images only

    losses = vae_loss(tf.constant(frames), tf.constant(reconstructions), tf.constant(mu), tf.constant(logvar), kl_tolerance)
    np.testing.assert_allclose(float(losses["loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(losses["kl"]), kl.mean(), rtol=1e-5)
    squared_error = ((frames - reconstructions) ** 2).reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(float(losses["reconstruction"]), squared_error.mean(), rtol=1e-5)
    # A floor applied after the batch mean would give another value: the test tells them apart.
    floor_after_mean = squared_error.mean() + max(kl.mean(), floor)
    assert abs(floor_after_mean - expected) > 1.0


def test_model_loss_uses_the_reference_loss():
    """ConvVAE.compute_losses (evaluation, fixed noise) equals vae_loss on its own encoder/decoder outputs."""
    model = build_model(VaeConfig(z_size=32))
    frames = tf.random.uniform((2, 64, 64, 3), seed=3)
    first = model.compute_losses(frames, training=False)
    second = model.compute_losses(frames, training=False)
    assert float(first["loss"]) == float(second["loss"])  # evaluation noise is fixed
    mu, logvar = model.encoder(frames)
    kl = -0.5 * np.sum(1 + logvar.numpy() - mu.numpy() ** 2 - np.exp(logvar.numpy()), axis=1)
    np.testing.assert_allclose(float(first["kl"]), kl.mean(), rtol=1e-4)
    assert float(first["loss"]) >= float(first["reconstruction"]) + 0.5 * 32 - 1e-3
