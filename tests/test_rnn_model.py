"""M's architecture: parameter counts, save/load round trip, the one-step function."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from common.errors import ArtifactError
from rnn.config import RnnConfig
from rnn.model import build_mdn_rnn
from rnn.store import WEIGHTS_NAME, load_mdn_rnn
from scripts import config as config_module

DOOM_RNN = RnnConfig(hidden_size=512, restart_input=True, predict_done=True)


def test_parameter_counts_match_the_paper():
    assert build_mdn_rnn(RnnConfig(), 32, 3).count_params() == 422_368
    assert build_mdn_rnn(DOOM_RNN, 64, 1).count_params() == 1_678_785


def test_presets_build_the_papers_sizes():
    for preset, count in (("carracing", 422_368), ("doom", 1_678_785), ("doom-smoke", 1_678_785)):
        config = config_module.build(preset)
        assert build_mdn_rnn(config.rnn, config.vae.z_size, config.env.action_size).count_params() == count


def _small_config(**changes):
    return dataclasses.replace(RnnConfig(hidden_size=16, num_mixtures=3, restart_input=True, predict_done=True), **changes)


def _inputs(model, rng, batch=3, length=7):
    return rng.normal(size=(batch, length, model.input_size)).astype(np.float32)


def test_step_function_equals_the_sequence_model():
    rng = np.random.default_rng(0)
    model = build_mdn_rnn(_small_config(predict_reward=True), 4, 2)
    inputs = _inputs(model, rng)
    sequence_output, final_h, final_c = model(inputs)
    step = tf.function(model.step)  # compiled, as the dream and the agent call it
    h = np.zeros((3, 16), np.float32)
    c = np.zeros((3, 16), np.float32)
    for t in range(inputs.shape[1]):
        output, h, c = step(inputs[:, t], h, c)
        np.testing.assert_allclose(output.numpy(), sequence_output[:, t].numpy(), atol=1e-5)
    np.testing.assert_allclose(h.numpy(), final_h.numpy(), atol=1e-5)
    np.testing.assert_allclose(c.numpy(), final_c.numpy(), atol=1e-5)


def test_save_load_round_trip_is_exact(tmp_path):
    config = config_module.build("doom-smoke", overrides={"rnn.hidden_size": 16, "vae.z_size": 4})
    model = build_mdn_rnn(config.rnn, 4, 1)
    (tmp_path / "rnn").mkdir()
    model.save_weights(tmp_path / "rnn" / WEIGHTS_NAME)
    loaded = load_mdn_rnn(tmp_path / "rnn", config)
    for saved, restored in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)
    inputs = _inputs(model, np.random.default_rng(1))
    np.testing.assert_array_equal(model(inputs)[0].numpy(), loaded(inputs)[0].numpy())


def test_load_names_the_file_when_missing_or_mismatched(tmp_path):
    config = config_module.build("doom-smoke", overrides={"rnn.hidden_size": 16, "vae.z_size": 4})
    with pytest.raises(ArtifactError, match=r"mdn_rnn\.weights\.h5 is missing.*scripts\.train_rnn"):
        load_mdn_rnn(tmp_path / "rnn", config)
    (tmp_path / "rnn").mkdir()
    build_mdn_rnn(config.rnn, 4, 1).save_weights(tmp_path / "rnn" / WEIGHTS_NAME)
    other_z = config_module.build("doom-smoke", overrides={"rnn.hidden_size": 16, "vae.z_size": 8})
    with pytest.raises(ArtifactError, match=r"mdn_rnn\.weights\.h5: weight shapes .*z_size=8"):
        load_mdn_rnn(tmp_path / "rnn", other_z)
    other_hidden = config_module.build("doom-smoke", overrides={"rnn.hidden_size": 32, "vae.z_size": 4})
    with pytest.raises(ArtifactError, match="hidden_size=32"):
        load_mdn_rnn(tmp_path / "rnn", other_hidden)
