"""The shared training loop (common/training.py): resume by (epoch, step_in_epoch) with carried
state, Ctrl-C saving at a consistent point, and M's old checkpoint name read once."""

import dataclasses
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.checkpoint import read_checkpoint, save_checkpoint
from common.errors import ArtifactError
from common.files import read_jsonl
from common.training import Progress, Record, Trainer, apply_if_finite, checkpoint_path, run_training
from rnn import data as rnn_data
from rnn.store import WEIGHTS_NAME
from rnn.train import build_trainable, train_rnn
from tests.test_rnn_train import ACTION_SIZE, Z_SIZE, _config, _write_episodes


class Toy(keras.Model):
    """y = x W + b trained towards a target that the carried state sets."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1, kernel_initializer="ones")
        self.dense.build((None, 2))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.adam = keras.optimizers.Adam(0.05)
        self.adam.build(self.dense.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def optimizer_targets(self):
        return [(self.adam, self.dense.trainable_variables)]


def _toy_trainer(model: Toy, calls: list, **changes) -> Trainer:
    def batches(epoch, step_in_epoch):
        calls.append((epoch, step_in_epoch))
        for index in range(step_in_epoch, 4):
            yield np.array([[epoch + 1.0, index + 1.0]], np.float32)

    def step(batch, state):
        variables = model.dense.trainable_variables
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model.dense(batch) - state["carry"]))
        finite = apply_if_finite([loss], [(model.adam, tape.gradient(loss, variables), variables)])
        model.loss_tracker.update_state(loss)
        return {"loss": model.loss_tracker.result()}, finite, {"carry": state["carry"] + np.float32(batch.sum() / 10)}

    trainer = Trainer(
        name="toy",
        model=model,
        batches=batches,
        step=step,
        steps_per_epoch=4,
        epochs=2,
        initial_state=lambda epoch: {"carry": np.float32(epoch)},
        end_epoch=lambda progress, complete: Record(metrics={"step": progress.step, "complete": complete}),
    )
    return dataclasses.replace(trainer, **changes)


def test_resume_mid_epoch_restores_position_and_carried_state(tmp_path):
    calls = []
    whole_model = Toy()
    whole = run_training(_toy_trainer(whole_model, calls), tmp_path / "whole", 60, log=lambda _: None, show_progress=False)
    assert whole == Progress(step=8, epoch=2, step_in_epoch=0, metrics_records=2)
    assert calls == [(0, 0), (1, 0)]

    calls.clear()
    model = Toy()
    stopped = run_training(_toy_trainer(model, calls, max_steps=3), tmp_path / "resumed", 60, log=lambda _: None, show_progress=False)
    assert stopped == Progress(step=3, epoch=0, step_in_epoch=3, metrics_records=1)
    counters, state = read_checkpoint(checkpoint_path(tmp_path / "resumed"), Toy())
    assert counters == dataclasses.asdict(stopped)
    np.testing.assert_allclose(state["carry"], (1 + 1 + 1 + 2 + 1 + 3) / 10, rtol=1e-6)  # epoch 0 starts at 0, + batch sums / 10

    lines = []
    model = Toy()  # a new process: everything comes from the checkpoint
    resumed = run_training(_toy_trainer(model, calls), tmp_path / "resumed", 60, log=lines.append, show_progress=False)
    assert lines == [f"resuming from {checkpoint_path(tmp_path / 'resumed')}: epoch 1, step 3"]
    assert calls == [(0, 0), (0, 3), (1, 0)]  # the rest of epoch 1, then epoch 2 from its start
    assert resumed == dataclasses.replace(whole, metrics_records=3)
    for expected, got in zip(whole_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert int(model.adam.iterations) == 8
    assert [(record["step"], record["complete"]) for record in read_jsonl(tmp_path / "resumed" / "metrics.jsonl")] == [(3, False), (4, True), (8, True)]
    whole_state = read_checkpoint(checkpoint_path(tmp_path / "whole"), Toy())[1]
    assert read_checkpoint(checkpoint_path(tmp_path / "resumed"), Toy())[1] == whole_state


def test_m_saves_on_ctrl_c_mid_epoch_and_refuses_its_random_window_checkpoint(tmp_path, monkeypatch):
    series = tmp_path / "series"
    series.mkdir()
    _write_episodes(series, [20, 25, 15, 30, 12, 28])
    config = _config(epochs=2, log_every=2)
    quiet = dict(progress=False, log=lambda _: None)
    train_rnn(series, tmp_path / "whole", config, Z_SIZE, ACTION_SIZE, **quiet)
    whole = build_trainable(config, Z_SIZE, ACTION_SIZE)
    whole.load_weights(tmp_path / "whole" / WEIGHTS_NAME)

    # Ctrl-C while window 3 of the second epoch is being made: that step finishes, then the loop saves and stops.
    clean = rnn_data.WindowStream.batch

    def interrupted(self, epoch, index):
        if (epoch, index) == (1, 2):
            os.kill(os.getpid(), signal.SIGINT)
        return clean(self, epoch, index)

    monkeypatch.setattr(rnn_data.WindowStream, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_rnn(series, tmp_path / "interrupted", config, Z_SIZE, ACTION_SIZE, **quiet)
    monkeypatch.setattr(rnn_data.WindowStream, "batch", clean)
    checkpoint = checkpoint_path(tmp_path / "interrupted")
    model = build_trainable(config, Z_SIZE, ACTION_SIZE)
    counters, state = read_checkpoint(checkpoint, model)
    assert counters["epoch"] == 1 and counters["step_in_epoch"] == 3
    assert int(model.optimizer.iterations) == counters["step"]  # the weights are those of the step the counters name
    assert set(state) == {"h", "c"} and np.abs(state["h"]).sum() > 0  # the LSTM state carried into window 4
    assert not (tmp_path / "interrupted" / WEIGHTS_NAME).exists()
    train_rnn(series, tmp_path / "interrupted", config, Z_SIZE, ACTION_SIZE, **quiet)
    resumed = build_trainable(config, Z_SIZE, ACTION_SIZE)
    resumed.load_weights(tmp_path / "interrupted" / WEIGHTS_NAME)
    for expected, got in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)

    # A checkpoint of the earlier random-window training (checkpoints/checkpoint.npz) cannot continue as epochs: refused, kept.
    old_run = tmp_path / "old"
    save_checkpoint(old_run / "checkpoints" / "checkpoint.npz", model, {"step": 8})
    with pytest.raises(ArtifactError, match=r"checkpoint\.npz: a checkpoint of M's earlier random-window training.*--force"):
        train_rnn(series, old_run, config, Z_SIZE, ACTION_SIZE, **quiet)
    assert sorted(path.name for path in (old_run / "checkpoints").iterdir()) == ["checkpoint.npz"]
