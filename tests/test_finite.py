"""Finite values: NaN/Inf in rollouts or series are refused when read, and V and M stop at the
first non-finite loss or gradient without applying it or saving anything."""

import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf

from common.checkpoint import read_checkpoint
from common.errors import ArtifactError
from common.training import TrainingDiverged
from env.rollouts import read_rollout, write_rollout
from rnn import data as rnn_data
from rnn.train import build_trainable, train_rnn
from scripts import stage
from tests.test_rnn_train import ACTION_SIZE, LENGTHS, Z_SIZE, _config, _write_labelled
from tests.vae_synthetic import synthetic_frames, write_synthetic_rollouts
from vae import data as vae_data
from vae.build import build_model
from vae.config import VaeConfig
from vae.series import read_initial_z, read_series, write_initial_z, write_series
from vae.train import compiled_steps, train_vae

SMALL_VAE = dict(z_size=8, batch_size=4, shuffle_buffer=16, validation_fraction=0.34, learning_rate=1e-3)


def _files(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_series_file_with_one_nan_in_mu_is_refused(tmp_path):
    mu = np.zeros((6, 3), np.float32)
    mu[4, 1] = np.nan
    write_series(tmp_path / "000002.npz", mu, np.zeros_like(mu), np.zeros((6, 1)), np.zeros(6), np.zeros(6, bool))
    with pytest.raises(
        ArtifactError, match=r"000002\.npz: 'mu' holds 1 non-finite values \(NaN or Inf\), first in row 4; delete it and rerun .*scripts\.extract"
    ):
        read_series(tmp_path / "000002.npz")
    write_initial_z(tmp_path, np.zeros((2, 3)), np.array([[0, 0, 0], [0, np.inf, 0]]))
    with pytest.raises(ArtifactError, match=r"initial_z\.npz: 'logvar' holds 1 non-finite .* row 1; delete it and rerun .*scripts\.extract"):
        read_initial_z(tmp_path)


def test_a_rollout_with_a_nan_reward_is_refused(tmp_path):
    reward = np.zeros(5, np.float32)
    reward[2] = np.nan
    write_rollout(tmp_path / "000000.npz", synthetic_frames(5, seed=0), np.zeros((5, 3)), reward, np.zeros(5, bool))
    with pytest.raises(ArtifactError, match=r"000000\.npz: 'reward' holds 1 non-finite .* row 2; delete it and rerun .*scripts\.generate"):
        read_rollout(tmp_path / "000000.npz")


def _state(model) -> list[np.ndarray]:
    """Weights and optimizer variables (not the noise generator's state: the step did draw its noise)."""
    return [variable.numpy().copy() for variable in model.weights] + [
        variable.numpy().copy() for optimizer, _ in model.optimizer_targets() for variable in optimizer.variables
    ]


@pytest.mark.parametrize("kind", ["vae", "vaegan"])
def test_v_skips_a_non_finite_update(kind):
    model = build_model(VaeConfig(kind=kind, z_size=8))
    train_function, _ = compiled_steps(model, checked=True)
    frames = synthetic_frames(4, seed=1).astype(np.float32) / 255.0
    assert bool(train_function(tf.constant(frames))[1])
    before = _state(model)
    frames[2, 5, 5, 0] = np.inf
    _, finite = train_function(tf.constant(frames))
    assert not bool(finite)
    for old, new in zip(before, _state(model), strict=True):  # weights, Adam's moments and step count: untouched
        np.testing.assert_array_equal(old, new)


def test_m_skips_a_non_finite_update():
    model = build_trainable(_config(), Z_SIZE, ACTION_SIZE)
    batch = {
        "inputs": np.zeros((2, 5, Z_SIZE + ACTION_SIZE + 1), np.float32),
        "z_target": np.zeros((2, 5, Z_SIZE), np.float32),
        "z_mask": np.ones((2, 5), np.float32),
        "step_mask": np.ones((2, 5), np.float32),
        "done_target": np.zeros((2, 5), np.float32),
        "reward_target": np.zeros((2, 5), np.float32),
    }
    step = tf.function(model.checked_train_step)
    zeros = tf.zeros([2, model.hidden_size])
    assert bool(step(batch, zeros, zeros)[1])
    before = _state(model)
    batch["z_target"][1, 3, 0] = np.nan
    assert not bool(step(batch, zeros, zeros)[1])
    for old, new in zip(before, _state(model), strict=True):
        np.testing.assert_array_equal(old, new)


def test_v_stops_at_a_poisoned_batch_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=3, num_steps=10)  # 6 batches an epoch
    vae_dir = tmp_path / "vae"
    train_vae(tmp_path / "rollouts", vae_dir, VaeConfig(**SMALL_VAE, max_train_steps=3), log=lambda _: None, progress=False)
    before = _files(vae_dir)
    assert {"checkpoints/last.npz", "encoder.weights.h5", "metrics.jsonl"} <= {str(path) for path in before}

    clean = vae_data.epoch_dataset
    monkeypatch.setattr(vae_data, "epoch_dataset", lambda *arguments: clean(*arguments).map(lambda frames: frames * np.inf))
    longer = VaeConfig(**SMALL_VAE, max_train_steps=8)
    message = r"train_vae: the loss or a gradient is not finite at step 4 \(epoch 1, batch 4 of the epoch\).*last\.npz \(step 3\) is the last good"
    with pytest.raises(TrainingDiverged, match=message):
        train_vae(tmp_path / "rollouts", vae_dir, longer, log=lambda _: None, progress=False)
    after = _files(vae_dir)
    assert {path: data for path, data in after.items() if "tensorboard" not in str(path)} == {
        path: data for path, data in before.items() if "tensorboard" not in str(path)
    }

    # A fresh run poisoned from its first batch writes no checkpoint and no weights.
    with pytest.raises(TrainingDiverged, match="at step 1 .*no checkpoint was written"):
        train_vae(tmp_path / "rollouts", tmp_path / "fresh", longer, log=lambda _: None, progress=False)
    assert not (tmp_path / "fresh" / "checkpoints").exists() and not list((tmp_path / "fresh").glob("*.weights.h5"))


def test_m_stops_at_a_poisoned_batch_naming_its_series_files(tmp_path, monkeypatch):
    series = tmp_path / "series"
    series.mkdir()
    _write_labelled(series, LENGTHS)  # each z names its (episode, step)
    config = _config(epochs=1, batch_size=3)
    train_rnn(series, tmp_path / "rnn", config, Z_SIZE, ACTION_SIZE, progress=False, log=lambda _: None)
    before = _files(tmp_path / "rnn")
    steps_in_first_epoch = read_checkpoint(tmp_path / "rnn" / "checkpoints" / "last.npz", build_trainable(config, Z_SIZE, ACTION_SIZE))[0]["step"]

    clean = rnn_data.WindowStream.batch
    poisoned_batch = {}

    def poisoned(self, epoch, index):
        batch = clean(self, epoch, index)
        if (epoch, index) == (1, 1):
            poisoned_batch.update(batch)
            batch = {**batch, "inputs": np.full_like(batch["inputs"], np.inf)}
        return batch

    monkeypatch.setattr(rnn_data.WindowStream, "batch", poisoned)
    with pytest.raises(TrainingDiverged) as error:
        train_rnn(series, tmp_path / "rnn", dataclasses.replace(config, epochs=2), Z_SIZE, ACTION_SIZE, progress=False, log=lambda _: None)
    message = str(error.value)
    assert f"not finite at step {steps_in_first_epoch + 2} (epoch 2, batch 2 of the epoch" in message
    assert f"last.npz (step {steps_in_first_epoch}) is the last good checkpoint" in message
    # the episodes whose frames the window holds, read off the labelled z of its real steps
    real = poisoned_batch["step_mask"] > 0
    episodes = sorted({int(round(value)) for value in poisoned_batch["inputs"][..., 0][real]})
    named = re.search(r"series files ([\d., npz]+)", message).group(1).strip(" .")
    assert named == ", ".join(f"{episode:06d}.npz" for episode in episodes)
    after = _files(tmp_path / "rnn")
    assert {path: data for path, data in after.items() if "tensorboard" not in str(path)} == {
        path: data for path, data in before.items() if "tensorboard" not in str(path)
    }


def test_train_rnn_exits_2_on_a_nan_series_and_leaves_rnn_as_it_was(tmp_path, monkeypatch, capsys):
    import os
    import signal

    from scripts import train_rnn as train_rnn_stage
    from tests.test_rnn_stages import SETTINGS

    run = tmp_path / "run"
    _write_run(run)
    clean = rnn_data.WindowStream.batch

    def interrupted_at_window_2(self, epoch, index):
        if (epoch, index) == (0, 2):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the loop saves at the next consistent point
        return clean(self, epoch, index)

    monkeypatch.setattr(rnn_data.WindowStream, "batch", interrupted_at_window_2)
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(train_rnn_stage.main, ["--run-dir", str(run), *SETTINGS, "--set", "rnn.sequence_length=5"])
    assert exit_info.value.code == 130
    monkeypatch.setattr(rnn_data.WindowStream, "batch", clean)
    before = _files(run / "rnn")
    assert {"checkpoints/last.npz", "metrics.jsonl", "started.json"} <= {str(path) for path in before}

    series = read_series(run / "series" / "000001.npz")
    series["mu"][7, 2] = np.nan
    write_series(run / "series" / "000001.npz", **series)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(train_rnn_stage.main, ["--run-dir", str(run), *SETTINGS, "--set", "rnn.sequence_length=5"])
    assert exit_info.value.code == 2
    assert re.search(r"000001\.npz: 'mu' holds 1 non-finite values .* row 7", capsys.readouterr().err)
    assert _files(run / "rnn") == before


def _write_run(run):
    """The run of tests/test_rnn_stages.py: series for 3 episodes, 'extract' done."""
    from tests.test_rnn_stages import SETTINGS
    from tests.test_rnn_stages import Z_SIZE as STAGE_Z_SIZE

    config = stage.resolve_config(run, "doom-smoke", SETTINGS[1::2])
    rng = np.random.default_rng(0)
    (run / "series").mkdir(parents=True)
    for index, length in enumerate((30, 45, 25)):
        mu = rng.normal(size=(length, STAGE_Z_SIZE))
        write_series(run / "series" / f"{index:06d}.npz", mu, np.full_like(mu, -3.0), rng.uniform(-1, 1, (length, 1)), np.ones(length), np.eye(length)[-1])
    write_initial_z(run / "series", rng.normal(size=(3, STAGE_Z_SIZE)), np.full((3, STAGE_Z_SIZE), -3.0))
    stage.mark_done(run, "extract", config)
