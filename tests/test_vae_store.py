"""Loading V's weights (vae/store.py) through the builder of vae.kind: both kinds round-trip exactly,
and a file of another z size, kind or architecture is refused with an ArtifactError naming it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.errors import ArtifactError
from env.frames import FRAME_SHAPE
from tests.vae_synthetic import synthetic_frames
from vae.build import construct
from vae.config import VaeConfig
from vae.encode import is_conv_vae_encoder
from vae.model import build_encoder
from vae.store import load_encoder_decoder, load_part, load_parts
from vae.train import save_final_weights
from vae.vaegan import build_discriminator

Z_SIZE = 16


def trained(kind: str):
    """A V of `kind` whose weights are drawn anew (small normals), so they are neither a fresh model's nor zeros."""
    config = VaeConfig(kind=kind, z_size=Z_SIZE)
    model = construct(config)
    rng = np.random.default_rng(7)
    for part in model.parts().values():
        part.set_weights([rng.normal(scale=0.05, size=weight.shape).astype(np.float32) for weight in part.get_weights()])
    return config, model


@pytest.mark.parametrize("kind", ["vae", "vaegan"])
def test_both_kinds_round_trip_exactly(tmp_path, kind):
    config, model = trained(kind)
    save_final_weights(model, tmp_path)
    names = ("encoder", "decoder", "discriminator") if kind == "vaegan" else ("encoder", "decoder")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{name}.weights.h5" for name in names)
    loaded = load_parts(tmp_path, config, names)
    for name, part in zip(names, loaded, strict=True):
        original = model.parts()[name]
        assert part is not original and part.count_params() == original.count_params()
        for saved, restored in zip(original.get_weights(), part.get_weights(), strict=True):
            np.testing.assert_array_equal(saved, restored)
    encoder, decoder = load_encoder_decoder(tmp_path, config)
    assert is_conv_vae_encoder(encoder)  # the agent's fast path applies to a loaded V of either kind
    frames = tf.constant(synthetic_frames(3, seed=2).astype(np.float32) / 255.0)
    for original, restored in zip(model.encoder(frames), encoder(frames), strict=True):
        np.testing.assert_array_equal(original.numpy(), restored.numpy())
    z = tf.random.normal((3, Z_SIZE), seed=3)
    np.testing.assert_array_equal(model.decoder(z).numpy(), decoder(z).numpy())


def test_a_file_of_another_z_size_names_both_sizes_and_the_fix(tmp_path):
    config, model = trained("vaegan")
    save_final_weights(model, tmp_path)
    for part in ("encoder", "decoder"):
        with pytest.raises(ArtifactError) as error:
            load_part(tmp_path, part, VaeConfig(kind="vaegan", z_size=8))
        message = str(error.value)
        assert f"{tmp_path / part}.weights.h5 was trained with z size {Z_SIZE}" in message
        assert "vae.z_size=8" in message and f"--set vae.z_size={Z_SIZE}" in message


def other_encoder() -> keras.Model:
    """An encoder of another architecture: two convolutions, global average pooling."""
    frames = keras.Input(shape=FRAME_SHAPE)
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(16, 3, strides=2)(keras.layers.Conv2D(8, 3, strides=2)(frames)))
    return keras.Model(frames, [keras.layers.Dense(Z_SIZE)(features), keras.layers.Dense(Z_SIZE)(features)])


def deeper_encoder() -> keras.Model:
    """V's encoder with one more dense layer before its heads: the file holds every array V's encoder has, and more."""
    inner = build_encoder(Z_SIZE)
    features = keras.layers.Dense(1024, name="extra")(inner.get_layer("flatten").output)
    return keras.Model(inner.input, [keras.layers.Dense(Z_SIZE, name="mu")(features), keras.layers.Dense(Z_SIZE, name="logvar")(features)])


@pytest.mark.parametrize(
    "make, only_in_file",
    [(other_encoder, "(3, 3, 3, 8)"), (deeper_encoder, "(1024, 1024)"), (lambda: build_discriminator(3), "(1024, 1)")],
    ids=["other architecture", "extra layer", "discriminator"],
)
def test_a_file_of_another_kind_or_architecture_is_refused_and_kept(tmp_path, make, only_in_file):
    path = tmp_path / "vae" / "encoder.weights.h5"
    path.parent.mkdir()
    make().save_weights(path)
    before = path.read_bytes()
    with pytest.raises(ArtifactError) as error:
        load_part(tmp_path / "vae", "encoder", VaeConfig(z_size=Z_SIZE))
    message = str(error.value)
    assert message.startswith(f"{path} does not hold the encoder of V for vae.kind=vae, vae.z_size={Z_SIZE}")
    assert only_in_file in message and "another kind or architecture" in message
    assert f"python -m scripts.train_vae --run-dir {tmp_path} --force" in message
    assert path.read_bytes() == before


def test_missing_and_unreadable_files_are_refused_by_name(tmp_path):
    with pytest.raises(ArtifactError, match=r"discriminator\.weights\.h5 is missing"):
        load_part(tmp_path, "discriminator", VaeConfig(kind="vaegan", z_size=Z_SIZE))
    build_discriminator(3).save_weights(tmp_path / "discriminator.weights.h5")
    with pytest.raises(ValueError, match=r"V of vae.kind=vae has no part \['discriminator'\]; its parts are \['encoder', 'decoder'\]"):
        load_part(tmp_path, "discriminator", VaeConfig(z_size=Z_SIZE))
    (tmp_path / "encoder.weights.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(ArtifactError, match=r"encoder\.weights\.h5: unreadable weights file"):
        load_part(tmp_path, "encoder", VaeConfig(z_size=Z_SIZE))
