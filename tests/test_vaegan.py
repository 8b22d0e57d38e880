"""The VAE/GAN variant (Larsen et al. 2016): it trains, and its encoder is V's encoder."""

import numpy as np
import tensorflow as tf

from tests.vae_synthetic import synthetic_frames, write_synthetic_rollouts
from vae.build import build_model
from vae.config import VaeConfig
from vae.encode import encode_frames
from vae.extract import extract_series
from vae.series import read_initial_z, read_series
from vae.store import load_encoder_decoder
from vae.train import compiled_steps, save_final_weights
from vae.vaegan import VaeGan, build_discriminator


def test_discriminator_gives_logits_and_features():
    discriminator = build_discriminator(3)
    features, logits = discriminator(tf.random.uniform((2, 64, 64, 3)))
    assert features.shape == (2, 6 * 6 * 128) and logits.shape == (2,)


def test_a_few_steps_give_finite_losses_and_move_every_part(tmp_path):
    config = VaeConfig(kind="vaegan", z_size=32, learning_rate=1e-3, gan_learning_rate=1e-3)
    model = build_model(config)
    assert isinstance(model, VaeGan)
    train_function, _ = compiled_steps(model)
    frames = tf.constant(synthetic_frames(6, seed=1).astype(np.float32) / 255.0)
    before = [part.get_weights()[0].copy() for part in (model.encoder, model.decoder, model.discriminator)]
    for _ in range(3):
        results = {name: float(value) for name, value in train_function(frames).items()}
        assert all(np.isfinite(value) for value in results.values()), results
    assert set(results) == {"loss", "reconstruction", "kl", "feature", "generator", "discriminator"}
    after = [part.get_weights()[0] for part in (model.encoder, model.decoder, model.discriminator)]
    assert all(not np.array_equal(old, new) for old, new in zip(before, after, strict=True))
    assert [int(optimizer.iterations) for optimizer, _ in model.optimizer_targets()] == [3, 3, 3]


def test_vaegan_encoder_feeds_extraction_unchanged(tmp_path):
    config = VaeConfig(kind="vaegan", z_size=32)
    model = build_model(config)
    save_final_weights(model, tmp_path / "vae")
    assert (tmp_path / "vae" / "discriminator.weights.h5").exists()
    encoder, decoder = load_encoder_decoder(tmp_path / "vae", config)
    frames = synthetic_frames(5, seed=2)
    np.testing.assert_array_equal(encode_frames(encoder, frames)[0], encode_frames(model.encoder, frames)[0])
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=2, num_steps=5)
    extract_series(tmp_path / "rollouts", tmp_path / "series", encoder, action_size=3, progress=False, log=lambda _: None)
    series = read_series(tmp_path / "series" / "000000.npz", z_size=32, action_size=3)
    assert series["mu"].shape == (5, 32)
    assert read_initial_z(tmp_path / "series", 32)[0].shape == (2, 32)


def test_encoder_loss_is_the_per_image_floored_kl_plus_the_feature_loss():
    model = build_model(VaeConfig(kind="vaegan", z_size=32))
    frames = tf.constant(np.concatenate([synthetic_frames(2, seed=1), 255 - synthetic_frames(2, seed=5)]).astype(np.float32) / 255.0)
    mu, logvar = (value.numpy() for value in model.encoder(frames))
    kl = -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=1)
    model.kl_tolerance = float(np.median(kl)) / 32  # the floor binds for some images only
    floor = model.kl_tolerance * 32
    assert (kl < floor).any() and (kl > floor).any()
    losses = {name: float(value) for name, value in model.compute_losses(frames, training=False).items()}
    np.testing.assert_allclose(losses["loss"] - losses["feature"], np.maximum(kl, floor).mean(), rtol=1e-4)
    np.testing.assert_allclose(losses["kl"], kl.mean(), rtol=1e-4)
    assert losses == {name: float(value) for name, value in model.compute_losses(frames, training=False).items()}  # fixed evaluation noise
