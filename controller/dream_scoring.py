"""Scoring controllers inside M's dream (paper, section 5): a generation's population x rollouts
episodes as one batch of the batched dream (rnn/dream.py).

Each row is one (candidate, rollout) job with its own controller (a flat parameter row) and
episode seed. C's action is traced into the dream's compiled step (ControllerDreamPolicy.act),
so each step is one compiled call for every row, acting and stepping. A job's return is the sum
of its rewards until M's done rule (rnn/dream.py, DoneRule) or max_dream_steps ends it; it
depends only on its controller and seed, never on the batch it runs in, so MPI ranks scoring parts of a generation get the returns
of one process, and DreamEnv.reset(seed=s) driven by `ControllerDreamPolicy.episode_action`
replays the job with seed s.
"""

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from controller.policy import Controller, controller_from_config
from rnn.dream import BatchedDream, DoneRule, DreamObservation, pad_rows


class ControllerDreamPolicy:
    """C as the dream's policy: a = C(f), f = [z, h] or [z, c, h], each row with its own parameters (N,)."""

    def __init__(self, controller: Controller):
        self.controller = controller
        self.action_size = controller.action_size
        self.input_specs = (tf.TensorSpec([None, controller.num_params], tf.float32),)
        shape = controller.shape
        z_spec, state_spec = tf.TensorSpec([None, shape.z_size], tf.float32), tf.TensorSpec([None, shape.hidden_size], tf.float32)
        self._actions = tf.function(self.act, input_signature=[z_spec, state_spec, state_spec, *self.input_specs])

    def act(self, z, h, c, params):
        """The action (B, A) from M's state before the step (a TensorFlow function, traced into the dream's step)."""
        return self.controller.act(self.controller.features(z, h, c), params)

    def actions(self, observation: DreamObservation, params: np.ndarray) -> np.ndarray:
        """Actions (n, A) of n observed rows, row i with controller params[i] (N,); padded like the
        batched dream, so each row gets exactly the action it gets there."""
        z = np.asarray(observation.z, np.float32)
        arrays = (z, observation.h, observation.c, self.controller.check_rows(params, len(z)))
        return self._actions(*(tf.constant(pad_rows(np.asarray(array, np.float32))) for array in arrays)).numpy()[: len(z)]

    def episode_action(self, observation: dict, params: np.ndarray) -> np.ndarray:
        """The action (A,) for one DreamEnv observation (dict z, h, c) with one controller's parameters (N,)."""
        rows = DreamObservation(observation["z"][None], observation["h"][None], observation["c"][None])
        return self.actions(rows, np.asarray(params)[None])[0]


class DreamScorer:
    """Episode returns of many controllers inside the dream, all rows in one batch."""

    def __init__(self, model, initial_mu, initial_logvar, temperature: float, max_steps: int, controller: Controller, done_rule: DoneRule | None = None):
        self.controller = controller
        self.policy = ControllerDreamPolicy(controller)
        self.dream = BatchedDream(model, initial_mu, initial_logvar, temperature, max_steps, policy=self.policy, done_rule=done_rule)
        self.action_size = self.policy.action_size

    @classmethod
    def from_config(cls, config, model, initial_mu, initial_logvar, done_rule: DoneRule | None = None) -> "DreamScorer":
        """The dream training scores in: tau controller.temperature, episodes capped at
        controller.max_dream_steps, the run's controller (kind and sizes), and the done rule
        (rnn.calibration.done_rule reads controller.done_rule and the run's calibration; None: threshold)."""
        settings = config.controller
        return cls(model, initial_mu, initial_logvar, settings.temperature, settings.max_dream_steps, controller_from_config(config), done_rule=done_rule)

    def run(self, params, seeds, return_lengths: bool = False, on_step: Callable | None = None):
        """Run every row to the end of its episode.

        params (B, N) float32 (each row's controller), seeds (B,) int64 (one per row).
        Returns the episode returns float32 (B,), and the lengths int64 (B,) if return_lengths.
        on_step(step, rows, z_next, action, done): optional hook after every step, with the
        indices of the rows that stepped and their arrays (for videos and probes).
        """
        seeds = np.asarray(seeds, np.int64)
        num_rows = len(seeds)
        params = self.controller.check_rows(params, num_rows)
        returns = np.zeros(num_rows, np.float64)
        lengths = np.zeros(num_rows, np.int64)
        self.dream.reset(seeds, policy_inputs=(params,))
        while not self.dream.finished:
            transition = self.dream.step()  # C acts, then M steps: one compiled call
            returns[transition.rows] += transition.reward
            lengths[transition.rows] += 1
            if on_step is not None:
                on_step(transition.step, transition.rows.copy(), transition.observation.z, transition.actions, transition.terminated)
        returns = returns.astype(np.float32)
        return (returns, lengths) if return_lengths else returns
