"""M, the MDN-RNN (paper, section 3.2 and appendix A.2).

An LSTM over x_t = [z_t, a_t] (+ the restart flag, 1 at an episode's first
step, for Doom) and a Dense head giving, for each z dimension, the mixture of
P(z_{t+1} | a_t, z_t, h_t) (see rnn/mdn.py for its layout), plus a done logit
(Doom) and a reward (optional). The LSTM and the head are M's only weights:

  CarRacing: LSTM 4*256*(35+256+1) + head (256+1)*480 = 299,008 + 123,360 = 422,368
  Doom:      LSTM 4*512*(66+512+1) + head (512+1)*961 = 1,185,792 + 492,993 = 1,678,785

`MdnRnn.step` is one LSTM step written out with the layer's own weights (Keras
gate order i, f, c, o), for the dream and the agents: compiled once, called on
whole batches, tested equal to the sequence model.
"""

import keras
import tensorflow as tf

from common.training import apply_if_finite
from rnn import mdn
from rnn.config import RnnConfig


class MdnRnn(keras.Model):
    """The MDN-RNN with its training step (mixture NLL + weighted done BCE + reward MSE)."""

    def __init__(self, rnn_config: RnnConfig, z_size: int, action_size: int, **kwargs):
        super().__init__(**kwargs)
        self.rnn_config = rnn_config
        self.z_size = z_size
        self.action_size = action_size
        self.input_size = z_size + action_size + int(rnn_config.restart_input)
        self.hidden_size = rnn_config.hidden_size
        self.num_mixtures = rnn_config.num_mixtures
        self.predict_done = rnn_config.predict_done
        self.predict_reward = rnn_config.predict_reward
        self.lstm = keras.layers.LSTM(rnn_config.hidden_size, return_sequences=True, return_state=True, name="lstm")
        self.head = keras.layers.Dense(mdn.head_size(z_size, rnn_config.num_mixtures, rnn_config.predict_done, rnn_config.predict_reward), name="head")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.z_loss_tracker = keras.metrics.Mean(name="z_loss")
        self.done_loss_tracker = keras.metrics.Mean(name="done_loss")
        self.reward_loss_tracker = keras.metrics.Mean(name="reward_loss")
        self.lstm.build((None, None, self.input_size))
        self.head.build((None, None, rnn_config.hidden_size))
        self.built = True

    # -- inputs and outputs -------------------------------------------------

    def make_input(self, z, action, restart=None):
        """x = [z, a] (+ restart flag) along the last axis, float32."""
        parts = [tf.cast(z, tf.float32), tf.cast(action, tf.float32)]
        if self.rnn_config.restart_input:
            if restart is None:
                raise ValueError("this M takes the restart flag as input (rnn.restart_input=true); pass restart")
            parts.append(tf.cast(restart, tf.float32)[..., None])
        return tf.concat(parts, axis=-1)

    def split(self, head_output) -> dict:
        return mdn.split_head(head_output, self.z_size, self.num_mixtures, self.predict_done, self.predict_reward)

    def call(self, inputs, initial_state=None, training=False):
        """inputs (B, L, input_size) -> head output (B, L, head_size), final h (B, H), final c (B, H).
        initial_state: [h, c] or None (zero state: an episode start)."""
        sequence, h, c = self.lstm(inputs, initial_state=initial_state, training=training)
        return self.head(sequence), h, c

    def step(self, inputs, h, c):
        """One step for a batch: inputs (B, input_size), state (B, H) -> head output (B, head_size), h, c.

        Keras LSTM: gates = x W + h U + b, split i, f, g, o;
        c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c').
        """
        gates = tf.matmul(inputs, self.lstm.cell.kernel) + tf.matmul(h, self.lstm.cell.recurrent_kernel) + self.lstm.cell.bias
        input_gate, forget_gate, candidate, output_gate = tf.split(gates, 4, axis=-1)
        c = tf.sigmoid(forget_gate) * c + tf.sigmoid(input_gate) * tf.tanh(candidate)
        h = tf.sigmoid(output_gate) * tf.tanh(c)
        return tf.matmul(h, self.head.kernel) + self.head.bias, h, c

    # -- training -------------------------------------------------------------

    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        """Losses of one batch of windows (see rnn/data.py for the keys)."""
        head_output, _, _ = self(batch["inputs"], training=training)
        parts = self.split(head_output)
        losses = {"z_loss": mdn.z_loss(batch["z_target"], parts["logits"], parts["means"], parts["log_sigmas"], batch["z_mask"])}
        total = losses["z_loss"]
        if self.predict_done:
            losses["done_loss"] = mdn.done_loss(parts["done_logit"], batch["done_target"], self.rnn_config.done_weight, batch["step_mask"])
            total = total + losses["done_loss"]
        if self.predict_reward:
            losses["reward_loss"] = mdn.reward_loss(parts["reward"], batch["reward_target"], batch["step_mask"])
            total = total + losses["reward_loss"]
        losses["loss"] = total
        return losses

    def _update_trackers(self, losses: dict) -> dict:
        self.loss_tracker.update_state(losses["loss"])
        self.z_loss_tracker.update_state(losses["z_loss"])
        if "done_loss" in losses:
            self.done_loss_tracker.update_state(losses["done_loss"])
        if "reward_loss" in losses:
            self.reward_loss_tracker.update_state(losses["reward_loss"])
        return {tracker.name: tracker.result() for tracker in self.metrics}

    def optimizer_targets(self) -> list:
        """(optimizer, variables it updates) pairs: what a checkpoint must keep (vae/checkpoint.py)."""
        return [(self.optimizer, self.trainable_variables)]

    def train_step(self, batch):
        return self.checked_train_step(batch)[0]

    def checked_train_step(self, batch):
        """One training step -> (running losses, finite): the update is applied only if the loss
        and every gradient are finite (common.training.apply_if_finite)."""
        with tf.GradientTape() as tape:
            losses = self.compute_losses(batch, training=True)
        gradients = tape.gradient(losses["loss"], self.trainable_variables)
        # clipped by value (optimizer clipvalue)
        finite = apply_if_finite([losses["loss"]], [(self.optimizer, gradients, self.trainable_variables)])
        return self._update_trackers(losses), finite

    def test_step(self, batch):
        return self._update_trackers(self.compute_losses(batch))

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.z_loss_tracker]
        if self.predict_done:
            trackers.append(self.done_loss_tracker)
        if self.predict_reward:
            trackers.append(self.reward_loss_tracker)
        return trackers


def build_mdn_rnn(rnn_config: RnnConfig, z_size: int, action_size: int) -> MdnRnn:
    """M for this config, built (weights created, Glorot/orthogonal initial values)."""
    return MdnRnn(rnn_config, z_size, action_size, name="mdn_rnn")
