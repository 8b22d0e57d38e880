"""Scoring controllers inside M's dream (paper, section 5): a generation's population x rollouts
episodes as one batch of the batched dream (rnn/dream.py).

Each row is one (candidate, rollout) job with its own controller (W, b) and episode seed.
C's action is traced into the dream's compiled step (LinearDreamPolicy.act), so each step
is one compiled call for every row, acting and stepping. A job's return is the sum of its
rewards until M's done rule (rnn/dream.py, DoneRule) or max_dream_steps ends it; it depends
only on its controller and seed, never on the batch it runs in, so MPI ranks scoring parts of
a generation get the returns of one process, and DreamEnv.reset(seed=s) driven by
`LinearDreamPolicy.episode_action` replays the job with seed s.
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from controller.linear import controller_actions, controller_features, feature_size
from rnn.dream import BatchedDream, DoneRule, DreamObservation, pad_rows


class LinearDreamPolicy:
    """C as the dream's policy: a = tanh(W f + b), f = [z, h] or [z, c, h], each row its own (W, b)."""

    def __init__(self, z_size: int, hidden_size: int, action_size: int, use_cell_state: bool):
        self.use_cell_state = use_cell_state
        self.feature_size = feature_size(z_size, hidden_size, use_cell_state)
        self.action_size = action_size
        self.input_specs = (tf.TensorSpec([None, self.feature_size, action_size], tf.float32), tf.TensorSpec([None, action_size], tf.float32))
        z_spec, state_spec = tf.TensorSpec([None, z_size], tf.float32), tf.TensorSpec([None, hidden_size], tf.float32)
        self._actions = tf.function(self.act, input_signature=[z_spec, state_spec, state_spec, *self.input_specs])

    def act(self, z, h, c, weights, biases):
        """The action (B, A) from M's state before the step (a TensorFlow function, traced into the dream's step)."""
        return controller_actions(controller_features(z, h, c, self.use_cell_state), weights, biases)

    def actions(self, observation: DreamObservation, weights: np.ndarray, biases: np.ndarray | None = None) -> np.ndarray:
        """Actions (n, A) of n observed rows, row i with W weights[i] (F, A) and b biases[i] (A,) or none;
        padded like the batched dream, so each row gets exactly the action it gets there."""
        z = np.asarray(observation.z, np.float32)
        biases = np.zeros((len(z), self.action_size), np.float32) if biases is None else np.asarray(biases, np.float32)
        arrays = (z, observation.h, observation.c, weights, biases)
        return self._actions(*(tf.constant(pad_rows(np.asarray(array, np.float32))) for array in arrays)).numpy()[: len(z)]

    def episode_action(self, observation: dict, weights: np.ndarray, biases: np.ndarray | None = None) -> np.ndarray:
        """The action (A,) for one DreamEnv observation (dict z, h, c) with one controller W (F, A), b (A,) or none."""
        rows = DreamObservation(observation["z"][None], observation["h"][None], observation["c"][None])
        return self.actions(rows, np.asarray(weights)[None], None if biases is None else np.asarray(biases)[None])[0]


class DreamScorer:
    """Episode returns of many controllers inside the dream, all rows in one batch."""

    def __init__(self, model, initial_mu, initial_logvar, temperature: float, max_steps: int, use_cell_state: bool, done_rule: DoneRule | None = None):
        self.policy = LinearDreamPolicy(model.z_size, model.hidden_size, model.action_size, use_cell_state)
        self.dream = BatchedDream(model, initial_mu, initial_logvar, temperature, max_steps, policy=self.policy, done_rule=done_rule)
        self.feature_size = self.policy.feature_size
        self.action_size = self.policy.action_size

    def run(self, weights, biases, seeds, return_lengths: bool = False, on_step: Callable | None = None):
        """Run every row to the end of its episode.

        weights (B, F, A) float32, biases (B, A) float32 or None, seeds (B,) int64 (one per row).
        Returns the episode returns float32 (B,), and the lengths int64 (B,) if return_lengths.
        on_step(step, rows, z_next, action, done): optional hook after every step, with the
        indices of the rows that stepped and their arrays (for videos and probes).
        """
        weights = np.asarray(weights, np.float32)
        seeds = np.asarray(seeds, np.int64)
        num_rows = len(seeds)
        if weights.shape != (num_rows, self.feature_size, self.action_size):
            raise ValueError(f"weights have shape {weights.shape}, expected ({num_rows}, {self.feature_size}, {self.action_size})")
        biases = np.zeros((num_rows, self.action_size), np.float32) if biases is None else np.asarray(biases, np.float32)
        returns = np.zeros(num_rows, np.float64)
        lengths = np.zeros(num_rows, np.int64)
        self.dream.reset(seeds, policy_inputs=(weights, biases))
        while not self.dream.finished:
            transition = self.dream.step()  # C acts, then M steps: one compiled call
            returns[transition.rows] += transition.reward
            lengths[transition.rows] += 1
            if on_step is not None:
                on_step(transition.step, transition.rows.copy(), transition.observation.z, transition.actions, transition.terminated)
        returns = returns.astype(np.float32)
        return (returns, lengths) if return_lengths else returns
