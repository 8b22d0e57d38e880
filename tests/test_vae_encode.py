"""V's traceable encoder (vae/encode.py): the fast path for the ConvVAE's encoder and the Keras
fallback for any other architecture both give the eager Keras encoder's (mu, logvar) inside a tf.function."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from env.frames import FRAME_SHAPE
from vae.build import build_model
from vae.config import VaeConfig
from vae.encode import is_conv_vae_encoder, traceable_encoder
from vae.model import build_encoder


def frames_for(seed: int, count: int = 5) -> np.ndarray:
    frames = np.random.default_rng(seed).integers(0, 256, (count, *FRAME_SHAPE), dtype=np.uint8)
    frames[0] = 0  # a black frame: every ReLU input at its bias
    return frames


def traced(encoder):
    """traceable_encoder(encoder) inside a tf.function, and how many Conv2D ops its graph holds."""
    function = tf.function(traceable_encoder(encoder), input_signature=[tf.TensorSpec((None, *FRAME_SHAPE), tf.uint8)])
    graph = function.get_concrete_function().graph
    return function, sum(operation.type == "Conv2D" for operation in graph.get_operations())


def assert_equals_keras(encoder, function, frames, z_size):
    for batch in (frames, frames[3:4]):
        expected = encoder(batch.astype(np.float32) / 255.0)
        got = function(tf.constant(batch))
        for got_part, expected_part in zip(got, expected, strict=True):
            assert got_part.shape == (len(batch), z_size)
            np.testing.assert_allclose(got_part.numpy(), expected_part.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("z_size", [32, 64])
def test_fast_path_equals_the_keras_encoder(z_size):
    """The ConvVAE's encoder takes the fast path (its last convolution a matrix product over four
    windows: three Conv2D ops, not four) and gives the Keras encoder's mu and logvar."""
    encoder = build_encoder(z_size)
    assert is_conv_vae_encoder(encoder)
    function, convolutions = traced(encoder)
    assert convolutions == 3
    assert_equals_keras(encoder, function, frames_for(z_size), z_size)


@pytest.mark.parametrize("kind", ["vae", "vaegan"])
def test_both_kinds_of_v_take_the_fast_path(kind):
    encoder = build_model(VaeConfig(kind=kind, z_size=16)).encoder
    assert is_conv_vae_encoder(encoder)
    assert traced(encoder)[1] == 3


def lookalike_encoder(z_size: int) -> keras.Model:
    """The ConvVAE's layer names, but conv3 pads ('same'): not what the fast path computes."""
    frames = keras.Input(shape=FRAME_SHAPE, name="frames")
    features = frames
    for index, filters in enumerate((32, 64, 128, 256), start=1):
        padding = "same" if index == 3 else "valid"
        features = keras.layers.Conv2D(filters, 4, strides=2, activation="relu", padding=padding, name=f"conv{index}")(features)
    features = keras.layers.Flatten(name="flatten")(features)
    return keras.Model(frames, [keras.layers.Dense(z_size, name="mu")(features), keras.layers.Dense(z_size, name="logvar")(features)], name="encoder")


def small_encoder(z_size: int) -> keras.Model:
    """Another architecture altogether: two convolutions, global average pooling, tanh heads."""
    frames = keras.Input(shape=FRAME_SHAPE)
    features = keras.layers.Conv2D(8, 3, strides=2, activation="elu")(frames)
    features = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(features)
    features = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(frames, [keras.layers.Dense(z_size, activation="tanh")(features), keras.layers.Dense(z_size)(features)])


@pytest.mark.parametrize("make", [lookalike_encoder, small_encoder])
def test_any_other_encoder_falls_back_to_the_keras_model(make):
    encoder = make(8)
    assert not is_conv_vae_encoder(encoder)
    function, convolutions = traced(encoder)
    assert convolutions == len([layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)])
    assert_equals_keras(encoder, function, frames_for(8), 8)


def test_an_encoder_without_two_outputs_is_refused():
    frames = keras.Input(shape=FRAME_SHAPE)
    single = keras.Model(frames, keras.layers.Dense(8)(keras.layers.Flatten()(frames)), name="single")
    with pytest.raises(ValueError, match=r"encoder 'single' has 1 outputs; V's encoder gives two, \(mu, logvar\)"):
        traceable_encoder(single)
