"""The dream: M used as an environment (paper, section 5, "Learning inside of a dream").

An episode starts from a real first frame: (mu, logvar) of a row of the series'
initial table chosen by the episode's seed, z_0 = mu + sigma * eps; the LSTM
state is zero. Each step feeds (z_t, a_t) (+ restart flag, 1 at the first step)
to M and samples z_{t+1} from its mixture at temperature tau; the reward is +1
per step (or M's reward head); the episode is terminated by the done rule
(`DoneRule`) and truncated at max_steps. The done rule is
- threshold (the authors'): terminated when the done logit x > 0;
- sampled: terminated when u < sigmoid(scale (x - log w) + offset), u ~ U(0, 1)
  drawn for the row and step, w = rnn.done_weight. The done loss weighs deaths by
  w, so the loss-minimising logit is log(w p / (1 - p)); x - log w removes that,
  and offset and scale are fitted on real deaths (rnn/calibration.py).

Two front ends share the compiled functions of `DreamCore`, so they agree exactly:
- `BatchedDream`: B episodes at once, one LSTM call per step for all, finished
  rows compacted out of the batch. Any actions (B, A) can drive it (a trained
  controller, the random data-collection policy). A policy that is a TensorFlow
  function of (z, h, c) and per-row inputs (C in controller/dream_scoring.py)
  is traced into the step instead: acting and stepping are then one compiled
  call per step.
- `DreamEnv`: one episode, a gymnasium.Env (viewers, tests); a BatchedDream of one row.

Reproducibility: every random draw of a row (its first frame, its mixture samples,
the sampled done rule's u) is a hash of (its seed, the step number, the purpose)
(rnn/counter_random.py), never of its place in the batch.
Batches are padded to a multiple of 16 rows, so every row goes through the same
vectorised kernels whatever the batch size (a 1-row matrix product or the tail
of an elementwise loop could round differently). So a row's trajectory depends
only on its seed and its actions: DreamEnv.reset(seed=s) replays the row with
seed s, and a batch split across MPI ranks gives the same rows.
"""

import dataclasses
from typing import NamedTuple, Protocol

import gymnasium
import numpy as np
import tensorflow as tf

from rnn import counter_random, mdn
from vae.encode import decode_z, to_uint8

ROW_MULTIPLE = 16


def padded_size(num_rows: int) -> int:
    return max(ROW_MULTIPLE, -(-num_rows // ROW_MULTIPLE) * ROW_MULTIPLE)


def pad_rows(array: np.ndarray) -> np.ndarray:
    """Repeat the last row up to the padded size (padding rows are computed and dropped)."""
    missing = padded_size(len(array)) - len(array)
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)]) if missing else array


@dataclasses.dataclass(frozen=True)
class DoneRule:
    """How M's done logit x ends a dream episode (module docstring): 'threshold' (x > 0), or
    'sampled' (death with probability sigmoid(scale (x - log_weight) + offset), drawn per row and step)."""

    kind: str = "threshold"
    log_weight: float = 0.0  # log w, w = rnn.done_weight
    offset: float = 0.0
    scale: float = 1.0

    def __post_init__(self):
        if self.kind not in ("threshold", "sampled"):
            raise ValueError(f"done rule {self.kind!r}: expected 'threshold' or 'sampled'")
        if not all(np.isfinite([self.log_weight, self.offset, self.scale])):
            raise ValueError(f"done rule {self}: log_weight, offset and scale must be finite")

    @property
    def sampled(self) -> bool:
        return self.kind == "sampled"

    def calibrated_logit(self, done_logit):
        """scale (x - log w) + offset: the logit of the death probability the sampled rule draws with."""
        return self.scale * (done_logit - self.log_weight) + self.offset

    def describe(self) -> str:
        if not self.sampled:
            return "threshold (done logit > 0)"
        sign = "-" if self.offset < 0 else "+"
        return f"sampled, p = sigmoid({self.scale:.4g} (done logit - {self.log_weight:.4g}) {sign} {abs(self.offset):.4g})"


class DreamCore:
    """M, the start table and tau, as compiled batch functions (batch dimension None)."""

    def __init__(self, model, initial_mu: np.ndarray, initial_logvar: np.ndarray, temperature: float, done_rule: DoneRule | None = None):
        initial_mu = np.asarray(initial_mu, np.float32)
        if initial_mu.ndim != 2 or initial_mu.shape[1] != model.z_size or len(initial_mu) == 0:
            raise ValueError(f"initial table has shape {initial_mu.shape}, expected (N>0, {model.z_size})")
        if not temperature > 0:  # also refuses NaN
            raise ValueError(f"temperature tau={temperature}: expected tau > 0 (logits / tau, sigma * sqrt(tau))")
        self.model = model
        self.z_size = model.z_size
        self.hidden_size = model.hidden_size
        self.action_size = model.action_size
        self.temperature = float(temperature)
        self.done_rule = done_rule or DoneRule()
        self.initial_mu = tf.constant(initial_mu)
        self.initial_sigma = tf.constant(np.exp(np.asarray(initial_logvar, np.float32) / 2.0))
        self.z_spec = tf.TensorSpec([None, self.z_size], tf.float32)
        self.state_spec = tf.TensorSpec([None, self.hidden_size], tf.float32)
        self.action_spec = tf.TensorSpec([None, self.action_size], tf.float32)
        self.seeds_spec = tf.TensorSpec([None], tf.int64)
        self.step_spec = tf.TensorSpec([], tf.int32)
        self.start = tf.function(self.start_graph, input_signature=[self.seeds_spec])
        self.step = tf.function(
            self.step_graph, input_signature=[self.z_spec, self.state_spec, self.state_spec, self.action_spec, self.seeds_spec, self.step_spec]
        )

    def start_graph(self, seeds):
        """z_0 of each row: a real first frame's (mu, sigma), chosen and sampled by the row's seed."""
        num_frames = tf.shape(self.initial_mu)[0]
        choice = counter_random.uniform(counter_random.row_keys(seeds, 0, counter_random.STREAM_START_INDEX), 1)[:, 0]
        index = tf.minimum(tf.cast(choice * tf.cast(num_frames, tf.float32), tf.int32), num_frames - 1)
        noise = counter_random.normal(counter_random.row_keys(seeds, 0, counter_random.STREAM_START_Z), self.z_size)
        return tf.gather(self.initial_mu, index) + tf.gather(self.initial_sigma, index) * noise

    def step_graph(self, z, h, c, action, seeds, step):
        """Feed (z_t, a_t) to M; return z_{t+1}, h, c, reward (B,), done (B,) bool."""
        batch_size = tf.shape(z)[0]
        restart = tf.fill([batch_size], tf.cast(tf.equal(step, 0), tf.float32))  # 1 at an episode's first step
        inputs = self.model.make_input(z, action, restart if self.model.rnn_config.restart_input else None)
        output, h, c = self.model.step(inputs, h, c)
        keys = counter_random.row_keys(seeds, step, counter_random.STREAM_MIXTURE)
        z_next = mdn.sample_from_head(output, self.z_size, self.model.num_mixtures, self.temperature, keys)
        heads = self.model.split(output)  # only the done logit and reward are used: the rest is pruned from the graph
        done = self.done_graph(heads["done_logit"], seeds, step) if self.model.predict_done else tf.zeros([batch_size], tf.bool)
        reward = heads["reward"] if self.model.predict_reward else tf.ones([batch_size], tf.float32)
        return z_next, h, c, reward, done

    def done_graph(self, done_logit, seeds, step):
        """The done rule on each row's logit (B,): threshold x > 0, or u < p with u the row's own draw."""
        if not self.done_rule.sampled:
            return done_logit > 0.0
        draw = counter_random.uniform(counter_random.row_keys(seeds, step, counter_random.STREAM_DONE), 1)[:, 0]
        return draw < tf.sigmoid(self.done_rule.calibrated_logit(done_logit))


class DreamPolicy(Protocol):
    """A policy traced into the dream's step (one compiled call per step for acting and stepping).

    act(z, h, c, *inputs) -> actions (B, A) float32, a TensorFlow function of the state before
    the step and of per-row inputs (e.g. each row's controller weights), whose TensorSpecs
    (batch dimension None) are input_specs.
    """

    input_specs: tuple

    def act(self, z, h, c, *inputs): ...


class DreamObservation(NamedTuple):
    """What a policy sees of n rows: z (n, Z), M's h and c (n, H), float32."""

    z: np.ndarray
    h: np.ndarray
    c: np.ndarray


@dataclasses.dataclass(frozen=True)
class DreamTransition:
    """One step of the n rows that were running before it."""

    step: int  # t, counted from 0 at reset
    rows: np.ndarray  # (n,) their positions in the seeds given to reset
    reward: np.ndarray  # (n,) float32
    terminated: np.ndarray  # (n,) bool: ended by M's done rule
    truncated: np.ndarray  # (n,) bool: max_steps reached without done
    _padded: tuple  # (actions, z, h, c) tensors of the padded batch, read on demand

    @property
    def actions(self) -> np.ndarray:
        """a_t (n, A)."""
        return self._padded[0].numpy()[: len(self.rows)]

    @property
    def observation(self) -> DreamObservation:
        """z_{t+1}, h_{t+1}, c_{t+1} of the n rows (finished ones included)."""
        return DreamObservation(*(tensor.numpy()[: len(self.rows)] for tensor in self._padded[1:]))


class BatchedDream:
    """B dream episodes at once, each row with its own seed, stepped in lockstep.

    reset(seeds) starts one episode per seed; each step(actions) advances the running rows,
    then drops the finished ones (terminated or truncated), so later steps cost only what is
    alive. rows gives the positions (in seeds) of the running rows, in the order step's
    actions and observation() use.
    """

    def __init__(
        self, model, initial_mu, initial_logvar, temperature: float, max_steps: int, policy: DreamPolicy | None = None, done_rule: DoneRule | None = None
    ):
        self.core = DreamCore(model, initial_mu, initial_logvar, temperature, done_rule)
        self.max_steps = int(max_steps)
        self.z_size, self.hidden_size, self.action_size = self.core.z_size, self.core.hidden_size, self.core.action_size
        self.policy = policy
        self._act_and_step = None
        if policy is not None:
            core = self.core
            signature = [core.z_spec, core.state_spec, core.state_spec, *policy.input_specs, core.seeds_spec, core.step_spec]
            self._act_and_step = tf.function(self._act_and_step_graph, input_signature=signature)
        self.rows = np.zeros(0, np.int64)
        self.step_count = 0
        self._state = None  # padded tensors: z, h, c, seeds, then the policy's inputs
        self._has_policy_inputs = False

    def _act_and_step_graph(self, z, h, c, *inputs_seeds_step):
        """The policy acts on the state before the step, then M steps: action, z_{t+1}, h, c, reward, done."""
        *inputs, seeds, step = inputs_seeds_step
        action = self.policy.act(z, h, c, *inputs)
        return (action, *self.core.step_graph(z, h, c, action, seeds, step))

    @property
    def finished(self) -> bool:
        """True when no row is running (every episode has ended, or before the first reset)."""
        return len(self.rows) == 0

    def reset(self, seeds, policy_inputs: tuple = ()) -> DreamObservation:
        """Start one episode per seed (B,) int64; policy_inputs: the policy's per-row arrays
        (B, ...), which follow their rows through compaction. Returns the first observation."""
        seeds = np.asarray(seeds, np.int64)
        if seeds.ndim != 1:
            raise ValueError(f"seeds have shape {seeds.shape}, expected (B,)")
        num_inputs = len(self.policy.input_specs) if self.policy is not None else 0
        if len(policy_inputs) not in (0, num_inputs):
            raise ValueError(f"{len(policy_inputs)} policy inputs given, the policy takes {num_inputs}")
        for index, array in enumerate(policy_inputs):
            if len(array) != len(seeds):
                raise ValueError(f"policy input {index} has {len(array)} rows, expected one per seed ({len(seeds)})")
        self.rows = np.arange(len(seeds))
        self.step_count = 0
        self._has_policy_inputs = bool(policy_inputs)
        if len(seeds) == 0:
            self._state = None
            return DreamObservation(*(np.zeros((0, size), np.float32) for size in (self.z_size, self.hidden_size, self.hidden_size)))
        padded = pad_rows(self.rows)
        batch_seeds = tf.constant(seeds[padded])
        zeros = tf.zeros([len(padded), self.hidden_size], tf.float32)
        specs = self.policy.input_specs if policy_inputs else ()
        inputs = tuple(tf.constant(np.asarray(array)[padded], spec.dtype) for array, spec in zip(policy_inputs, specs, strict=True))
        self._state = (self.core.start(batch_seeds), zeros, zeros, batch_seeds, *inputs)
        return self.observation()

    def observation(self) -> DreamObservation:
        """z_t, h_t, c_t of the running rows (in the order of rows)."""
        if self.finished:
            raise RuntimeError("no episode is running: call reset()")
        return DreamObservation(*(tensor.numpy()[: len(self.rows)] for tensor in self._state[:3]))

    def step(self, actions=None) -> DreamTransition:
        """Advance every running row by one step, then drop the finished rows.

        actions: (n, A) float32 for the n running rows (in the order of rows), or None for the
        policy given at construction to act (with the policy_inputs given to reset).
        """
        if self.finished:
            raise RuntimeError("no episode is running: call reset()")
        z, h, c, seeds, *inputs = self._state
        step = tf.constant(self.step_count, tf.int32)
        live = len(self.rows)
        if actions is None:
            if self._act_and_step is None or not self._has_policy_inputs:
                raise ValueError("step() without actions needs a policy (BatchedDream(..., policy=)) and its inputs (reset(seeds, policy_inputs))")
            action, z, h, c, reward, done = self._act_and_step(z, h, c, *inputs, seeds, step)
        else:
            actions = np.asarray(actions, np.float32)
            if actions.shape != (live, self.action_size):
                raise ValueError(f"actions have shape {actions.shape}, expected ({live}, {self.action_size}) for the running rows")
            action = tf.constant(pad_rows(actions))
            z, h, c, reward, done = self.core.step(z, h, c, action, seeds, step)
        self.step_count += 1
        terminated = done.numpy()[:live]
        truncated = ~terminated if self.step_count >= self.max_steps else np.zeros(live, bool)
        transition = DreamTransition(self.step_count - 1, self.rows, reward.numpy()[:live], terminated, truncated, (action, z, h, c))
        self._state = (z, h, c, seeds, *inputs)
        running = ~(terminated | truncated)
        if not running.all():
            self._compact(np.flatnonzero(running))
        return transition

    def _compact(self, keep: np.ndarray) -> None:
        """Keep the rows still running, padded again: later steps cost only what is alive."""
        self.rows = self.rows[keep]
        if len(keep) == 0:
            self._state = None
            return
        gather = tf.constant(pad_rows(keep))
        self._state = tuple(tf.gather(tensor, gather) for tensor in self._state)


class DreamEnv(gymnasium.Env):
    """One dream episode at a time as a gymnasium environment.

    Observation: dict z (Z,), h (H,), c (H,) float32, M's state before the step (what a
    controller reads). Action: float32 (A,) in [-1, 1]. Reward: +1 per step (or M's reward
    head). Terminated by M's done rule (DoneRule, default: done logit > 0); truncated at max_steps.
    reset(seed=s) plays the same episode as the row of a BatchedDream reset with seed s, given
    the same actions. render() decodes z with V's decoder (when given) to a uint8 (64, 64, 3) frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self, model, initial_mu, initial_logvar, temperature: float, max_steps: int, decoder=None, render_mode=None, done_rule: DoneRule | None = None
    ):
        self.dream = BatchedDream(model, initial_mu, initial_logvar, temperature, max_steps, done_rule=done_rule)
        self.max_steps = self.dream.max_steps
        self.decoder = decoder
        self.render_mode = render_mode
        z_size, hidden_size = self.dream.z_size, self.dream.hidden_size
        self.observation_space = gymnasium.spaces.Dict(
            {
                "z": gymnasium.spaces.Box(-np.inf, np.inf, (z_size,), np.float32),
                "h": gymnasium.spaces.Box(-1.0, 1.0, (hidden_size,), np.float32),  # h = o * tanh(c)
                "c": gymnasium.spaces.Box(-np.inf, np.inf, (hidden_size,), np.float32),
            }
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self.dream.action_size,), np.float32)
        self._observation = None

    def _set_observation(self, observation: DreamObservation) -> dict:
        self._observation = {"z": observation.z[0], "h": observation.h[0], "c": observation.c[0]}
        return dict(self._observation)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**62))
        return self._set_observation(self.dream.reset(np.array([seed], np.int64))), {"seed": seed}

    def step(self, action):
        if self.dream.finished:
            raise RuntimeError("call reset() before step() (the episode has ended or never started)")
        transition = self.dream.step(np.asarray(action, np.float32).reshape(1, self.dream.action_size))
        observation = self._set_observation(transition.observation)
        terminated, truncated = bool(transition.terminated[0]), bool(transition.truncated[0])
        return observation, float(transition.reward[0]), terminated, truncated, {"step": transition.step + 1}

    @property
    def z(self) -> np.ndarray:
        """The current latent z (Z,)."""
        return self._observation["z"]

    def render(self):
        if self.decoder is None or self._observation is None:
            return None
        return to_uint8(decode_z(self.decoder, self.z[None]))[0]
