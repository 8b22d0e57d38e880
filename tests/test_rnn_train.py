"""Training M: every step once per epoch, the LSTM state carried across windows and zeroed at episode starts, validation, exact resume."""

import dataclasses

import numpy as np
import pytest

from common.files import read_jsonl
from rnn.config import RnnConfig
from rnn.data import SeriesData, WindowStream, split_series_paths
from rnn.model import build_mdn_rnn
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
        hidden_size=16,
        num_mixtures=2,
        restart_input=True,
        predict_done=True,
        sequence_length=12,
        batch_size=4,
        epochs=2,
        validation_fraction=0.0,
        log_every=2,
        learning_rate=1e-2,
    )
    return dataclasses.replace(base, **changes)


LENGTHS = [5, 30, 8, 17, 3, 22, 40, 11]


def _write_labelled(folder, lengths):
    """Series whose mu holds (episode, step, 0): with sigma ~ 1e-13 each z names its own frame."""
    for episode, length in enumerate(lengths):
        mu = np.zeros((length, Z_SIZE), np.float32)
        mu[:, 0], mu[:, 1] = episode, np.arange(length)
        done = np.zeros(length, bool)
        done[-1] = episode % 3 != 1  # deaths at the end of most episodes
        done[length // 2] |= episode == 6  # and one death inside an episode: counted like any other
        action = np.full((length, ACTION_SIZE), episode / 10, np.float32)
        write_series(folder / f"{episode:06d}.npz", mu, np.full_like(mu, -60.0), action, np.arange(length, dtype=np.float32), done)


def _epoch(windows, epoch):
    return [windows.batch(epoch, index) for index in range(windows.num_windows(epoch))]


@pytest.mark.parametrize("restart_input", [True, False])
def test_every_step_is_a_target_exactly_once_per_epoch(tmp_path, restart_input):
    _write_labelled(tmp_path, LENGTHS)
    data = SeriesData(tmp_path, Z_SIZE, ACTION_SIZE)
    windows = WindowStream(data, batch_size=3, sequence_length=7, seed=5, restart_input=restart_input)
    orders = []
    for epoch in (0, 1):
        batches = _epoch(windows, epoch)
        step_mask = np.concatenate([batch["step_mask"] for batch in batches], axis=1) > 0  # (B, all windows of a row)
        inputs = np.concatenate([batch["inputs"] for batch in batches], axis=1)
        frames = [tuple(pair) for pair in np.round(inputs[step_mask][:, :2]).astype(int)]
        # every (episode, step) of the data exactly once, nothing else
        assert sorted(frames) == sorted((episode, t) for episode, length in enumerate(LENGTHS) for t in range(length))
        assert np.all(inputs[~step_mask] == 0)
        # each row is a contiguous run of whole episodes: consecutive steps, a new episode only at a restart
        restart = np.concatenate([batch["restart"] for batch in batches], axis=1)
        for row in range(3):
            real = np.round(inputs[row][step_mask[row]])
            assert len(real) and real[0, 1] == 0 and restart[row, 0] == 1
            new_episode = np.diff(real[:, 0]) != 0
            np.testing.assert_array_equal(new_episode, restart[row][step_mask[row]][1:] == 1)
            np.testing.assert_array_equal(np.diff(real[:, 1])[~new_episode], 1)
            assert np.all(real[1:, 1][new_episode] == 0)
        if restart_input:
            np.testing.assert_array_equal(inputs[..., -1], restart)
        assert restart.sum() == len(LENGTHS)
        # targets: z_{t+1} wherever a next frame exists; done and reward on every real step
        z_mask = np.concatenate([batch["z_mask"] for batch in batches], axis=1) > 0
        z_target = np.concatenate([batch["z_target"] for batch in batches], axis=1)
        assert z_mask.sum() == sum(LENGTHS) - len(LENGTHS)
        np.testing.assert_allclose(z_target[z_mask][:, :2], inputs[z_mask][:, :2] + [0, 1], atol=1e-5)
        done = np.concatenate([batch["done_target"] for batch in batches], axis=1)
        data_deaths = int(data.done.sum())
        assert done.sum() == data_deaths and step_mask.sum() == data.num_steps  # the data's death rate, exactly
        assert done[step_mask].sum() == data_deaths
        reward = np.concatenate([batch["reward_target"] for batch in batches], axis=1)
        np.testing.assert_array_equal(reward[step_mask], np.round(inputs[step_mask][:, 1]))  # r_t = t in these series
        orders.append([episode for episode, t in frames if t == 0])
    assert orders[0] != orders[1]  # the episode order is shuffled per epoch


def test_batches_are_pure_functions_of_seed_epoch_and_window(tmp_path):
    _write_episodes(tmp_path, [20, 25, 15, 30])
    data = SeriesData(tmp_path, Z_SIZE, ACTION_SIZE)
    windows = WindowStream(data, batch_size=2, sequence_length=6, seed=1, restart_input=True)
    batch = WindowStream(data, 2, 6, 1, True).batch(1, 3)  # a fresh stream, a later window first
    for key, value in windows.batch(1, 3).items():
        np.testing.assert_array_equal(value, batch[key])
    assert not np.array_equal(windows.batch(2, 3)["inputs"], batch["inputs"])
    assert not np.array_equal(WindowStream(data, 2, 6, 2, True).batch(1, 3)["inputs"], batch["inputs"])
    # z is resampled (sigma > 0 here), and the frame that ends a window starts the next with the same draw
    first, second = windows.batch(0, 0), windows.batch(0, 1)
    crossing = first["z_mask"][:, -1] > 0
    assert crossing.any()
    np.testing.assert_array_equal(first["z_target"][crossing, -1], second["inputs"][crossing, 0, :Z_SIZE])


def _run_windows(model, batches):
    """M over consecutive windows, the state carried from each to the next: outputs (B, all steps, head)."""
    h = c = np.zeros((batches[0]["inputs"].shape[0], model.hidden_size), np.float32)
    outputs = []
    for batch in batches:
        output, h, c = model(batch["inputs"], initial_state=[h, c], restart=batch["restart"])
        outputs.append(output.numpy())
    return np.concatenate(outputs, axis=1)


@pytest.mark.parametrize("restart_input", [True, False])
def test_state_is_carried_across_windows_and_zeroed_at_episode_starts(tmp_path, restart_input):
    _write_episodes(tmp_path, [7, 19, 6, 13, 9])
    data = SeriesData(tmp_path, Z_SIZE, ACTION_SIZE)
    windows = WindowStream(data, batch_size=2, sequence_length=5, seed=0, restart_input=restart_input)
    batches = _epoch(windows, 0)
    model = build_mdn_rnn(dataclasses.replace(_config(), restart_input=restart_input), Z_SIZE, ACTION_SIZE)
    windowed = _run_windows(model, batches)
    inputs = np.concatenate([batch["inputs"] for batch in batches], axis=1)
    restart = np.concatenate([batch["restart"] for batch in batches], axis=1)
    step_mask = np.concatenate([batch["step_mask"] for batch in batches], axis=1) > 0
    # carried: the same as the whole sub-stream of each row in one go
    whole = model(inputs, restart=restart)[0].numpy()
    np.testing.assert_allclose(windowed, whole, atol=1e-5)
    # zeroed at restarts: each episode equals a fresh run of that episode alone from a zero state
    checked = 0
    for row in range(2):
        starts = list(np.flatnonzero(restart[row])) + [int(step_mask[row].sum())]
        for begin, end in zip(starts[:-1], starts[1:], strict=True):
            alone = model(inputs[row : row + 1, begin:end])[0].numpy()[0]
            np.testing.assert_allclose(windowed[row, begin:end], alone, atol=1e-5)
            checked += 1
        # without the reset, a later episode would see the previous one's state
        if len(starts) > 2:
            unreset = model(inputs[row : row + 1, : starts[2]])[0].numpy()[0]
            assert not np.allclose(unreset[starts[1] :], windowed[row, starts[1] : starts[2]], atol=1e-3)
    assert checked == data.num_episodes


def test_validation_split_is_deterministic_and_held_out(tmp_path):
    paths = [tmp_path / f"{index:06d}.npz" for index in range(50)]
    training, validation = split_series_paths(paths, 0.1, seed=3)
    assert len(validation) == 5 and not set(training) & set(validation) and sorted(training + validation) == paths
    assert split_series_paths(list(reversed(paths)), 0.1, seed=3) == (training, validation)
    assert split_series_paths(paths, 0.1, seed=4)[1] != validation
    assert split_series_paths(paths, 0.0, seed=3) == (paths, [])


def test_adding_a_folder_leaves_the_split_of_the_others_unchanged(tmp_path):
    # iterate adds each round's episodes as a new folder: what was held out stays held out
    first = [tmp_path / "series" / f"{index:06d}.npz" for index in range(40)]
    added = [tmp_path / "iterate" / "round_001" / "series" / f"{index:06d}.npz" for index in range(20)]
    training, validation = split_series_paths(first, 0.1, seed=3)
    both_training, both_validation = split_series_paths(first + added, 0.1, seed=3)
    assert both_validation[: len(validation)] == validation and both_training[: len(training)] == training
    assert len(both_validation) == 4 + 2 and set(both_validation[len(validation) :]) <= set(added)
    assert sorted(both_training + both_validation) == sorted(first + added)


def test_training_lowers_the_loss_and_validates_each_epoch(tmp_path):
    series = tmp_path / "series"
    series.mkdir()
    _write_episodes(series, [20, 25, 15, 30, 22, 18, 26, 24, 21, 19])
    config = _config(epochs=6, log_every=5, validation_fraction=0.2)
    summary = train_rnn(series, tmp_path / "run", config, Z_SIZE, ACTION_SIZE, progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    training_records = [record for record in records if "loss" in record]
    validation_records = [record for record in records if "epoch" in record]
    assert training_records[-1]["loss"] < training_records[0]["loss"] - 0.5
    assert {"loss", "z_loss", "done_loss", "learning_rate"} <= set(training_records[0])
    assert [record["epoch"] for record in validation_records] == [1, 2, 3, 4, 5, 6]
    assert {"validation_z_loss", "validation_done_loss"} <= set(validation_records[0])
    assert validation_records[-1]["validation_z_loss"] < validation_records[0]["validation_z_loss"]
    # the steps count every window of every epoch (8 training episodes in 4 rows of windows of 12)
    training_paths, _ = split_series_paths(sorted(series.glob("0*.npz")), 0.2, config.seed)
    windows = WindowStream(SeriesData(training_paths, Z_SIZE, ACTION_SIZE), 4, 12, config.seed, True)
    assert summary["steps"] == sum(windows.num_windows(epoch) for epoch in range(6)) and summary["epochs"] == 6
    assert summary["final_loss"] == training_records[-1]["loss"] and summary["validation_z_loss"] == validation_records[-1]["validation_z_loss"]
    assert (tmp_path / "run" / WEIGHTS_NAME).exists()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


class _Killed(Exception):
    pass


def test_a_kill_mid_epoch_then_resume_gives_the_same_weights(tmp_path, monkeypatch):
    import rnn.train as train_module

    series = tmp_path / "series"
    series.mkdir()
    _write_episodes(series, [20, 25, 15, 30, 12, 28])
    config = _config(epochs=2, log_every=3, checkpoint_every_minutes=0.0)  # a checkpoint after every step
    train_rnn(series, tmp_path / "whole", config, Z_SIZE, ACTION_SIZE, progress=False)

    compiled = train_module.training_function

    def killed_after(count):
        def make(model):
            train_function = compiled(model)
            calls = []

            def step(*arguments):
                if len(calls) == count:
                    raise _Killed  # as if the process died before this update
                calls.append(1)
                return train_function(*arguments)

            return step

        return make

    monkeypatch.setattr(train_module, "training_function", killed_after(3))  # mid first epoch (5 windows)
    with pytest.raises(_Killed):
        train_rnn(series, tmp_path / "resumed", config, Z_SIZE, ACTION_SIZE, progress=False)
    monkeypatch.setattr(train_module, "training_function", killed_after(4))  # mid second epoch
    with pytest.raises(_Killed):
        train_rnn(series, tmp_path / "resumed", config, Z_SIZE, ACTION_SIZE, progress=False)
    monkeypatch.setattr(train_module, "training_function", compiled)
    summary = train_rnn(series, tmp_path / "resumed", config, Z_SIZE, ACTION_SIZE, progress=False)

    whole = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    whole.load_weights(tmp_path / "whole" / WEIGHTS_NAME)
    resumed = build_mdn_rnn(config, Z_SIZE, ACTION_SIZE)
    resumed.load_weights(tmp_path / "resumed" / WEIGHTS_NAME)
    for expected, got in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    # the same metrics lines (a line's mean covers only the steps since the resume when a kill cut its interval)
    steps = lambda run: [record["step"] for record in read_jsonl(tmp_path / run / "metrics.jsonl")]  # noqa: E731
    assert steps("resumed") == steps("whole")
    # a rerun with fewer epochs than already done trains nothing and keeps the true count
    again = train_rnn(series, tmp_path / "resumed", dataclasses.replace(config, epochs=1), Z_SIZE, ACTION_SIZE, progress=False)
    assert again["steps"] == summary["steps"] and again["epochs"] == 2


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
