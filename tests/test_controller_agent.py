"""The batched real-env agent gives the actions of step-by-step Keras calls (with the linear and the
mlp controller), and resets M per row; with exploration noise and a per-episode callback (iterative
training's collection) it hands over every episode as played, noisy from the episode's own stream;
its lockstep runner with no observer gives the same returns."""

import numpy as np
import pytest

from controller.agent import ACTION_NOISE_STREAM, NOISE_STREAM, Agent, EpisodeObserver
from controller.policy import ControllerShape, make_controller
from rnn.config import RnnConfig
from rnn.model import build_mdn_rnn
from tests.test_controller_policy import reference_actions
from vae.model import build_encoder

Z_SIZE, HIDDEN_SIZE = 8, 16


class FakeBatchEnv:
    """A BatchEnv stand-in: frames are a pure function of (seed, t), episode length 2 + seed % 5,
    reward t + 1; it keeps every action it receives per seed."""

    def __init__(self, num_envs, action_size):
        self.num_envs = num_envs
        self.action_size = action_size
        self.seed = [None] * num_envs
        self.t = [0] * num_envs
        self.finished = np.zeros(num_envs, bool)
        self.received = {}

    @staticmethod
    def frame(seed, t):
        return np.random.default_rng([seed, t]).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    @staticmethod
    def length(seed):
        return 2 + seed % 5

    def reset_one(self, row, seed):
        self.seed[row], self.t[row], self.finished[row] = seed, 0, False
        self.received[seed] = []
        return self.frame(seed, 0)

    def step(self, actions):
        assert actions.shape == (self.num_envs, self.action_size)
        frames = np.zeros((self.num_envs, 64, 64, 3), np.uint8)
        rewards = np.zeros(self.num_envs, np.float32)
        for row in range(self.num_envs):
            if self.seed[row] is None or self.finished[row]:
                continue
            self.received[self.seed[row]].append(actions[row].copy())
            self.t[row] += 1
            rewards[row] = self.t[row]
            self.finished[row] = self.t[row] >= self.length(self.seed[row])
            frames[row] = self.frame(self.seed[row], self.t[row])
        return frames, rewards, self.finished.copy(), np.zeros(self.num_envs, bool)


def reference_episode(encoder, mdn_rnn, params, shape, seed, sample_z, action_noise=0.0):
    """One episode, one eager Keras call per step (the slow way the agent must agree with), C read from
    its flat parameters with NumPy; the action taken is clip(a + action_noise * N(0, 1), -1, 1), the
    draws from the episode's action stream."""
    noise = np.random.default_rng(np.random.SeedSequence([seed, NOISE_STREAM]))
    exploration = np.random.default_rng(np.random.SeedSequence([seed, ACTION_NOISE_STREAM]))
    h = np.zeros((1, HIDDEN_SIZE), np.float32)
    c = np.zeros((1, HIDDEN_SIZE), np.float32)
    actions = []
    for t in range(FakeBatchEnv.length(seed)):
        frame = FakeBatchEnv.frame(seed, t)[None].astype(np.float32) / 255.0
        mu, logvar = (output.numpy() for output in encoder(frame))
        eps = noise.standard_normal(Z_SIZE, dtype=np.float32) if sample_z else 0.0
        z = mu + np.exp(logvar / 2) * eps
        features = np.concatenate([z, c, h] if shape.use_cell_state else [z, h], axis=1)
        action = reference_actions(shape, features, params[None]).astype(np.float32)
        action = np.clip(action + np.float32(action_noise) * exploration.standard_normal(shape.action_size, dtype=np.float32), -1.0, 1.0)
        inputs = [z, action] + ([np.full((1, 1), float(t == 0))] if mdn_rnn.rnn_config.restart_input else [])
        _, h, c = mdn_rnn.lstm(np.concatenate(inputs, axis=1)[:, None, :].astype(np.float32), initial_state=[h, c])
        h, c = h.numpy(), c.numpy()
        actions.append(action[0])
    return np.array(actions)


def controller_shape(doom: bool, kind: str = "linear") -> ControllerShape:
    action_size = 1 if doom else 3
    return ControllerShape("doom" if doom else "carracing", Z_SIZE, HIDDEN_SIZE, action_size, doom, not doom, kind, 4 if kind == "mlp" else 0)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("doom", [False, True])
def test_batched_agent_matches_step_by_step_keras_and_resets_each_row(doom, kind):
    action_size = 1 if doom else 3
    rnn_config = RnnConfig(hidden_size=HIDDEN_SIZE, num_mixtures=2, restart_input=doom, predict_done=doom)
    encoder = build_encoder(Z_SIZE)
    mdn_rnn = build_mdn_rnn(rnn_config, Z_SIZE, action_size)
    shape = controller_shape(doom, kind)
    agent = Agent(encoder, mdn_rnn, make_controller(shape), sample_z=True)
    rng = np.random.default_rng(3)
    seeds = np.array([10, 21, 32, 43, 54, 65], np.int64)  # lengths 2..6: rows are refilled at different steps
    population = rng.normal(scale=0.5, size=(len(seeds), agent.controller.num_params)).astype(np.float32)
    env = FakeBatchEnv(num_envs=2, action_size=action_size)
    result = agent.run_episodes(env, population, seeds, record=3)
    for job, seed in enumerate(seeds):
        expected = reference_episode(encoder, mdn_rnn, population[job], shape, int(seed), sample_z=True)
        # every episode after the first two ran in a refilled row: equal only if M's state was zeroed
        np.testing.assert_allclose(np.array(env.received[seed]), expected, rtol=1e-4, atol=1e-5)
        length = FakeBatchEnv.length(seed)
        assert result["lengths"][job] == length
        assert result["returns"][job] == length * (length + 1) / 2
    np.testing.assert_allclose(result["actions"], reference_episode(encoder, mdn_rnn, population[3], shape, 43, True), rtol=1e-4, atol=1e-5)
    assert result["frames"].shape == (FakeBatchEnv.length(43), 64, 64, 3)


def test_z_equals_mu_when_not_sampling_and_spare_rows_stay_idle():
    rnn_config = RnnConfig(hidden_size=HIDDEN_SIZE, num_mixtures=2)
    encoder = build_encoder(Z_SIZE)
    mdn_rnn = build_mdn_rnn(rnn_config, Z_SIZE, 3)
    shape = controller_shape(doom=False)
    agent = Agent(encoder, mdn_rnn, make_controller(shape), sample_z=False)
    params = np.random.default_rng(0).normal(size=(1, agent.controller.num_params)).astype(np.float32)
    env = FakeBatchEnv(num_envs=3, action_size=3)  # more rows than episodes: the spare rows stay idle
    result = agent.run_episodes(env, params, np.array([12]))
    assert list(env.received) == [12] and result["lengths"].tolist() == [FakeBatchEnv.length(12)]
    np.testing.assert_allclose(np.array(env.received[12]), reference_episode(encoder, mdn_rnn, params[0], shape, 12, sample_z=False), rtol=1e-4, atol=1e-5)


def small_agent(doom, sample_z=True):
    action_size = 1 if doom else 3
    rnn_config = RnnConfig(hidden_size=HIDDEN_SIZE, num_mixtures=2, restart_input=doom, predict_done=doom)
    return Agent(build_encoder(Z_SIZE), build_mdn_rnn(rnn_config, Z_SIZE, action_size), make_controller(controller_shape(doom)), sample_z=sample_z)


def collect(agent, num_envs, params, seeds, action_noise, record=None):
    """run_episodes with on_episode: (result, {job: episode}, jobs in the order they were handed over, env)."""
    episodes, order = {}, []

    def keep(job, episode):
        order.append(job)
        episodes[job] = episode

    env = FakeBatchEnv(num_envs=num_envs, action_size=agent.shape.action_size)
    result = agent.run_episodes(env, params, seeds, record=record, action_noise=action_noise, on_episode=keep)
    return result, episodes, order, env


@pytest.mark.parametrize("doom", [False, True])
def test_noiseless_collection_hands_over_the_episodes_the_agent_plays(doom):
    """action_noise 0 with on_episode: the same actions (to the bit) as the plain call, and each
    episode's arrays are what the env showed and received: obs the frame before each action, rewards
    summing to the return, done only on the last (terminal) step; the recorded job agrees too."""
    agent = small_agent(doom)
    seeds = np.array([10, 21, 32, 43, 54, 65], np.int64)
    population = np.random.default_rng(4).normal(scale=0.5, size=(len(seeds), agent.controller.num_params)).astype(np.float32)
    plain_env = FakeBatchEnv(num_envs=2, action_size=agent.shape.action_size)
    plain = agent.run_episodes(plain_env, population, seeds, record=3)
    result, episodes, order, env = collect(agent, 2, population, seeds, action_noise=0.0, record=3)
    assert sorted(order) == list(range(len(seeds))) and order != sorted(order)  # handed over as they end, not in job order
    np.testing.assert_array_equal(result["returns"], plain["returns"])
    np.testing.assert_array_equal(result["lengths"], plain["lengths"])
    for job, seed in enumerate(seeds):
        episode, length = episodes[job], FakeBatchEnv.length(seed)
        assert set(episode) == {"obs", "action", "reward", "done"}
        assert [episode[key].dtype for key in ("obs", "action", "reward", "done")] == [np.uint8, np.float32, np.float32, np.bool_]
        np.testing.assert_array_equal(episode["obs"], np.array([FakeBatchEnv.frame(seed, t) for t in range(length)]))
        np.testing.assert_array_equal(episode["action"], np.array(plain_env.received[seed]))
        np.testing.assert_array_equal(episode["action"], np.array(env.received[seed]))
        np.testing.assert_array_equal(episode["reward"], np.arange(1, length + 1, dtype=np.float32))
        assert episode["done"].tolist() == [False] * (length - 1) + [True]
        assert (len(episode["done"]), np.float32(episode["reward"].sum())) == (result["lengths"][job], result["returns"][job])
    for key in ("frames", "z", "actions"):
        np.testing.assert_array_equal(result[key], plain[key])
    np.testing.assert_array_equal(result["frames"], episodes[3]["obs"])
    np.testing.assert_array_equal(result["actions"], episodes[3]["action"])


def test_episodes_without_obs_keep_everything_else_and_the_recording():
    """episode_obs=False: each episode handed over lacks obs only, its other arrays equal the full
    call's, and the recorded job still gets its frames."""
    agent = small_agent(doom=True)
    seeds = np.array([10, 21, 32, 43], np.int64)
    population = np.random.default_rng(5).normal(scale=0.5, size=(len(seeds), agent.controller.num_params)).astype(np.float32)
    full, full_episodes, _, _ = collect(agent, 2, population, seeds, action_noise=None, record=1)
    lean_episodes = {}
    lean = agent.run_episodes(
        FakeBatchEnv(num_envs=2, action_size=1),
        population,
        seeds,
        record=1,
        on_episode=lambda job, episode: lean_episodes.__setitem__(job, episode),
        episode_obs=False,
    )
    for job in range(len(seeds)):
        assert set(lean_episodes[job]) == {"action", "reward", "done"}
        for key in ("action", "reward", "done"):
            np.testing.assert_array_equal(lean_episodes[job][key], full_episodes[job][key])
    for key in ("returns", "lengths", "frames", "z", "actions"):
        np.testing.assert_array_equal(lean[key], full[key])
    assert len(lean["frames"]) == FakeBatchEnv.length(seeds[1])


@pytest.mark.parametrize("doom", [False, True])
def test_noisy_collection_follows_the_episode_seed(doom):
    """action_noise > 0: every episode equals the eager reference taking clip(a + std * N(0, 1), -1, 1)
    from its own action stream (noise fed to M, so the whole episode depends on it); the same seeds give
    the same episodes in another number of rows, and other episodes than without noise."""
    agent = small_agent(doom)
    seeds = np.array([12, 23, 34, 45, 56], np.int64)
    population = np.random.default_rng(5).normal(scale=0.5, size=(len(seeds), agent.controller.num_params)).astype(np.float32)
    _, noisy, _, env = collect(agent, 2, population, seeds, action_noise=0.4)
    _, again, _, _ = collect(agent, 2, population, seeds, action_noise=0.4)
    _, other_rows, _, _ = collect(agent, 3, population, seeds, action_noise=0.4)
    _, noiseless, _, _ = collect(agent, 2, population, seeds, action_noise=0.0)
    for job, seed in enumerate(seeds):
        expected = reference_episode(agent.encoder, agent.mdn_rnn, population[job], agent.shape, int(seed), sample_z=True, action_noise=0.4)
        np.testing.assert_allclose(noisy[job]["action"], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(noisy[job]["action"], np.array(env.received[seed]))
        assert np.abs(noisy[job]["action"]).max() <= 1.0
        for key in ("obs", "action", "reward", "done"):
            np.testing.assert_array_equal(again[job][key], noisy[job][key])
        # another batch size rounds V's and C's float32 sums differently: last-bit differences only
        np.testing.assert_allclose(other_rows[job]["action"], noisy[job]["action"], rtol=0, atol=1e-6)
        assert np.abs(noisy[job]["action"] - noiseless[job]["action"]).max() > 0.01


def test_the_lockstep_runner_tells_an_observer_every_episode_and_step():
    """Agent.play alone gives run_episodes' returns; an observer hears each job start and end once,
    in its row, and one acted and one stepped per step of each job, with the frames the env showed."""

    class Log(EpisodeObserver):
        def __init__(self):
            self.events, self.row_of_job, self.frames = [], {}, {}

        def started(self, row, job):
            self.events.append(("started", job))
            self.row_of_job[job] = row

        def acted(self, rows, jobs, frames, z, actions):
            for row, job, frame in zip(rows, jobs, frames, strict=True):
                assert self.row_of_job[job] == row
                self.frames.setdefault(int(job), []).append(frame.copy())

        def stepped(self, rows, jobs, rewards, terminated):
            self.events.extend(("stepped", int(job)) for job in jobs)

        def ended(self, row, job):
            assert self.row_of_job[job] == row
            self.events.append(("ended", job))

    agent = small_agent(doom=False)
    seeds = np.array([10, 21, 32, 43, 54], np.int64)
    population = np.random.default_rng(6).normal(scale=0.5, size=(len(seeds), agent.controller.num_params)).astype(np.float32)
    log = Log()
    played = agent.play(FakeBatchEnv(num_envs=2, action_size=3), population, seeds, observers=[log])
    plain = agent.run_episodes(FakeBatchEnv(num_envs=2, action_size=3), population, seeds)
    assert set(played) == {"returns", "lengths"}
    np.testing.assert_array_equal(played["returns"], plain["returns"])
    np.testing.assert_array_equal(played["lengths"], plain["lengths"])
    for job, seed in enumerate(seeds):
        length = FakeBatchEnv.length(seed)
        assert log.events.count(("started", job)) == log.events.count(("ended", job)) == 1
        assert log.events.count(("stepped", job)) == length
        assert log.events.index(("started", job)) < log.events.index(("ended", job))
        np.testing.assert_array_equal(np.array(log.frames[job]), np.array([FakeBatchEnv.frame(seed, t) for t in range(length)]))
    with pytest.raises(ValueError, match=r"expected \(5, 75\)"):
        agent.play(FakeBatchEnv(num_envs=2, action_size=3), population[:, :-1], seeds)
