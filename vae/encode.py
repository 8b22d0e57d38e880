"""Batched, compiled passes through V (paper, section 3.1): frames -> (mu, logvar), z -> frames.

Used by extraction (every frame of every rollout), the reconstruction check and
dream pictures. One tf.function per model, traced once for any batch size,
called on large batches: never a Keras model called eagerly per frame.
"""

import numpy as np
import tensorflow as tf

from vae.model import FRAME_SHAPE

_ENCODE_FUNCTIONS = {}
_DECODE_FUNCTIONS = {}


def _encode_function(encoder):
    key = id(encoder)
    if key not in _ENCODE_FUNCTIONS or _ENCODE_FUNCTIONS[key][0] is not encoder:

        @tf.function(input_signature=[tf.TensorSpec((None, *FRAME_SHAPE), tf.uint8)])
        def encode(frames):
            mu, logvar = encoder(tf.cast(frames, tf.float32) / 255.0, training=False)
            return mu, logvar

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
        raise ValueError(f"encode_frames expects uint8 frames (N, 64, 64, 3), got {frames.dtype} {frames.shape}")
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
