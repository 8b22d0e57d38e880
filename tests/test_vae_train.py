"""Training V: the loss goes down, weights round-trip exactly, and a resumed run equals an uninterrupted one."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from common import training
from common.checkpoint import load_checkpoint
from common.files import read_jsonl
from tests.vae_synthetic import synthetic_frames, write_synthetic_rollouts
from vae.build import build_model
from vae.config import VaeConfig
from vae.store import load_encoder_decoder
from vae.train import checkpoint_path, compiled_steps, save_final_weights, train_vae

SMALL = dict(z_size=32, batch_size=4, shuffle_buffer=16, validation_fraction=0.34, learning_rate=1e-3)


def quiet(_line):
    pass


def test_a_few_steps_lower_the_loss():
    model = build_model(VaeConfig(**SMALL))
    train_function, test_function = compiled_steps(model)
    frames = tf.constant(synthetic_frames(8, seed=0).astype(np.float32) / 255.0)
    before = float(test_function(frames)["loss"])
    for _ in range(8):
        train_function(frames)
    model.reset_metrics()
    after = float(test_function(frames)["loss"])
    assert after < 0.9 * before, (before, after)


def test_save_load_round_trip_is_exact(tmp_path):
    config = VaeConfig(**SMALL)
    model = build_model(config)
    train_function, _ = compiled_steps(model)
    train_function(tf.constant(synthetic_frames(4, seed=1).astype(np.float32) / 255.0))
    save_final_weights(model, tmp_path)
    encoder, decoder = load_encoder_decoder(tmp_path, config)
    frames = tf.constant(synthetic_frames(3, seed=2).astype(np.float32) / 255.0)
    for original, loaded in zip(model.encoder(frames), encoder(frames), strict=True):
        np.testing.assert_array_equal(original.numpy(), loaded.numpy())
    z = tf.random.normal((3, 32), seed=3)
    np.testing.assert_array_equal(model.decoder(z).numpy(), decoder(z).numpy())


def _weights(vae_dir, config):
    encoder, decoder = load_encoder_decoder(vae_dir, config)
    return encoder.get_weights() + decoder.get_weights()


def test_resume_continues_step_counter_and_optimizer_state(tmp_path):
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=3, num_steps=10)  # 2 training episodes: 21 frames, 6 batches an epoch
    uninterrupted = VaeConfig(**SMALL, epochs=2, max_train_steps=8)
    summary = train_vae(tmp_path / "rollouts", tmp_path / "straight", uninterrupted, log=quiet, progress=False)
    assert summary["steps"] == 8

    # The same run killed after 3 steps (mid-epoch), then rerun with the same command.
    interrupted = VaeConfig(**SMALL, epochs=2, max_train_steps=3)
    train_vae(tmp_path / "rollouts", tmp_path / "resumed", interrupted, log=quiet, progress=False)
    fresh = build_model(interrupted)
    counters = load_checkpoint(checkpoint_path(tmp_path / "resumed"), fresh)
    assert counters == {"step": 3, "epoch": 0, "step_in_epoch": 3, "metrics_records": 1}
    assert int(fresh.optimizer.iterations) == 3
    # the checkpoint holds exactly the state the run ended with
    for stored, final in zip(fresh.encoder.get_weights() + fresh.decoder.get_weights(), _weights(tmp_path / "resumed", interrupted), strict=True):
        np.testing.assert_array_equal(stored, final)

    lines = []
    summary = train_vae(tmp_path / "rollouts", tmp_path / "resumed", uninterrupted, log=lines.append, progress=False)
    assert lines[0].startswith("resuming from") and "step 3" in lines[0]
    assert summary["steps"] == 8
    resumed_model = build_model(uninterrupted)
    counters = load_checkpoint(checkpoint_path(tmp_path / "resumed"), resumed_model)
    assert counters == {"step": 8, "epoch": 1, "step_in_epoch": 2, "metrics_records": 3}
    assert int(resumed_model.optimizer.iterations) == 8  # Adam's step count carried on, not restarted
    for resumed, straight in zip(_weights(tmp_path / "resumed", uninterrupted), _weights(tmp_path / "straight", uninterrupted), strict=True):
        np.testing.assert_allclose(resumed, straight, rtol=1e-5, atol=1e-6)

    records = read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
    assert [record["step"] for record in records] == [3, 6, 8]
    assert all("val_loss" in record and np.isfinite(record["val_loss"]) for record in records)
    events = sorted((tmp_path / "resumed" / "tensorboard").iterdir())
    records = [event_pb2.Event.FromString(record.numpy()) for path in events for record in tf.data.TFRecordDataset(str(path))]
    tags = {value.tag for event in records for value in event.summary.value if value.metadata.plugin_data.plugin_name == "scalars"}
    assert {"train_epoch/loss", "validation/loss", "validation/kl"} <= tags


def test_training_finished_is_the_first_of_epochs_and_step_cap():
    assert not VaeConfig(epochs=2).training_finished(epochs_completed=1, steps=10**6)  # no cap
    assert VaeConfig(epochs=2).training_finished(epochs_completed=2, steps=0)
    assert VaeConfig(epochs=2, max_train_steps=8).training_finished(epochs_completed=0, steps=8)
    assert not VaeConfig(epochs=2, max_train_steps=8).training_finished(epochs_completed=1, steps=7)


class Killed(BaseException):
    pass


def test_a_kill_between_an_epoch_line_and_its_checkpoint_leaves_no_duplicate_line(tmp_path, monkeypatch):
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=3, num_steps=10)  # 6 batches an epoch
    config = VaeConfig(**SMALL, epochs=2)
    save = training.save_checkpoint

    def killed_at_step_12(path, model, counters, state=None):
        if counters["step"] == 12:
            raise Killed  # epoch 2's line is written, its checkpoint is not
        save(path, model, counters, state)

    monkeypatch.setattr(training, "save_checkpoint", killed_at_step_12)
    with pytest.raises(Killed):
        train_vae(tmp_path / "rollouts", tmp_path / "vae", config, log=quiet, progress=False)
    assert [record["step"] for record in read_jsonl(tmp_path / "vae" / "metrics.jsonl")] == [6, 12]
    monkeypatch.setattr(training, "save_checkpoint", save)
    train_vae(tmp_path / "rollouts", tmp_path / "vae", config, log=quiet, progress=False)  # resumes at step 6
    assert [record["step"] for record in read_jsonl(tmp_path / "vae" / "metrics.jsonl")] == [6, 12]
