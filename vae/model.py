"""V, the ConvVAE of "World Models" (Ha & Schmidhuber 2018, section 3.1 and appendix A.1).

Encoder: a 64x64x3 frame in [0, 1] -> four stride-2 convolutions (32, 64, 128,
256 filters, kernel 4, ReLU) -> 2x2x256 = 1024 features -> dense mu and dense
logvar (z_size each). Decoder: z -> dense 1024 -> 1x1x1024 -> four stride-2
transposed convolutions (128 k5, 64 k5, 32 k6 with ReLU, 3 k6 with sigmoid)
-> 64x64x3 in [0, 1]. 4,348,547 parameters for z = 32, 4,446,915 for z = 64.

Loss per image (authors' code, docs/design.md section 5 item 2):
    L = sum over pixels (x - x_hat)^2 + max(KL(q(z|x) || N(0, I)), kl_tolerance * z_size)
and the batch loss is the mean of L over the images. The floor is applied per
image, before the mean; the reconstruction error is summed, not averaged.
"""

import keras
import tensorflow as tf

from common.training import apply_if_finite
from env.frames import FRAME_SHAPE

EVALUATION_SEED = 12345


def build_encoder(z_size: int) -> keras.Model:
    """Frames (B, 64, 64, 3) float32 in [0, 1] -> [mu, logvar], each (B, z_size)."""
    frames = keras.Input(shape=FRAME_SHAPE, name="frames")
    features = frames
    for index, filters in enumerate((32, 64, 128, 256), start=1):
        # 64 -> 31 -> 14 -> 6 -> 2 (kernel 4, stride 2, no padding)
        features = keras.layers.Conv2D(filters, 4, strides=2, activation="relu", name=f"conv{index}")(features)
    features = keras.layers.Flatten(name="flatten")(features)  # 2 * 2 * 256 = 1024
    mu = keras.layers.Dense(z_size, name="mu")(features)
    logvar = keras.layers.Dense(z_size, name="logvar")(features)
    return keras.Model(frames, [mu, logvar], name="encoder")


def build_decoder(z_size: int) -> keras.Model:
    """z (B, z_size) float32 -> frames (B, 64, 64, 3) in [0, 1]."""
    z = keras.Input(shape=(z_size,), name="z")
    features = keras.layers.Dense(1024, name="dense")(z)
    features = keras.layers.Reshape((1, 1, 1024), name="reshape")(features)
    layers = ((128, 5, "relu"), (64, 5, "relu"), (32, 6, "relu"), (3, 6, "sigmoid"))
    for index, (filters, kernel, activation) in enumerate(layers, start=1):
        # 1 -> 5 -> 13 -> 30 -> 64 (output = (input - 1) * 2 + kernel)
        features = keras.layers.Conv2DTranspose(filters, kernel, strides=2, activation=activation, name=f"deconv{index}")(features)
    return keras.Model(z, features, name="decoder")


def sample_z(mu: tf.Tensor, logvar: tf.Tensor, seed=None) -> tf.Tensor:
    """The reparameterisation z = mu + sigma * epsilon, sigma = exp(logvar / 2)."""
    epsilon = keras.random.normal(tf.shape(mu), seed=seed)
    return mu + tf.exp(0.5 * logvar) * epsilon


def kl_divergence(mu: tf.Tensor, logvar: tf.Tensor) -> tf.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per image: -1/2 sum(1 + logvar - mu^2 - exp(logvar)), shape (B,)."""
    return -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=-1)


def reconstruction_error(frames: tf.Tensor, reconstructions: tf.Tensor) -> tf.Tensor:
    """Summed squared error per image, shape (B,)."""
    return tf.reduce_sum(tf.square(frames - reconstructions), axis=[1, 2, 3])


def floored_kl(mu: tf.Tensor, logvar: tf.Tensor, kl_tolerance: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(KL_b, max(KL_b, kl_tolerance * z_size)) per image, shape (B,) each: the floor comes before any batch mean."""
    kl = kl_divergence(mu, logvar)
    return kl, tf.maximum(kl, kl_tolerance * tf.cast(tf.shape(mu)[-1], mu.dtype))


def vae_loss(frames, reconstructions, mu, logvar, kl_tolerance: float) -> dict[str, tf.Tensor]:
    """The batch loss and its parts (each a batch mean).

    loss = mean_b [ reconstruction_b + max(KL_b, kl_tolerance * z_size) ]
    """
    reconstruction = reconstruction_error(frames, reconstructions)
    kl, floored = floored_kl(mu, logvar, kl_tolerance)
    return {
        "loss": tf.reduce_mean(reconstruction + floored),
        "reconstruction": tf.reduce_mean(reconstruction),
        "kl": tf.reduce_mean(kl),
    }


class VaeBase(keras.Model):
    """What V's two kinds share: the encoder and decoder, the training noise, Mean trackers
    named after the losses, reconstruction from the mean code, evaluation and building."""

    def __init__(self, z_size: int, kl_tolerance: float, seed: int | None, tracked_losses: tuple[str, ...], **kwargs):
        super().__init__(**kwargs)
        self.kl_tolerance = kl_tolerance
        self.encoder = build_encoder(z_size)
        self.decoder = build_decoder(z_size)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked_losses}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def parts(self) -> dict[str, keras.Model]:
        """The sub-models saved as DIR/vae/<name>.weights.h5 (vae/train.py) and loaded by name (vae/store.py)."""
        return {"encoder": self.encoder, "decoder": self.decoder}

    def call(self, frames, training=False):
        """Reconstructions from the mean code (deterministic), as check_vae shows them."""
        mu, _ = self.encoder(frames, training=training)
        return self.decoder(mu, training=training)

    def noise_seed(self, training: bool, draw: int = 0):
        """Training draws from the model's seed generator (restored by checkpoints); evaluation uses a
        fixed seed per draw of a step, so validation losses are repeatable and do not move the training
        random state."""
        return self.seed_generator if training else EVALUATION_SEED + draw

    def encode_sample_decode(self, frames, training: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(mu, logvar, reconstructions decoded from z ~ N(mu, sigma^2)), the pass both kinds train on."""
        mu, logvar = self.encoder(frames, training=training)
        z = sample_z(mu, logvar, seed=self.noise_seed(training))
        return mu, logvar, self.decoder(z, training=training)

    def optimizer_targets(self) -> list:
        """(optimizer, variables it updates) pairs: what a checkpoint must keep."""
        raise NotImplementedError

    def build_all(self) -> None:
        """Create every weight and optimizer slot, so a checkpoint can be restored before training."""
        self(tf.zeros((1, *FRAME_SHAPE)))
        for optimizer, variables in self.optimizer_targets():
            optimizer.build(variables)

    def train_step(self, frames):
        return self.checked_train_step(frames)[0]

    def checked_train_step(self, frames):
        """One training step -> (running losses, finite): the update is applied only if every
        loss and gradient is finite (common.training.apply_if_finite)."""
        raise NotImplementedError

    def test_step(self, frames):
        return self._track(self.compute_losses(frames, training=False))

    def _track(self, losses):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}


class ConvVAE(VaeBase):
    """Encoder + decoder trained with the loss above (Adam, learning rate from the config)."""

    kind = "vae"

    def __init__(self, z_size: int, kl_tolerance: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(z_size, kl_tolerance, seed, ("loss", "reconstruction", "kl"), **kwargs)

    def compute_losses(self, frames, training: bool) -> dict[str, tf.Tensor]:
        mu, logvar, reconstructions = self.encode_sample_decode(frames, training)
        return vae_loss(frames, reconstructions, mu, logvar, self.kl_tolerance)

    def optimizer_targets(self) -> list:
        return [(self.optimizer, self.trainable_variables)]

    def checked_train_step(self, frames):
        with tf.GradientTape() as tape:
            losses = self.compute_losses(frames, training=True)
        gradients = tape.gradient(losses["loss"], self.trainable_variables)
        finite = apply_if_finite([losses["loss"]], [(self.optimizer, gradients, self.trainable_variables)])
        return self._track(losses), finite
