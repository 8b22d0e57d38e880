"""The dream: M used as an environment (paper, section 5, "Learning inside of a dream").

An episode starts from a real first frame: (mu, logvar) of a random row of
the series' initial table, z_0 = mu + sigma * eps; the LSTM state is zero.
Each step feeds (z_t, a_t) (+ restart flag, 1 at the first step) to M and
samples z_{t+1} from its mixture at temperature tau; the reward is +1 per step
(or M's reward head); the episode ends when the done logit > 0 or at max_steps.

Two front ends share the same compiled functions, so they agree exactly:
- `DreamEnv`: one episode at a time, a gymnasium.Env (for viewers and tests);
- `BatchedDream`: B agents at once (population x rollouts), one LSTM call per
  step for all, each row's own linear controller a = tanh(features W_b + b_b)
  applied by a batched product, finished rows compacted out of the batch.

Reproducibility: every random draw of a row is a hash of (its seed, the step
number, the purpose) (rnn/mdn.py), never of its place in the batch. Batches
are padded to a multiple of 16 rows, so every row goes through the same
vectorised kernels whatever the batch size (a 1-row matrix product or the
tail of an elementwise loop could round differently). So a row's return
depends only on its seed and controller: DreamEnv.reset(seed=s) replays the
row with seed s, and a batch split across MPI ranks gives the same returns.
"""

import gymnasium
import numpy as np
import tensorflow as tf

from rnn import mdn

ROW_MULTIPLE = 16


def padded_size(num_rows: int) -> int:
    return max(ROW_MULTIPLE, -(-num_rows // ROW_MULTIPLE) * ROW_MULTIPLE)


def _pad_rows(array: np.ndarray) -> np.ndarray:
    """Repeat the last row up to the padded size (padding rows are computed and dropped)."""
    missing = padded_size(len(array)) - len(array)
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)]) if missing else array


def controller_actions(features, weights, biases):
    """C (paper, section 3.3): a = tanh(features W + b), each row with its own W (F, A) and b (A,).
    The one place actions are computed, in the dream and in the real-env agent alike."""
    return tf.tanh(tf.einsum("bf,bfa->ba", features, weights) + biases)


class DreamCore:
    """M, the start table and tau, as compiled batch functions (batch dimension None)."""

    def __init__(self, model, initial_mu: np.ndarray, initial_logvar: np.ndarray, temperature: float, use_cell_state: bool):
        initial_mu = np.asarray(initial_mu, np.float32)
        if initial_mu.ndim != 2 or initial_mu.shape[1] != model.z_size or len(initial_mu) == 0:
            raise ValueError(f"initial table has shape {initial_mu.shape}, expected (N>0, {model.z_size})")
        self.model = model
        self.z_size = model.z_size
        self.hidden_size = model.hidden_size
        self.action_size = model.action_size
        self.use_cell_state = use_cell_state
        self.feature_size = model.z_size + model.hidden_size * (2 if use_cell_state else 1)
        if not temperature > 0:  # also refuses NaN
            raise ValueError(f"temperature tau={temperature}: expected tau > 0 (logits / tau, sigma * sqrt(tau))")
        self.temperature = float(temperature)
        self.initial_mu = tf.constant(initial_mu)
        self.initial_sigma = tf.constant(np.exp(np.asarray(initial_logvar, np.float32) / 2.0))
        z_spec = tf.TensorSpec([None, self.z_size], tf.float32)
        state_spec = tf.TensorSpec([None, self.hidden_size], tf.float32)
        seeds_spec = tf.TensorSpec([None], tf.int64)
        self.start = tf.function(self._start, input_signature=[seeds_spec])
        self.step = tf.function(
            self._step,
            input_signature=[z_spec, state_spec, state_spec, tf.TensorSpec([None, self.action_size], tf.float32), seeds_spec, tf.TensorSpec([], tf.int32)],
        )
        weights_spec = tf.TensorSpec([None, self.feature_size, self.action_size], tf.float32)
        biases_spec = tf.TensorSpec([None, self.action_size], tf.float32)
        self.controller = tf.function(self._controller, input_signature=[tf.TensorSpec([None, self.feature_size], tf.float32), weights_spec, biases_spec])
        self.act_and_step = tf.function(
            self._act_and_step, input_signature=[z_spec, state_spec, state_spec, weights_spec, biases_spec, seeds_spec, tf.TensorSpec([], tf.int32)]
        )

    def _start(self, seeds):
        """z_0 of each row: a real first frame's (mu, sigma), chosen and sampled by the row's seed."""
        num_frames = tf.shape(self.initial_mu)[0]
        choice = mdn.uniform(mdn.row_keys(seeds, 0, mdn.STREAM_START_INDEX), 1)[:, 0]
        index = tf.minimum(tf.cast(choice * tf.cast(num_frames, tf.float32), tf.int32), num_frames - 1)
        noise = mdn.normal(mdn.row_keys(seeds, 0, mdn.STREAM_START_Z), self.z_size)
        return tf.gather(self.initial_mu, index) + tf.gather(self.initial_sigma, index) * noise

    def _step(self, z, h, c, action, seeds, step):
        """Feed (z_t, a_t) to M; return z_{t+1}, h, c, reward (B,), done (B,) bool."""
        batch_size = tf.shape(z)[0]
        restart = tf.fill([batch_size], tf.cast(tf.equal(step, 0), tf.float32))  # 1 at an episode's first step
        inputs = self.model.make_input(z, action, restart if self.model.rnn_config.restart_input else None)
        output, h, c = self.model.step(inputs, h, c)
        keys = mdn.row_keys(seeds, step, mdn.STREAM_MIXTURE)
        z_next = mdn.sample_from_head(output, self.z_size, self.model.num_mixtures, self.temperature, keys)
        heads = self.model.split(output)  # only the done logit and reward are used: the rest is pruned from the graph
        done = heads["done_logit"] > 0.0 if self.model.predict_done else tf.zeros([batch_size], tf.bool)
        reward = heads["reward"] if self.model.predict_reward else tf.ones([batch_size], tf.float32)
        return z_next, h, c, reward, done

    def _controller(self, features, weights, biases):
        return controller_actions(features, weights, biases)

    def _act_and_step(self, z, h, c, weights, biases, seeds, step):
        """The controller acts on the features before the step, then M steps: one call per step
        for the batched dream. Returns action, z_{t+1}, h, c, reward, done."""
        action = self._controller(self.features(z, h, c), weights, biases)
        return (action, *self._step(z, h, c, action, seeds, step))

    def features(self, z, h, c):
        """The controller's input, taken before (z, a) is fed to M: [z, h] or [z, c, h]."""
        return tf.concat([z, c, h] if self.use_cell_state else [z, h], axis=-1)


def linear_controller(core: DreamCore, features: np.ndarray, weights: np.ndarray, biases: np.ndarray | None = None) -> np.ndarray:
    """The dream's controller for any number of rows (padded like the batched dream): (B, A)."""
    features = np.asarray(features, np.float32)
    weights = np.asarray(weights, np.float32)
    biases = np.zeros((len(features), weights.shape[-1]), np.float32) if biases is None else np.asarray(biases, np.float32)
    return core.controller(_pad_rows(features), _pad_rows(weights), _pad_rows(biases)).numpy()[: len(features)]


class BatchedDream:
    """B dream episodes at once, each row with its own linear controller and seed."""

    def __init__(self, model, initial_mu, initial_logvar, temperature: float, max_steps: int, use_cell_state: bool):
        self.core = DreamCore(model, initial_mu, initial_logvar, temperature, use_cell_state)
        self.max_steps = int(max_steps)
        self.feature_size = self.core.feature_size
        self.action_size = self.core.action_size

    def run(self, weights, biases, seeds, return_lengths: bool = False, on_step=None):
        """Run every row to the end of its episode.

        weights (B, F, A) float32, biases (B, A) float32 or None, seeds (B,) int64 (one per row).
        Returns the episode returns float32 (B,), and the lengths int64 (B,) if return_lengths.
        on_step(step, rows, z_next, action, done): optional hook after every step, with the
        original indices of the rows still running and their arrays (for videos and probes).
        """
        weights = np.asarray(weights, np.float32)
        seeds = np.asarray(seeds, np.int64)
        num_rows = len(seeds)
        if weights.shape != (num_rows, self.feature_size, self.action_size):
            raise ValueError(f"weights have shape {weights.shape}, expected ({num_rows}, {self.feature_size}, {self.action_size})")
        biases = np.zeros((num_rows, self.action_size), np.float32) if biases is None else np.asarray(biases, np.float32)
        returns = np.zeros(num_rows, np.float64)
        lengths = np.zeros(num_rows, np.int64)
        if num_rows == 0:
            return (returns.astype(np.float32), lengths) if return_lengths else returns.astype(np.float32)

        rows = np.arange(num_rows)  # original index of each live row (the first len(rows) of the padded batch)
        padded = _pad_rows(rows)
        batch_weights, batch_biases, batch_seeds = tf.constant(weights[padded]), tf.constant(biases[padded]), tf.constant(seeds[padded])
        z = self.core.start(batch_seeds)
        h = c = tf.zeros([len(padded), self.core.hidden_size], tf.float32)
        for step in range(self.max_steps):
            action, z, h, c, reward, done = self.core.act_and_step(z, h, c, batch_weights, batch_biases, batch_seeds, tf.constant(step, tf.int32))
            live = len(rows)
            done_live = done.numpy()[:live]
            returns[rows] += reward.numpy()[:live]
            lengths[rows] += 1
            if on_step is not None:
                on_step(step, rows.copy(), z.numpy()[:live], action.numpy()[:live], done_live)
            if not done_live.any():
                continue
            # Compaction: keep the rows still running, padded again, so late steps cost only what is alive.
            keep = np.flatnonzero(~done_live)
            if len(keep) == 0:
                break
            rows = rows[keep]
            gather = tf.constant(_pad_rows(keep))
            z, h, c = tf.gather(z, gather), tf.gather(h, gather), tf.gather(c, gather)
            batch_weights, batch_biases, batch_seeds = tf.gather(batch_weights, gather), tf.gather(batch_biases, gather), tf.gather(batch_seeds, gather)
        returns = returns.astype(np.float32)
        return (returns, lengths) if return_lengths else returns


class DreamEnv(gymnasium.Env):
    """One dream episode at a time as a gymnasium environment.

    Observation: the controller's features [z, h] (or [z, c, h] with use_cell_state), taken
    before the step, float32 (F,). Action: float32 (A,) in [-1, 1]. Reward: +1 per step (or
    M's reward head). Terminated when M's done logit > 0; truncated at max_steps.
    reset(seed=s) plays the same episode as row i of BatchedDream.run with seeds[i] = s.
    render() decodes z with V's decoder (when given) to a uint8 (64, 64, 3) frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, model, initial_mu, initial_logvar, temperature: float, max_steps: int, use_cell_state: bool, decoder=None, render_mode=None):
        self.core = DreamCore(model, initial_mu, initial_logvar, temperature, use_cell_state)
        self.max_steps = int(max_steps)
        self.decoder = decoder
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.core.feature_size,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.core.action_size,), np.float32)
        self._seed = None
        self._state = None
        self._step_count = 0

    def _observation(self) -> np.ndarray:
        z, h, c = self._state
        return self.core.features(z, h, c).numpy()[0]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**62))
        seeds = tf.constant(np.full(ROW_MULTIPLE, self._seed, np.int64))
        zeros = tf.zeros([ROW_MULTIPLE, self.core.hidden_size], tf.float32)
        self._state = (self.core.start(seeds), zeros, zeros)
        self._step_count = 0
        return self._observation(), {"seed": self._seed}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, np.float32).reshape(1, self.core.action_size)
        z, h, c = self._state
        seeds = tf.constant(np.full(ROW_MULTIPLE, self._seed, np.int64))
        z, h, c, reward, done = self.core.step(z, h, c, tf.constant(np.repeat(action, ROW_MULTIPLE, axis=0)), seeds, tf.constant(self._step_count, tf.int32))
        self._state = (z, h, c)
        self._step_count += 1
        terminated = bool(done.numpy()[0])
        truncated = not terminated and self._step_count >= self.max_steps
        return self._observation(), float(reward.numpy()[0]), terminated, truncated, {"step": self._step_count}

    @property
    def z(self) -> np.ndarray:
        """The current latent z (Z,)."""
        return self._state[0].numpy()[0]

    def render(self):
        if self.decoder is None or self._state is None:
            return None
        from vae.encode import decode_z, to_uint8

        return to_uint8(decode_z(self.decoder, self.z[None]))[0]
