"""The agent in the real environment: V, M and C stepped for a batch of envs (paper, section 3, figure 4).

At each step t, for every running row at once (docs/design.md section 6: never a
Keras call per env step; one compiled tf.function call per lockstep step):

    mu, logvar = V(frame_t)
    z_t = mu + exp(logvar / 2) * eps      (or z_t = mu if controller.sample_z is false)
    a_t = C([z_t, h_t])                   (Doom: [z_t, c_t, h_t])  -- h_t BEFORE the step
    h_{t+1}, c_{t+1} = M.lstm([z_t, a_t (, restart_t)], h_t, c_t)

C is controller/policy/ (linear: a = tanh(W f + b)). restart_t is 1 on an episode's first step
(Doom's M takes it as input). Each row of the batch carries its own controller (its own flat
parameter row), so a worker scores several candidates' rollouts together. When a row's
episode ends, its LSTM state is zeroed and the row is refilled with the next episode.

Each episode's randomness (the environment's seed, the eps of its z samples and,
in iterative training, the exploration noise on its actions) comes from its own
seed only, never from the row it runs in. The same lockstep runner (Agent.play) serves
evaluation, CMA-ES in the real environment, videos and iterative training's collection;
what they keep is an observer of it (EpisodeObserver): one recorded job (Recording), every
finished episode handed to a callback in the rollout format (EpisodeCollection).

Speed (docs/design.md section 6; `python -m scripts.benchmark controller`): V's
encoder is ~90% of the step; V's fast path for it lives in vae/encode.py
(`traceable_encoder`). The step is called as a concrete function (no per-call
signature matching), tested equal to the eager Keras models in
tests/test_controller_agent.py.
"""

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from controller.policy import Controller
from env.frames import FRAME_SHAPE
from vae.encode import traceable_encoder

# The eps of an episode's z samples come from SeedSequence([seed, NOISE_STREAM]).
NOISE_STREAM = 0x5A
# The exploration noise on its actions (iterative training) from SeedSequence([seed, ACTION_NOISE_STREAM]).
ACTION_NOISE_STREAM = 0xAC


class Agent:
    """V + M + C for a batch of real environments: one compiled call per lockstep step
    (tested equal to eager Keras calls in tests/test_controller_agent.py)."""

    def __init__(self, encoder, mdn_rnn, controller: Controller, sample_z: bool = True):
        shape = controller.shape
        if mdn_rnn.hidden_size != shape.hidden_size or mdn_rnn.z_size != shape.z_size or mdn_rnn.action_size != shape.action_size:
            raise ValueError(
                f"M (z {mdn_rnn.z_size}, h {mdn_rnn.hidden_size}, actions {mdn_rnn.action_size}) does not fit the controller ({controller.describe()})"
            )
        self.encoder = encoder
        self.mdn_rnn = mdn_rnn
        self.controller = controller
        self.shape = shape
        self.sample_z = sample_z
        self.restart_input = bool(mdn_rnn.rnn_config.restart_input)
        self._encode = traceable_encoder(encoder)
        z_size, hidden_size, actions = shape.z_size, shape.hidden_size, shape.action_size
        signature = [
            tf.TensorSpec([None, *FRAME_SHAPE], tf.uint8),  # frames
            tf.TensorSpec([None, z_size], tf.float32),  # eps
            tf.TensorSpec([None, hidden_size], tf.float32),  # h
            tf.TensorSpec([None, hidden_size], tf.float32),  # c
            tf.TensorSpec([None, controller.num_params], tf.float32),  # each row's controller parameters
            tf.TensorSpec([None], tf.float32),  # restart flag
            tf.TensorSpec([None, actions], tf.float32),  # exploration noise on the action (zeros but in iterative training)
        ]
        # A concrete function: calling it skips tf.function's matching of the arguments to a trace.
        self._step = tf.function(self._step_graph, input_signature=signature).get_concrete_function()

    def _step_graph(self, frames, eps, h, c, params, restart, action_noise):
        mu, logvar = self._encode(frames)
        z = mu + tf.exp(logvar / 2.0) * eps
        actions = self.controller.act(self.controller.features(z, h, c), params)
        # the action taken (and fed to M) is clip(a + noise, -1, 1): a itself when the noise is zero
        actions = tf.clip_by_value(actions + action_noise, -1.0, 1.0)
        inputs = self.mdn_rnn.make_input(z, actions, restart if self.restart_input else None)
        _, h, c = self.mdn_rnn.step(inputs, h, c)
        return actions, z, h, c

    def step(self, frames, eps, h, c, params, restart, action_noise=None):
        """One step for a batch: returns NumPy actions (B, A), z (B, Z), h, c (B, H).
        params (B, N): each row's controller. action_noise (B, A) or None: added to C's output
        before it is clipped to [-1, 1], taken and fed to M."""
        if action_noise is None:
            action_noise = np.zeros((len(frames), self.shape.action_size), np.float32)
        outputs = self._step(
            tf.constant(frames, tf.uint8),
            tf.constant(eps, tf.float32),
            tf.constant(h, tf.float32),
            tf.constant(c, tf.float32),
            tf.constant(params, tf.float32),
            tf.constant(restart, tf.float32),
            tf.constant(action_noise, tf.float32),
        )
        return tuple(output.numpy() for output in outputs)

    def run_episodes(
        self,
        batch_env,
        params: np.ndarray,
        seeds: np.ndarray,
        record: int | None = None,
        progress: Callable[[int], None] | None = None,
        action_noise: float | None = None,
        on_episode: Callable[[int, dict], None] | None = None,
        episode_obs: bool = True,
    ) -> dict:
        """Agent.play with the usual observers. record: a job whose frames (64x64 and raw), z and
        actions are kept (for videos). on_episode(job, episode): given each episode as it ends, in
        the rollout format (EpisodeCollection), without obs if not episode_obs.
        Returns dict(returns (J,) float32, lengths (J,) int64, and if record is set:
        frames (T,64,64,3) uint8, raw_frames list, z (T,Z), actions (T,A))."""
        recording = Recording(record, batch_env) if record is not None else None
        collection = EpisodeCollection(on_episode, episode_obs) if on_episode is not None else None
        result = self.play(batch_env, params, seeds, progress, action_noise, [observer for observer in (recording, collection) if observer is not None])
        if recording is not None:
            result.update(recording.result())
        return result

    def play(
        self,
        batch_env,
        params: np.ndarray,
        seeds: np.ndarray,
        progress: Callable[[int], None] | None = None,
        action_noise: float | None = None,
        observers: Sequence["EpisodeObserver"] = (),
    ) -> dict:
        """Run one episode per job over the rows of `batch_env` in lockstep, refilling rows as episodes
        end. Rows beyond the number of jobs are never reset, so BatchEnv leaves them idle.

        params (J, N), seeds (J,) int: job j's controller and seed.
        progress: optional callable(number of episodes finished) for a progress bar.
        action_noise: std of the exploration noise (iterative training): the action taken and fed to M is
        clip(a + action_noise * N(0, 1), -1, 1), the normal draws from the episode's own stream
        SeedSequence([seed, ACTION_NOISE_STREAM]); None: the action is C's own, and nothing is drawn.
        observers: told of every episode's start, steps and end (EpisodeObserver).
        Returns dict(returns (J,) float32, lengths (J,) int64).
        """
        seeds = np.asarray(seeds, dtype=np.int64)
        num_jobs = len(seeds)
        params = self.controller.check_rows(params, num_jobs)
        if num_jobs == 0:  # e.g. an MPI rank with no share
            return {"returns": np.zeros(0, np.float32), "lengths": np.zeros(0, np.int64)}
        observers = Observers(observers)
        rows = LockstepRows(batch_env, seeds, self.shape, action_noise is not None)
        returns = np.zeros(num_jobs, np.float64)
        lengths = np.zeros(num_jobs, np.int64)
        for row in range(min(batch_env.num_envs, num_jobs)):
            observers.started(row, rows.start(row))
        finished_count = 0
        while finished_count < num_jobs:
            active = np.flatnonzero(rows.job_of_row >= 0)
            jobs = rows.job_of_row[active]
            frames = rows.frames[active]
            eps, exploration = rows.draw(active, self.sample_z, action_noise)
            actions, z, rows.h[active], rows.c[active] = self.step(frames, eps, rows.h[active], rows.c[active], params[jobs], rows.restart[active], exploration)
            rows.restart[active] = 0.0
            observers.acted(active, jobs, frames, z, actions)
            all_actions = np.zeros((batch_env.num_envs, self.shape.action_size), np.float32)
            all_actions[active] = actions
            new_frames, rewards, terminated, truncated = batch_env.step(all_actions)
            rows.frames[active] = new_frames[active]
            returns[jobs] += rewards[active]
            lengths[jobs] += 1
            observers.stepped(active, jobs, rewards[active], terminated[active])
            for row in active[(terminated | truncated)[active]]:
                finished_count += 1
                job = int(rows.job_of_row[row])
                rows.job_of_row[row] = -1
                observers.ended(int(row), job)
                if progress is not None:
                    progress(1)
                if rows.next_job < num_jobs:
                    observers.started(int(row), rows.start(int(row)))
        return {"returns": returns.astype(np.float32), "lengths": lengths}


class EpisodeObserver:
    """What watches Agent.play's episodes; each hook does nothing unless overridden.

    started(row, job): job's episode begins in the row. acted(rows, jobs, frames, z, actions): the
    running rows chose their actions, before the env steps them: frames (n, 64, 64, 3) the frames
    the actions were chosen on, z (n, Z), actions (n, A) the actions taken. stepped(rows, jobs,
    rewards, terminated): what the env gave them, (n,) each. ended(row, job): the episode is over.
    """

    def started(self, row: int, job: int) -> None:
        pass

    def acted(self, rows: np.ndarray, jobs: np.ndarray, frames: np.ndarray, z: np.ndarray, actions: np.ndarray) -> None:
        pass

    def stepped(self, rows: np.ndarray, jobs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray) -> None:
        pass

    def ended(self, row: int, job: int) -> None:
        pass


class Observers(EpisodeObserver):
    """Several observers told of the same events, in their order."""

    def __init__(self, observers: Sequence[EpisodeObserver]):
        self.observers = list(observers)

    def started(self, row, job) -> None:
        for observer in self.observers:
            observer.started(row, job)

    def acted(self, rows, jobs, frames, z, actions) -> None:
        for observer in self.observers:
            observer.acted(rows, jobs, frames, z, actions)

    def stepped(self, rows, jobs, rewards, terminated) -> None:
        for observer in self.observers:
            observer.stepped(rows, jobs, rewards, terminated)

    def ended(self, row, job) -> None:
        for observer in self.observers:
            observer.ended(row, job)


class Recording(EpisodeObserver):
    """One job's episode for a video: its frames (64x64, and at full resolution if the env keeps
    them), z and actions."""

    def __init__(self, job: int, batch_env):
        self.job = job
        self.batch_env = batch_env
        self.row = None
        self.steps = {"frames": [], "raw_frames": [], "z": [], "actions": []}

    def started(self, row: int, job: int) -> None:
        if job == self.job:
            self.row = row

    def acted(self, rows, jobs, frames, z, actions) -> None:
        if self.row is None:
            return
        index = int(np.flatnonzero(rows == self.row)[0])
        self.steps["frames"].append(frames[index].copy())  # a copy: a view would keep the whole batch's frames
        if hasattr(self.batch_env, "raw_frame"):
            self.steps["raw_frames"].append(np.array(self.batch_env.raw_frame(self.row)))
        self.steps["z"].append(z[index])
        self.steps["actions"].append(actions[index])

    def ended(self, row: int, job: int) -> None:
        if job == self.job:
            self.row = None

    def result(self) -> dict:
        """frames (T, 64, 64, 3) uint8, raw_frames list, z (T, Z), actions (T, A)."""
        steps = self.steps
        return {
            "frames": np.asarray(steps["frames"], np.uint8),
            "raw_frames": steps["raw_frames"],
            "z": np.asarray(steps["z"], np.float32),
            "actions": np.asarray(steps["actions"], np.float32),
        }


class EpisodeCollection(EpisodeObserver):
    """Every episode handed to on_episode(job, episode) as it ends, in the rollout format: obs
    (T, 64, 64, 3) uint8 (the frame before each action), action (T, A) float32 (the action taken),
    reward (T,) float32, done (T,) bool (termination only). with_obs False leaves obs out, so no
    frame is copied (a 2,100-step Doom episode's frames are 26 MB per row; fidelity needs only the actions)."""

    def __init__(self, on_episode: Callable[[int, dict], None], with_obs: bool = True):
        self.on_episode = on_episode
        self.with_obs = with_obs
        self.kept: dict[int, dict] = {}  # row -> the steps of its running episode

    def started(self, row: int, job: int) -> None:
        self.kept[row] = {"obs": [], "action": [], "reward": [], "done": []}

    def acted(self, rows, jobs, frames, z, actions) -> None:
        for index, row in enumerate(rows):
            if self.with_obs:
                self.kept[row]["obs"].append(frames[index].copy())
            self.kept[row]["action"].append(actions[index])

    def stepped(self, rows, jobs, rewards, terminated) -> None:
        for index, row in enumerate(rows):
            self.kept[row]["reward"].append(rewards[index])
            self.kept[row]["done"].append(terminated[index])

    def ended(self, row: int, job: int) -> None:
        steps = self.kept.pop(row)
        episode = {
            "action": np.asarray(steps["action"], np.float32),
            "reward": np.asarray(steps["reward"], np.float32),
            "done": np.asarray(steps["done"], np.bool_),
        }
        if self.with_obs:
            episode["obs"] = np.asarray(steps["obs"], np.uint8)
        self.on_episode(job, episode)


class LockstepRows:
    """The state of Agent.play's rows: which job each runs (-1 idle), its frame, M's state, its
    restart flag and the random streams of its episode."""

    def __init__(self, batch_env, seeds: np.ndarray, shape, with_action_noise: bool):
        num_rows = batch_env.num_envs
        self.batch_env = batch_env
        self.seeds = seeds
        self.z_size, self.action_size = shape.z_size, shape.action_size
        self.with_action_noise = with_action_noise
        self.job_of_row = np.full(num_rows, -1, np.int64)
        self.frames = np.zeros((num_rows, *FRAME_SHAPE), np.uint8)
        self.h = np.zeros((num_rows, shape.hidden_size), np.float32)
        self.c = np.zeros((num_rows, shape.hidden_size), np.float32)
        self.restart = np.zeros(num_rows, np.float32)
        self.noise = [None] * num_rows
        self.action_rng = [None] * num_rows
        self.next_job = 0

    def start(self, row: int) -> int:
        """Reset the row's env to the next job's seed, from M's zero state; returns the job."""
        job = self.next_job
        self.next_job += 1
        seed = int(self.seeds[job])
        self.job_of_row[row] = job
        self.noise[row] = np.random.default_rng(np.random.SeedSequence([seed, NOISE_STREAM]))
        if self.with_action_noise:
            self.action_rng[row] = np.random.default_rng(np.random.SeedSequence([seed, ACTION_NOISE_STREAM]))
        self.frames[row] = self.batch_env.reset_one(row, seed)
        self.h[row] = 0.0  # a new episode starts from M's zero state
        self.c[row] = 0.0
        self.restart[row] = 1.0
        return job

    def draw(self, active: np.ndarray, sample_z: bool, action_noise: float | None) -> tuple[np.ndarray, np.ndarray | None]:
        """This step's eps (n, Z) of z's samples (zeros if not sample_z) and exploration noise (n, A)
        (None without action noise), each row from its episode's own streams."""
        eps = np.zeros((len(active), self.z_size), np.float32)
        if sample_z:
            for index, row in enumerate(active):
                eps[index] = self.noise[row].standard_normal(self.z_size, dtype=np.float32)
        if action_noise is None:
            return eps, None
        exploration = np.zeros((len(active), self.action_size), np.float32)
        for index, row in enumerate(active):
            exploration[index] = np.float32(action_noise) * self.action_rng[row].standard_normal(self.action_size, dtype=np.float32)
        return eps, exploration
