"""M's architecture: parameter counts, save/load round trip, the one-step function."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from common.errors import ArtifactError
from rnn.config import RnnConfig
from rnn.model import build_mdn_rnn, lstm_recurrence, reference_recurrence
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


def test_restart_zeroes_the_state_mid_window():
    """A restart flag inside a window: the steps from it on equal a fresh run from a zero state."""
    rng = np.random.default_rng(2)
    model = build_mdn_rnn(_small_config(), 4, 2)
    inputs = _inputs(model, rng, batch=2, length=9)
    restart = np.zeros((2, 9), np.float32)
    restart[0, 4] = restart[1, 0] = 1
    initial = [rng.normal(size=(2, 16)).astype(np.float32) for _ in range(2)]
    output, h, c = model(inputs, initial_state=initial, restart=restart)
    fresh, fresh_h, fresh_c = model(inputs[:1, 4:])
    np.testing.assert_allclose(output[0, 4:].numpy(), fresh[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(h[0].numpy(), fresh_h[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(c[0].numpy(), fresh_c[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(output[1].numpy(), model(inputs[1:])[0][0].numpy(), atol=1e-5)
    carried = model(inputs[:1, :4], initial_state=[state[:1] for state in initial])[0]
    np.testing.assert_allclose(output[0, :4].numpy(), carried[0].numpy(), atol=1e-5)  # before the restart: the carried state


def test_written_out_backward_pass_equals_automatic_differentiation():
    """The fast recurrence (hand-written BPTT) gives the reference loop's loss and gradients,
    for the weights and the carried-in state, with restarts inside the window."""
    rng = np.random.default_rng(3)
    model = build_mdn_rnn(_small_config(predict_reward=True), 4, 2)
    inputs = _inputs(model, rng, batch=3, length=11)
    restart = (rng.uniform(size=(3, 11)) < 0.2).astype(np.float32)
    initial = [tf.constant(rng.normal(size=(3, 16)).astype(np.float32)) for _ in range(2)]
    target = rng.normal(size=(3, 11, model.head.units)).astype(np.float32)
    results = []
    for recurrence in (reference_recurrence, lstm_recurrence):
        with tf.GradientTape() as tape:
            tape.watch(initial)
            output, h, c = model(inputs, initial_state=initial, restart=restart, recurrence=recurrence)
            loss = tf.reduce_mean(tf.square(output - target)) + tf.reduce_sum(tf.sin(h)) + tf.reduce_sum(tf.square(c))
        results.append([loss.numpy()] + [gradient.numpy() for gradient in tape.gradient(loss, model.trainable_variables + initial)])
    assert len(results[1]) == 1 + 5 + 2
    for reference, fast in zip(*results, strict=True):
        np.testing.assert_allclose(fast, reference, rtol=1e-4, atol=1e-6)


def test_the_compiled_training_step_trains_like_the_plain_reference():
    """rnn.train's compiled train step (written-out backward pass), and the same under XLA, give the
    loss and the gradients of the eager reference loop within float tolerance, carried state and restarts included."""
    from rnn.train import compile_step

    rng = np.random.default_rng(4)
    model = build_mdn_rnn(_small_config(), 4, 2)
    batch = {
        "inputs": _inputs(model, rng, batch=3, length=10),
        "restart": (rng.uniform(size=(3, 10)) < 0.2).astype(np.float32),
        "z_target": rng.normal(size=(3, 10, 4)).astype(np.float32),
        "z_mask": (rng.uniform(size=(3, 10)) < 0.9).astype(np.float32),
        "step_mask": np.ones((3, 10), np.float32),
        "done_target": (rng.uniform(size=(3, 10)) < 0.2).astype(np.float32),
    }
    batch["inputs"][..., -1] = batch["restart"]
    h, c = (tf.constant(rng.normal(size=(3, 16)).astype(np.float32)) for _ in range(2))

    def loss_and_gradients(recurrence):
        model_call = model.call

        def call(*arguments, **keywords):
            return model_call(*arguments, recurrence=recurrence, **keywords)

        model.call = call
        with tf.GradientTape() as tape:
            losses, final_h, final_c = model.window_losses(batch, h, c, training=True)
        model.call = model_call
        return [losses["loss"], losses["z_loss"], losses["done_loss"], final_h, final_c] + tape.gradient(losses["loss"], model.trainable_variables)

    reference = loss_and_gradients(reference_recurrence)
    for compiled in (compile_step(lambda: loss_and_gradients(lstm_recurrence)), tf.function(lambda: loss_and_gradients(lstm_recurrence), jit_compile=True)):
        for expected, got in zip(reference, compiled(), strict=True):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-6)
