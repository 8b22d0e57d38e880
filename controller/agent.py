"""The agent in the real environment: V, M and C stepped for a batch of envs (paper, section 3, figure 4).

At each step t, for every running row at once (docs/design.md section 6: never a
Keras call per env step; one compiled tf.function call per lockstep step):

    mu, logvar = V(frame_t)
    z_t = mu + exp(logvar / 2) * eps      (or z_t = mu if controller.sample_z is false)
    a_t = tanh(W [z_t, h_t] + b)          (Doom: [z_t, c_t, h_t], no bias)  -- h_t BEFORE the step
    h_{t+1}, c_{t+1} = M.lstm([z_t, a_t (, restart_t)], h_t, c_t)

restart_t is 1 on an episode's first step (Doom's M takes it as input). Each
row of the batch can carry its own controller (its own W, b), so a worker
scores several candidates' rollouts together. When a row's episode ends,
its LSTM state is zeroed and the row is refilled with the next episode.

Each episode's randomness (the environment's seed, the eps of its z samples and,
in iterative training, the exploration noise on its actions) comes from its own
seed only, never from the row it runs in. The same loop serves evaluation, CMA-ES
in the real environment, videos (one recorded job) and iterative training's
collection (every finished episode handed to a callback in the rollout format).

Speed (docs/design.md section 6; `python -m scripts.benchmark controller`): V's
encoder is ~90% of the step; V's fast path for it lives in vae/encode.py
(`traceable_encoder`). The step is called as a concrete function (no per-call
signature matching), tested equal to the eager Keras models in
tests/test_controller_agent.py.
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from controller.linear import ControllerShape, controller_actions, controller_features
from env.frames import FRAME_SHAPE
from vae.encode import traceable_encoder

# The eps of an episode's z samples come from SeedSequence([seed, NOISE_STREAM]).
NOISE_STREAM = 0x5A
# The exploration noise on its actions (iterative training) from SeedSequence([seed, ACTION_NOISE_STREAM]).
ACTION_NOISE_STREAM = 0xAC


class Agent:
    """V + M + C for a batch of real environments: one compiled call per lockstep step
    (tested equal to eager Keras calls in tests/test_controller_agent.py)."""

    def __init__(self, encoder, mdn_rnn, shape: ControllerShape, sample_z: bool = True):
        if mdn_rnn.hidden_size != shape.hidden_size or mdn_rnn.z_size != shape.z_size or mdn_rnn.action_size != shape.action_size:
            raise ValueError(f"M (z {mdn_rnn.z_size}, h {mdn_rnn.hidden_size}, actions {mdn_rnn.action_size}) does not fit the controller ({shape.describe()})")
        self.encoder = encoder
        self.mdn_rnn = mdn_rnn
        self.shape = shape
        self.sample_z = sample_z
        self.restart_input = bool(mdn_rnn.rnn_config.restart_input)
        self._encode = traceable_encoder(encoder)
        z_size, hidden_size, features, actions = shape.z_size, shape.hidden_size, shape.feature_size, shape.action_size
        signature = [
            tf.TensorSpec([None, *FRAME_SHAPE], tf.uint8),  # frames
            tf.TensorSpec([None, z_size], tf.float32),  # eps
            tf.TensorSpec([None, hidden_size], tf.float32),  # h
            tf.TensorSpec([None, hidden_size], tf.float32),  # c
            tf.TensorSpec([None, features, actions], tf.float32),  # W per row
            tf.TensorSpec([None, actions], tf.float32),  # b per row (zeros without bias)
            tf.TensorSpec([None], tf.float32),  # restart flag
            tf.TensorSpec([None, actions], tf.float32),  # exploration noise on the action (zeros but in iterative training)
        ]
        # A concrete function: calling it skips tf.function's matching of the arguments to a trace.
        self._step = tf.function(self._step_graph, input_signature=signature).get_concrete_function()

    def _step_graph(self, frames, eps, h, c, weights, biases, restart, action_noise):
        mu, logvar = self._encode(frames)
        z = mu + tf.exp(logvar / 2.0) * eps
        actions = controller_actions(controller_features(z, h, c, self.shape.use_cell_state), weights, biases)
        # the action taken (and fed to M) is clip(a + noise, -1, 1): a itself when the noise is zero
        actions = tf.clip_by_value(actions + action_noise, -1.0, 1.0)
        inputs = self.mdn_rnn.make_input(z, actions, restart if self.restart_input else None)
        _, h, c = self.mdn_rnn.step(inputs, h, c)
        return actions, z, h, c

    def step(self, frames, eps, h, c, weights, biases, restart, action_noise=None):
        """One step for a batch: returns NumPy actions (B, A), z (B, Z), h, c (B, H).
        action_noise (B, A) or None: added to C's output before it is clipped to [-1, 1], taken and fed to M."""
        if biases is None:
            biases = np.zeros((len(frames), self.shape.action_size), np.float32)
        if action_noise is None:
            action_noise = np.zeros((len(frames), self.shape.action_size), np.float32)
        outputs = self._step(
            tf.constant(frames, tf.uint8),
            tf.constant(eps, tf.float32),
            tf.constant(h, tf.float32),
            tf.constant(c, tf.float32),
            tf.constant(weights, tf.float32),
            tf.constant(biases, tf.float32),
            tf.constant(restart, tf.float32),
            tf.constant(action_noise, tf.float32),
        )
        return tuple(output.numpy() for output in outputs)

    def run_episodes(
        self,
        batch_env,
        weights: np.ndarray,
        biases: np.ndarray | None,
        seeds: np.ndarray,
        record: int | None = None,
        progress: Callable[[int], None] | None = None,
        action_noise: float | None = None,
        on_episode: Callable[[int, dict], None] | None = None,
        episode_obs: bool = True,
    ) -> dict:
        """Run one episode per job over the rows of `batch_env`, refilling rows as episodes end.
        Rows beyond the number of jobs are never reset, so BatchEnv leaves them idle.

        weights (J, F, A), biases (J, A) or None, seeds (J,) int: job j's controller and seed.
        record: a job whose frames (64x64 and raw), z and actions are kept (for videos).
        progress: optional callable(number of episodes finished) for a progress bar.
        action_noise: std of the exploration noise (iterative training): the action taken and fed to M is
        clip(a + action_noise * N(0, 1), -1, 1), the normal draws from the episode's own stream
        SeedSequence([seed, ACTION_NOISE_STREAM]); None: the action is C's own, and nothing is drawn.
        on_episode: optional callable(job, episode) given each episode as it ends, in the rollout format:
        obs (T, 64, 64, 3) uint8 (the frame before each action), action (T, A) float32 (the action taken),
        reward (T,) float32, done (T,) bool (termination only).
        episode_obs: False leaves obs out of on_episode's episodes, so no frame is copied for them
        (a 2,100-step Doom episode's frames are 26 MB per row; fidelity needs only the actions).
        Returns dict(returns (J,) float32, lengths (J,) int64, and if record is set:
        frames (T,64,64,3) uint8, raw_frames list, z (T,Z), actions (T,A)).
        """
        seeds = np.asarray(seeds, dtype=np.int64)
        num_jobs = len(seeds)
        if weights.shape != (num_jobs, self.shape.feature_size, self.shape.action_size):
            raise ValueError(f"weights have shape {weights.shape}, expected ({num_jobs}, {self.shape.feature_size}, {self.shape.action_size})")
        num_rows = batch_env.num_envs
        if num_jobs == 0:  # e.g. an MPI rank with no share
            return {"returns": np.zeros(0, np.float32), "lengths": np.zeros(0, np.int64)}
        hidden_size, z_size, action_size = self.shape.hidden_size, self.shape.z_size, self.shape.action_size
        returns = np.zeros(num_jobs, np.float64)
        lengths = np.zeros(num_jobs, np.int64)
        job_of_row = np.full(num_rows, -1, np.int64)  # -1: the row is idle
        noise = [None] * num_rows
        action_rng = [None] * num_rows
        # the steps of each row's running episode, kept only for episodes someone asked for
        tracking = on_episode is not None or record is not None
        kept: list[dict | None] = [None] * num_rows
        recorded = {"obs": [], "raw_frames": [], "z": [], "action": []}
        frames = np.zeros((num_rows, *FRAME_SHAPE), np.uint8)
        h = np.zeros((num_rows, hidden_size), np.float32)
        c = np.zeros((num_rows, hidden_size), np.float32)
        restart = np.zeros(num_rows, np.float32)
        next_job = 0
        finished_count = 0

        def start(row: int) -> None:
            nonlocal next_job
            job = next_job
            next_job += 1
            job_of_row[row] = job
            noise[row] = np.random.default_rng(np.random.SeedSequence([int(seeds[job]), NOISE_STREAM]))
            if action_noise is not None:
                action_rng[row] = np.random.default_rng(np.random.SeedSequence([int(seeds[job]), ACTION_NOISE_STREAM]))
            if on_episode is not None or job == record:
                kept[row] = {"obs": [], "raw_frames": [], "z": [], "action": [], "reward": [], "done": []}
            frames[row] = batch_env.reset_one(row, int(seeds[job]))
            h[row] = 0.0  # a new episode starts from M's zero state
            c[row] = 0.0
            restart[row] = 1.0

        for row in range(min(num_rows, num_jobs)):
            start(row)
        while finished_count < num_jobs:
            active = np.flatnonzero(job_of_row >= 0)
            jobs = job_of_row[active]
            eps = np.zeros((len(active), z_size), np.float32)
            if self.sample_z:
                for index, row in enumerate(active):
                    eps[index] = noise[row].standard_normal(z_size, dtype=np.float32)
            exploration = None
            if action_noise is not None:
                exploration = np.zeros((len(active), action_size), np.float32)
                for index, row in enumerate(active):
                    exploration[index] = np.float32(action_noise) * action_rng[row].standard_normal(action_size, dtype=np.float32)
            keeping = [(index, row) for index, row in enumerate(active) if kept[row] is not None] if tracking else []
            for _, row in keeping:
                if episode_obs or job_of_row[row] == record:
                    kept[row]["obs"].append(frames[row].copy())
                if job_of_row[row] == record and hasattr(batch_env, "raw_frame"):
                    kept[row]["raw_frames"].append(np.array(batch_env.raw_frame(row)))
            actions, z, h[active], c[active] = self.step(
                frames[active], eps, h[active], c[active], weights[jobs], biases[jobs] if biases is not None else None, restart[active], exploration
            )
            restart[active] = 0.0
            for index, row in keeping:
                kept[row]["z"].append(z[index])
                kept[row]["action"].append(actions[index])
            all_actions = np.zeros((num_rows, action_size), np.float32)
            all_actions[active] = actions
            new_frames, rewards, terminated, truncated = batch_env.step(all_actions)
            frames[active] = new_frames[active]
            returns[jobs] += rewards[active]
            lengths[jobs] += 1
            for _, row in keeping:
                kept[row]["reward"].append(rewards[row])
                kept[row]["done"].append(terminated[row])
            for row in active[(terminated | truncated)[active]]:
                finished_count += 1
                job = int(job_of_row[row])
                job_of_row[row] = -1
                if kept[row] is not None:
                    steps, kept[row] = kept[row], None
                    if job == record:
                        recorded = steps
                    if on_episode is not None:
                        episode = {
                            "action": np.asarray(steps["action"], np.float32),
                            "reward": np.asarray(steps["reward"], np.float32),
                            "done": np.asarray(steps["done"], np.bool_),
                        }
                        if episode_obs:
                            episode["obs"] = np.asarray(steps["obs"], np.uint8)
                        on_episode(job, episode)
                if progress is not None:
                    progress(1)
                if next_job < num_jobs:
                    start(row)
        result = {"returns": returns.astype(np.float32), "lengths": lengths}
        if record is not None:
            result["frames"] = np.asarray(recorded["obs"], np.uint8)
            result["raw_frames"] = recorded["raw_frames"]
            result["z"] = np.asarray(recorded["z"], np.float32)
            result["actions"] = np.asarray(recorded["action"], np.float32)
        return result
