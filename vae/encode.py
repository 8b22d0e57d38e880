"""Batched, compiled passes through V (paper, section 3.1): frames -> (mu, logvar), z -> frames.

Used by extraction (every frame of every rollout), the reconstruction check and
dream pictures. One tf.function per model, traced once for any batch size,
called on large batches: never a Keras model called eagerly per frame.

`traceable_encoder` is V's encoder for a caller's own tf.function (the agent's
step, docs/design.md section 6). For the ConvVAE's encoder exactly as
vae/model.py build_encoder makes it (both vae.kind use it), it computes from the
encoder's own layer variables rather than calling the Keras model: the same
convolutions, except the last one (output 2x2), which is one matrix product over
its four input windows, about twice as fast as the convolution op at that size.
Any other encoder is called as the Keras model it is (correct, slower).
"""

import functools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from env.frames import FRAME_SHAPE
from vae.model import build_encoder

_ENCODE_FUNCTIONS = {}
_DECODE_FUNCTIONS = {}


def keras_encode(encoder, frames) -> tuple[tf.Tensor, tf.Tensor]:
    """(mu, logvar) = encoder(frames / 255) for uint8 frames (B, 64, 64, 3): the Keras model itself."""
    mu, logvar = encoder(tf.cast(frames, tf.float32) / 255.0, training=False)
    return mu, logvar


@functools.cache
def _conv_vae_encoder_config(z_size: int) -> dict:
    """The Keras config of build_encoder(z_size): layers, their settings and how they connect."""
    return build_encoder(z_size).get_config()


def is_conv_vae_encoder(encoder) -> bool:
    """True when `encoder` is build_encoder's architecture (every layer, setting and connection), whatever its weights."""
    outputs = encoder.outputs
    if len(outputs) != 2 or len(outputs[0].shape) != 2 or outputs[0].shape[-1] is None:
        return False
    return encoder.get_config() == _conv_vae_encoder_config(int(outputs[0].shape[-1]))


def _fast_encode(frames, convs: list, denses: list) -> tuple[tf.Tensor, tf.Tensor]:
    """mu, logvar = V(frames / 255) for uint8 frames (B, 64, 64, 3), from the ConvVAE encoder's layers.

    The last convolution's output is 2x2: there it is computed as
    relu(windows K + b), windows (4B, 4*4*C) the four 4x4xC input patches (row-major, as
    Flatten orders the output), K (4*4*C, filters) the kernel: one matrix product."""
    features = tf.cast(frames, tf.float32) / 255.0
    for layer in convs[:-1]:
        features = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(features, layer.kernel, 2, "VALID"), layer.bias))
    last = convs[-1]
    size = (features.shape[1] - 4) // 2 + 1  # output rows and columns of the last convolution
    kernel = tf.reshape(last.kernel, [-1, last.filters])
    windows = [features[:, 2 * row : 2 * row + 4, 2 * column : 2 * column + 4, :] for row in range(size) for column in range(size)]
    windows = tf.reshape(tf.stack(windows, axis=1), [-1, kernel.shape[0]])
    features = tf.reshape(tf.nn.relu(tf.nn.bias_add(tf.matmul(windows, kernel), last.bias)), [-1, size * size * last.filters])
    mu, logvar = (tf.matmul(features, layer.kernel) + layer.bias for layer in denses)
    return mu, logvar


def traceable_encoder(encoder: keras.Model) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A function uint8 frames (B, 64, 64, 3) -> (mu, logvar) float32 (B, Z), to be called inside a tf.function:
    the fast path for the ConvVAE's encoder, the Keras model itself for any other (module docstring)."""
    if len(encoder.outputs) != 2:
        raise ValueError(f"encoder {encoder.name!r} has {len(encoder.outputs)} outputs; V's encoder gives two, (mu, logvar)")
    if not is_conv_vae_encoder(encoder):
        return functools.partial(keras_encode, encoder)
    convs = [encoder.get_layer(f"conv{index}") for index in range(1, 5)]
    denses = [encoder.get_layer("mu"), encoder.get_layer("logvar")]
    return functools.partial(_fast_encode, convs=convs, denses=denses)


def _encode_function(encoder):
    key = id(encoder)
    if key not in _ENCODE_FUNCTIONS or _ENCODE_FUNCTIONS[key][0] is not encoder:

        @tf.function(input_signature=[tf.TensorSpec((None, *FRAME_SHAPE), tf.uint8)])
        def encode(frames):
            return keras_encode(encoder, frames)

        _ENCODE_FUNCTIONS[key] = (encoder, encode)
    return _ENCODE_FUNCTIONS[key][1]


def _decode_function(decoder):
    key = id(decoder)
    if key not in _DECODE_FUNCTIONS or _DECODE_FUNCTIONS[key][0] is not decoder:

        @tf.function(input_signature=[tf.TensorSpec((None, decoder.input_shape[-1]), tf.float32)])
        def decode(z):
            return decoder(z, training=False)

        _DECODE_FUNCTIONS[key] = (decoder, decode)
    return _DECODE_FUNCTIONS[key][1]


def encode_frames(encoder, frames: np.ndarray, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames (N, 64, 64, 3) -> (mu, logvar), NumPy float32 (N, Z) each."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != FRAME_SHAPE:
        raise ValueError(f"encode_frames expects uint8 frames (N, {', '.join(map(str, FRAME_SHAPE))}), got {frames.dtype} {frames.shape}")
    encode = _encode_function(encoder)
    z_size = encoder.output[0].shape[-1]
    mus, logvars = [np.zeros((0, z_size), np.float32)], [np.zeros((0, z_size), np.float32)]
    for start in range(0, len(frames), batch_size):
        mu, logvar = encode(tf.constant(frames[start : start + batch_size]))
        mus.append(mu.numpy())
        logvars.append(logvar.numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def decode_z(decoder, z: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """z (N, Z) -> frames float32 (N, 64, 64, 3) in [0, 1]."""
    decode = _decode_function(decoder)
    z = np.asarray(z, np.float32)
    frames = [np.zeros((0, *FRAME_SHAPE), np.float32)]
    for start in range(0, len(z), batch_size):
        frames.append(decode(tf.constant(z[start : start + batch_size])).numpy())
    return np.concatenate(frames)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Decoded frames in [0, 1] -> uint8 pictures."""
    return np.clip(np.rint(np.asarray(frames) * 255.0), 0, 255).astype(np.uint8)


def reconstruct(encoder, decoder, frames: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """uint8 frames -> their reconstructions from the mean code mu, float32 in [0, 1]."""
    mu, _ = encode_frames(encoder, frames, batch_size)
    return decode_z(decoder, mu, batch_size)
