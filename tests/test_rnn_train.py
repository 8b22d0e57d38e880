"""Training M: windows and their masks, the LSTM reset at episode starts, loss going down, exact resume."""

import dataclasses

import numpy as np
import pytest

from common.files import read_jsonl
from rnn.config import RnnConfig
from rnn.data import SeriesData
from rnn.store import WEIGHTS_NAME
from rnn.train import build_trainable, train_rnn
from vae.series import write_initial_z, write_series

Z_SIZE, ACTION_SIZE = 3, 1


def _write_episodes(folder, lengths, seed=0):
    """Synthetic series with learnable dynamics: z_{t+1} = 0.9 z_t + a_t, death at the end of some episodes."""
    rng = np.random.default_rng(seed)
    for index, length in enumerate(lengths):
        action = rng.uniform(-1, 1, size=(length, ACTION_SIZE)).astype(np.float32)
        mu = np.zeros((length, Z_SIZE), np.float32)
        mu[0] = rng.normal(size=Z_SIZE)
        for t in range(1, length):
            mu[t] = 0.9 * mu[t - 1] + action[t - 1, 0]
        done = np.zeros(length, bool)
        done[-1] = index % 2 == 0
        write_series(folder / f"{index:06d}.npz", mu, np.full_like(mu, -6.0), action, np.ones(length, np.float32), done)
    write_initial_z(folder, np.zeros((len(lengths), Z_SIZE)), np.zeros((len(lengths), Z_SIZE)))


def _config(**changes):
    base = RnnConfig(
        hidden_size=16, num_mixtures=2, restart_input=True, predict_done=True, sequence_length=12, batch_size=4, num_steps=6, log_every=2, learning_rate=1e-2
    )
    return dataclasses.replace(base, **changes)


def test_windows_stay_inside_episodes_with_masks(tmp_path):
    _write_episodes(tmp_path, [5, 30, 8])
    data = SeriesData(tmp_path, Z_SIZE, ACTION_SIZE)
    batch = data.batch(64, 12, seed=0, step=0, restart_input=True)
    assert batch["inputs"].shape == (64, 12, Z_SIZE + ACTION_SIZE + 1)
    for row in range(64):
        real = int(batch["step_mask"][row].sum())
        assert real in (5, 8, 12)  # whole short episode, or a full window of the long one
        # the last step of an episode has no next frame: no z target there
        assert batch["z_mask"][row].sum() in ((real - 1,) if real < 12 else (11, 12))  # 11: the window ends the episode
        assert np.all(batch["inputs"][row, real:] == 0)
        restart = batch["inputs"][row, :, -1]
        assert restart[1:].sum() == 0  # no episode starts inside a window
        if real == 5:  # episode 0 (dies at its end): the done target sits on its last step
            assert restart[0] == 1 and batch["done_target"][row, 4] == 1 and batch["done_target"][row].sum() == 1
        if real == 8:  # episode 2 dies too; episode 1 (30 steps) does not
            assert batch["done_target"][row, 7] == 1
    # same (seed, step) -> the same batch; another step -> another one
    again = data.batch(64, 12, seed=0, step=0, restart_input=True)
    np.testing.assert_array_equal(again["inputs"], batch["inputs"])
    assert not np.array_equal(data.batch(64, 12, seed=0, step=1, restart_input=True)["inputs"], batch["inputs"])


def test_lstm_state_is_reset_at_an_episode_boundary(tmp_path):
    """Two episodes back to back: the window of the second one starts from a zero state,
    so M's outputs for it equal a fresh run of the second episode alone."""
    _write_episodes(tmp_path, [7, 6])
    data = SeriesData(tmp_path, Z_SIZE, ACTION_SIZE)
    assert list(data.starts) == [0, 7]  # stored as one stream with an episode boundary at 7
    batch = data.batch(32, 10, seed=3, step=0, restart_input=True)
    model = build_trainable(_config(), Z_SIZE, ACTION_SIZE)
    outputs = model(batch["inputs"])[0].numpy()
    second_rows = [row for row in range(32) if batch["step_mask"][row].sum() == 6]
    assert second_rows
    row = second_rows[0]
    alone = model(batch["inputs"][row : row + 1, :6])[0].numpy()[0]
    np.testing.assert_allclose(outputs[row, :6], alone, atol=1e-5)
    # had the state been carried over from episode 1, the outputs would differ
    first_episode = np.ones((1, 6, batch["inputs"].shape[-1]), np.float32)
    carried = model(np.concatenate([first_episode, batch["inputs"][row : row + 1, :6]], axis=1))[0]
    assert not np.allclose(carried.numpy()[0, 6:], alone, atol=1e-3)


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    _write_episodes(series, [20, 25, 15, 30])
    config = _config(num_steps=30, log_every=5)
    summary = train_rnn(series, tmp_path / "whole", config, Z_SIZE, ACTION_SIZE, progress=False)
    records = read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    assert [record["step"] for record in records] == [5, 10, 15, 20, 25, 30]
    assert records[-1]["loss"] < records[0]["loss"] - 0.5
    assert {"loss", "z_loss", "done_loss", "learning_rate"} <= set(records[0])
    assert summary["final_loss"] == records[-1]["loss"]
    assert (tmp_path / "whole" / WEIGHTS_NAME).exists()
    assert any((tmp_path / "whole" / "tensorboard").iterdir())

    # interrupted after 12 steps (its checkpoint), then resumed to 30
    train_rnn(series, tmp_path / "resumed", dataclasses.replace(config, num_steps=12), Z_SIZE, ACTION_SIZE, progress=False)
    train_rnn(series, tmp_path / "resumed", config, Z_SIZE, ACTION_SIZE, progress=False)
    whole = build_trainable(config, Z_SIZE, ACTION_SIZE)
    whole.load_weights(tmp_path / "whole" / WEIGHTS_NAME)
    resumed = build_trainable(config, Z_SIZE, ACTION_SIZE)
    resumed.load_weights(tmp_path / "resumed" / WEIGHTS_NAME)
    for expected, got in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert [record["step"] for record in read_jsonl(tmp_path / "resumed" / "metrics.jsonl")] == [5, 10, 12, 15, 20, 25, 30]
    # a rerun with fewer steps than already done trains nothing and keeps the true count
    again = train_rnn(series, tmp_path / "resumed", dataclasses.replace(config, num_steps=12), Z_SIZE, ACTION_SIZE, progress=False)
    assert again["steps"] == 30 and again["final_loss"] == records[-1]["loss"]
    assert [record["step"] for record in read_jsonl(tmp_path / "resumed" / "metrics.jsonl")] == [5, 10, 12, 15, 20, 25, 30]


def test_decayed_learning_rate():
    model = build_trainable(_config(learning_rate=1e-3, learning_rate_decay=0.5, min_learning_rate=1e-4), Z_SIZE, ACTION_SIZE)
    schedule = model.optimizer._learning_rate
    steps = np.array([0, 1, 2, 3, 10])
    expected = (1e-3 - 1e-4) * 0.5**steps + 1e-4  # authors' Doom code: decays from lr_0 towards min_lr
    np.testing.assert_allclose([float(schedule(step)) for step in steps], expected, rtol=1e-6)


def test_missing_series_is_a_clear_error(tmp_path):
    from common.errors import ArtifactError

    with pytest.raises(ArtifactError, match="scripts.extract"):
        SeriesData(tmp_path / "series", Z_SIZE, ACTION_SIZE)
