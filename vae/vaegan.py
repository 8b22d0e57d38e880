"""The VAE/GAN variant of V (Larsen et al. 2016, "Autoencoding beyond pixels
using a learned similarity metric", section 2), chosen by vae.kind = vaegan.

Encoder and decoder are exactly the ConvVAE's (vae/model.py), so the encoder
gives the same (mu, logvar) and everything downstream works unchanged. A
discriminator Dis judges frames; the output of its conv layer l, Dis_l, is the
space in which reconstructions are compared. With x a frame, z ~ q(z|x),
x_tilde = Dec(z) and x_p = Dec(z_p), z_p ~ N(0, I):

    L_prior = max(KL(q(z|x) || N(0, I)), kl_tolerance * z_size)   per image (as V)
    L_llike = sum (Dis_l(x) - Dis_l(x_tilde))^2                    per image (eq. 7, Gaussian)
    L_GAN   = log Dis(x) + log(1 - Dis(x_tilde)) + log(1 - Dis(x_p))   (eq. 8)

trained with three optimizers (Algorithm 1):
    encoder:       L_prior + L_llike
    decoder:       gamma * L_llike - L_GAN   (non-saturating: the decoder maximises log Dis(x_tilde) + log Dis(x_p))
    discriminator: -L_GAN                   (binary cross-entropy: x real, x_tilde and x_p fake)
The discriminator returns logits and every cross-entropy takes from_logits=True;
the decoder ends in a sigmoid, so generated frames lie in [0, 1] like the data.
L_llike does not train the discriminator (the paper's choice: it would collapse Dis_l).
"""

import keras
import tensorflow as tf

from common.training import apply_if_finite
from env.frames import FRAME_SHAPE
from vae.model import VaeBase, floored_kl, reconstruction_error


def build_discriminator(feature_layer: int) -> keras.Model:
    """Frames (B, 64, 64, 3) -> [features of conv layer `feature_layer` (1-4), flattened; real/fake logit (B,)]."""
    if not 1 <= feature_layer <= 4:
        raise ValueError(f"vae.gan_feature_layer={feature_layer}: expected a conv layer index 1-4")
    frames = keras.Input(shape=FRAME_SHAPE, name="frames")
    hidden = frames
    features = None
    for index, filters in enumerate((32, 64, 128, 256), start=1):
        # ReLU as in Larsen et al.'s discriminator (their table 1), on the encoder's conv stack.
        hidden = keras.layers.Conv2D(filters, 4, strides=2, activation="relu", name=f"conv{index}")(hidden)
        if index == feature_layer:
            features = keras.layers.Flatten(name="features")(hidden)
    logit = keras.layers.Dense(1, name="logit")(keras.layers.Flatten(name="flatten")(hidden))
    logit = keras.layers.Reshape((), name="squeeze")(logit)
    return keras.Model(frames, [features, logit], name="discriminator")


def _cross_entropy(target: float, logits: tf.Tensor) -> tf.Tensor:
    """Per-image binary cross-entropy against a constant target, on logits."""
    return keras.losses.binary_crossentropy(tf.fill(tf.shape(logits), target), logits, from_logits=True)


class VaeGan(VaeBase):
    kind = "vaegan"

    def __init__(self, vae_config, **kwargs):
        names = ("loss", "reconstruction", "kl", "feature", "generator", "discriminator")
        super().__init__(vae_config.z_size, vae_config.kl_tolerance, vae_config.seed, names, name="vae_gan", **kwargs)
        self.feature_weight = vae_config.gan_feature_weight
        self.discriminator = build_discriminator(vae_config.gan_feature_layer)
        self.encoder_optimizer = keras.optimizers.Adam(vae_config.learning_rate, name="encoder_adam")
        self.decoder_optimizer = keras.optimizers.Adam(vae_config.gan_learning_rate, beta_1=0.5, name="decoder_adam")
        self.discriminator_optimizer = keras.optimizers.Adam(vae_config.gan_learning_rate, beta_1=0.5, name="discriminator_adam")

    def parts(self) -> dict[str, keras.Model]:
        return {**super().parts(), "discriminator": self.discriminator}

    def optimizer_targets(self) -> list:
        return [
            (self.encoder_optimizer, self.encoder.trainable_variables),
            (self.decoder_optimizer, self.decoder.trainable_variables),
            (self.discriminator_optimizer, self.discriminator.trainable_variables),
        ]

    def build_all(self) -> None:
        self.discriminator(tf.zeros((1, *FRAME_SHAPE)))
        super().build_all()

    def compute_losses(self, frames, training: bool) -> dict[str, tf.Tensor]:
        mu, logvar, reconstructions = self.encode_sample_decode(frames, training)
        prior_frames = self.decoder(keras.random.normal(tf.shape(mu), seed=self.noise_seed(training, draw=1)), training=training)

        real_features, real_logits = self.discriminator(frames, training=training)
        reconstruction_features, reconstruction_logits = self.discriminator(reconstructions, training=training)
        _, prior_logits = self.discriminator(prior_frames, training=training)

        kl, prior_loss = floored_kl(mu, logvar, self.kl_tolerance)  # per image, as in V
        feature_loss = tf.reduce_sum(tf.square(real_features - reconstruction_features), axis=-1)
        # Decoder wants x_tilde and x_p judged real; the discriminator wants x real, the others fake.
        generator_loss = _cross_entropy(1.0, reconstruction_logits) + _cross_entropy(1.0, prior_logits)
        discriminator_loss = _cross_entropy(1.0, real_logits) + _cross_entropy(0.0, reconstruction_logits) + _cross_entropy(0.0, prior_logits)
        return {
            "loss": tf.reduce_mean(prior_loss + feature_loss),  # the encoder's loss
            "decoder_loss": tf.reduce_mean(self.feature_weight * feature_loss + generator_loss),
            "reconstruction": tf.reduce_mean(reconstruction_error(frames, reconstructions)),
            "kl": tf.reduce_mean(kl),
            "feature": tf.reduce_mean(feature_loss),
            "generator": tf.reduce_mean(generator_loss),
            "discriminator": tf.reduce_mean(discriminator_loss),
        }

    def checked_train_step(self, frames):
        with tf.GradientTape(persistent=True) as tape:
            losses = self.compute_losses(frames, training=True)
        names = ("loss", "decoder_loss", "discriminator")
        # Each part moves only its own weights, each by its own loss; all or none (a non-finite one stops all).
        updates = [
            (optimizer, tape.gradient(losses[name], variables), variables) for (optimizer, variables), name in zip(self.optimizer_targets(), names, strict=True)
        ]
        del tape
        finite = apply_if_finite([losses[name] for name in names], updates)
        return self._track(losses), finite
