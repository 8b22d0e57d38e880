"""Real short CarRacing-v3 and ViZDoom TakeCover episodes through the wrappers and BatchEnv."""

import os

import numpy as np
import pytest

from env.batch import BatchEnv
from env.config import EnvConfig
from env.frames import preprocess_carracing, preprocess_doom
from env.make import make_env


def play(env, seed, actions):
    frames = [env.reset(seed)]
    rewards, flags = [], []
    for action in actions:
        frame, reward, terminated, truncated = env.step(action)
        frames.append(frame)
        rewards.append(reward)
        flags.append((terminated, truncated))
        if terminated or truncated:
            break
    return np.stack(frames), np.array(rewards), flags


@pytest.fixture(scope="module")
def carracing():
    env = make_env(EnvConfig(name="carracing", max_steps=25))
    yield env
    env.close()


@pytest.fixture(scope="module")
def doom():
    env = make_env(EnvConfig(name="doom", max_steps=60))
    yield env
    env.close()


def test_carracing_episode_is_truncated_at_max_steps_and_seeded(carracing):
    assert carracing.action_size == 3
    actions = np.tile(np.array([0.1, 1.0, -1.0], dtype=np.float32), (40, 1))
    frames, rewards, flags = play(carracing, 3, actions)
    assert frames.shape == (26, 64, 64, 3) and frames.dtype == np.uint8
    assert flags[-1] == (False, True) and all(flag == (False, False) for flag in flags[:-1])
    assert carracing.raw_frame.shape == (96, 96, 3)
    np.testing.assert_array_equal(frames[-1], preprocess_carracing(carracing.raw_frame))
    # CarRacing pays -0.1 per step (+ tiles): rewards are small floats.
    assert rewards.dtype == np.float64 and np.all(rewards < 100)
    again, again_rewards, _ = play(carracing, 3, actions)
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(rewards, again_rewards)
    assert not np.array_equal(play(carracing, 4, actions)[0], frames)  # another seed, another track


def test_carracing_frames_change_when_driving(carracing):
    frames, _, _ = play(carracing, 5, np.tile(np.array([0.0, 1.0, -1.0], dtype=np.float32), (25, 1)))
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0


def test_doom_episode_is_seeded_and_capped(doom):
    assert doom.action_size == 1
    actions = np.random.default_rng(0).uniform(-1, 1, size=(100, 1)).astype(np.float32)
    frames, rewards, flags = play(doom, 11, actions)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
    terminated, truncated = flags[-1]
    assert terminated or (truncated and len(flags) == 60)
    assert (rewards == 1.0).all()  # TakeCover: +1 per tic survived
    assert doom.raw_frame.shape == (120, 160, 3)
    again, again_rewards, again_flags = play(doom, 11, actions)
    np.testing.assert_array_equal(frames, again)
    assert flags == again_flags


def test_raw_frames_are_kept_copies(doom):
    # Videos keep a list of raw frames: a later step must not overwrite an earlier one.
    doom.reset(1)
    first = doom.raw_frame
    snapshot = first.copy()
    for _ in range(20):
        doom.step(np.array([0.9], dtype=np.float32))
    np.testing.assert_array_equal(first, snapshot)
    assert not np.array_equal(first, doom.raw_frame)


def test_doom_death_is_terminated_and_repeats_the_last_frame():
    # Standing still at skill 4, the player dies within a few hundred tics.
    env = make_env(EnvConfig(name="doom", max_steps=2100))
    try:
        frames, _, flags = play(env, 2, np.zeros((2100, 1), dtype=np.float32))
        assert flags[-1] == (True, False) and len(flags) < 2100
        np.testing.assert_array_equal(frames[-1], frames[-2])
        np.testing.assert_array_equal(frames[-1], preprocess_doom(env.raw_frame))
    finally:
        env.close()


def test_doom_hud_is_off(doom):
    # The same game with the HUD switched on draws a status bar at the bottom; ours does not.
    with_hud = make_env(EnvConfig(name="doom", max_steps=60))
    try:
        with_hud.game.close()
        with_hud.game.set_render_hud(True)
        with_hud.game.init()
        with_hud.reset(5)
        doom.reset(5)
        ours, hud = doom.raw_frame, with_hud.raw_frame
        assert ours.shape == hud.shape == (120, 160, 3)

        def red_digits(rows):  # the status bar's health/ammo numbers are bright red
            return ((rows[..., 0] > 150) & (rows[..., 1] < 80) & (rows[..., 2] < 80)).sum()

        assert red_digits(hud[-20:]) > 20
        assert red_digits(ours[-20:]) == 0
    finally:
        with_hud.close()


def test_batch_env_rows_match_single_envs_and_finished_rows_freeze():
    config = EnvConfig(name="doom", max_steps=400)
    batch = BatchEnv(config, 3)
    single = make_env(config)
    try:
        seeds = [1, 2, 3]
        frames = batch.reset(seeds)
        assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
        actions = np.zeros((400, 3, 1), dtype=np.float32)  # no-op: deaths at different times
        history = [frames]
        for step in range(400):
            was_finished = batch.finished.copy()
            frames, rewards, terminated, truncated = batch.step(actions[step])
            assert rewards.dtype == np.float32 and terminated.shape == (3,) and truncated.shape == (3,)
            np.testing.assert_array_equal(batch.finished, terminated | truncated)
            assert (rewards[was_finished] == 0).all() and (rewards[~was_finished] == 1).all()  # frozen rows earn nothing
            assert (terminated[was_finished]).all()  # and keep their flags
            history.append(frames)
            if batch.finished.all():
                break
        history = np.stack(history)
        # Each row equals the same episode played alone.
        for row, seed in enumerate(seeds):
            alone, _, flags = play(single, seed, actions[:, row])
            length = len(flags)
            np.testing.assert_array_equal(history[: length + 1, row], alone)
            # Frozen after its end: the last frame repeated.
            assert (history[length:, row] == alone[-1]).all()
        # reset_one restarts one row only.
        before = batch.step(np.zeros((3, 1), np.float32))[0]
        restarted = batch.reset_one(1, 9)
        assert not batch.finished[1] and batch.finished[0]
        np.testing.assert_array_equal(restarted, single.reset(9))
        after, rewards, _, _ = batch.step(np.zeros((3, 1), np.float32))
        np.testing.assert_array_equal(after[0], before[0])
        assert rewards[1] == 1.0 and rewards[0] == 0.0
        with pytest.raises(ValueError, match="shape"):
            batch.step(np.zeros((2, 1), np.float32))
    finally:
        batch.close()
        single.close()


def test_batch_env_carracing():
    batch = BatchEnv(EnvConfig(name="carracing", max_steps=5), 2)
    try:
        frames = batch.reset([0, 1])
        assert frames.shape == (2, 64, 64, 3)
        assert batch.raw_frame(0).shape == (96, 96, 3)
        for _ in range(5):
            frames, rewards, terminated, truncated = batch.step(np.zeros((2, 3), np.float32))
        assert truncated.all() and not terminated.any()
        frames_after, rewards, _, truncated = batch.step(np.zeros((2, 3), np.float32))
        np.testing.assert_array_equal(frames_after, frames)
        assert (rewards == 0).all() and truncated.all()
    finally:
        batch.close()


def test_batch_env_rows_never_reset_stay_idle():
    # More environments than episodes left: the unused rows are not stepped (gymnasium would refuse).
    batch = BatchEnv(EnvConfig(name="carracing", max_steps=5), 3)
    try:
        assert batch.finished.all()
        batch.reset_one(1, 0)
        frames, rewards, _, truncated = batch.step(np.zeros((3, 3), np.float32))
        np.testing.assert_array_equal(batch.finished, [True, False, True])
        assert rewards[0] == 0 and rewards[2] == 0
        assert (frames[[0, 2]] == 0).all()
    finally:
        batch.close()


def test_doom_games_started_together_in_processes_do_not_race(tmp_path):
    # ViZDoom creates ./_vizdoom at init; several workers starting at once must all come up.
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=context) as pool:
        lengths = list(pool.map(_short_doom_episode, [str(tmp_path)] * 4, range(4)))
    assert lengths == [5, 5, 5, 5]
    assert not (tmp_path / "_vizdoom.ini").exists()  # the ini goes to a private folder


def _short_doom_episode(folder: str, seed: int) -> int:
    os.chdir(folder)
    env = make_env(EnvConfig(name="doom", max_steps=5))
    try:
        env.reset(seed)
        steps = 0
        truncated = terminated = False
        while not (terminated or truncated):
            _, _, terminated, truncated = env.step(np.zeros(1, np.float32))
            steps += 1
        return steps
    finally:
        env.close()
