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

Over a window, `MdnRnn.call` runs the same cell with the state zeroed where the
restart flag is 1 (an episode's first step, also mid-window: docs/design.md
section 5, item 5): (h, c) <- (1 - restart_t) (h, c) before step t. The input
projection x W + b is one matmul for all steps; the recurrence is a loop whose
backward pass is written out (`lstm_recurrence`), so the weight gradient of U
is one matmul over all steps too; `reference_recurrence` is the same loop left
to TensorFlow's automatic differentiation, tested equal.
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

    def call(self, inputs, initial_state=None, restart=None, training=False, recurrence=None):
        """inputs (B, L, input_size) -> head output (B, L, head_size), final h (B, H), final c (B, H).

        initial_state: [h, c] or None (zero state: an episode start). restart (B, L): the
        state is zeroed before every step where it is 1 (None: never within the window).
        recurrence: the loop to use (default `lstm_recurrence`; `reference_recurrence` in tests).
        """
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        batch_size, length = tf.shape(inputs)[0], tf.shape(inputs)[1]
        if initial_state is None:
            h = c = tf.zeros([batch_size, self.hidden_size])
        else:
            h, c = (tf.convert_to_tensor(state, tf.float32) for state in initial_state)
        keep = tf.ones([length, batch_size, 1]) if restart is None else 1.0 - tf.transpose(tf.cast(restart, tf.float32))[..., None]
        # x W + b for every step in one matmul, time-major (L, B, 4H) for the loop
        projected = tf.matmul(tf.transpose(inputs, [1, 0, 2]), self.lstm.cell.kernel) + self.lstm.cell.bias
        recurrent_kernel = tf.convert_to_tensor(self.lstm.cell.recurrent_kernel)  # a tensor argument: its gradient is returned, not a variable's
        hidden, h, c = (recurrence or lstm_recurrence)(projected, keep, h, c, recurrent_kernel)
        return tf.transpose(self.head(hidden), [1, 0, 2]), h, c

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

    def window_losses(self, batch: dict, h, c, training: bool = False):
        """Losses of one batch of windows (see rnn/data.py for the keys) from the state (h, c)
        carried in from the previous window; returns (losses, final h, final c)."""
        head_output, h, c = self(batch["inputs"], initial_state=[h, c], restart=batch.get("restart"), training=training)
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
        return losses, h, c

    def compute_losses(self, batch: dict, training: bool = False) -> dict:
        """Losses of one batch of windows, each starting from a zero state."""
        zeros = tf.zeros([tf.shape(batch["inputs"])[0], self.hidden_size])
        return self.window_losses(batch, zeros, zeros, training)[0]

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
        """One update from a zero state (Keras's interface; benchmarks): the running losses."""
        zeros = tf.zeros([tf.shape(batch["inputs"])[0], self.hidden_size])
        return self.checked_train_step(batch, zeros, zeros)[0]

    def checked_train_step(self, batch, h, c):
        """One update on a batch of windows from the state (h, c) carried in from the previous
        window -> (running losses, finite, h, c) at the window's end (truncated backpropagation:
        no gradient flows into the previous window). The update is applied only if the loss and
        every gradient are finite (common.training.apply_if_finite); gradients are clipped by
        value (the optimizer's clipvalue)."""
        with tf.GradientTape() as tape:
            losses, h, c = self.window_losses(batch, h, c, training=True)
        gradients = tape.gradient(losses["loss"], self.trainable_variables)
        finite = apply_if_finite([losses["loss"]], [(self.optimizer, gradients, self.trainable_variables)])
        return self._update_trackers(losses), finite, h, c

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


def _gates(projected_t, h, recurrent_kernel):
    """Activated gates i, f, g, o of one step (Keras order), each (B, H)."""
    input_gate, forget_gate, candidate, output_gate = tf.split(projected_t + tf.matmul(h, recurrent_kernel), 4, axis=-1)
    return tf.sigmoid(input_gate), tf.sigmoid(forget_gate), tf.tanh(candidate), tf.sigmoid(output_gate)


def reference_recurrence(projected, keep, h, c, recurrent_kernel):
    """The LSTM loop with resets, differentiated by TensorFlow: projected (L, B, 4H) = x W + b,
    keep (L, B, 1) = 1 - restart, h, c (B, H) -> every h (L, B, H), final h, final c."""

    def step(carry, elements):
        h, c = carry[0] * elements[1], carry[1] * elements[1]
        input_gate, forget_gate, candidate, output_gate = _gates(elements[0], h, recurrent_kernel)
        c = forget_gate * c + input_gate * candidate
        return output_gate * tf.tanh(c), c

    hidden, cells = tf.scan(step, (projected, keep), initializer=(h, c))
    return hidden, hidden[-1], cells[-1]


@tf.custom_gradient
def lstm_recurrence(projected, keep, h, c, recurrent_kernel):
    """`reference_recurrence` with its backward pass written out (backpropagation through time):
    per step only dgates U^T is a matmul; dU = sum_t h_{t-1}^T dgates_t is one matmul after the loop."""
    length = tf.shape(projected)[0]
    hidden_size = tf.shape(h)[-1]

    def forward(t, h, c, stores):
        h_previous, c_previous = h * keep[t], c * keep[t]
        input_gate, forget_gate, candidate, output_gate = _gates(projected[t], h_previous, recurrent_kernel)
        c = forget_gate * c_previous + input_gate * candidate
        tanh_c = tf.tanh(c)
        h = output_gate * tanh_c
        values = (h_previous, c_previous, tf.concat([input_gate, forget_gate, candidate, output_gate], -1), tanh_c, h)
        return t + 1, h, c, tuple(store.write(t, value) for store, value in zip(stores, values, strict=True))

    stores = tuple(tf.TensorArray(tf.float32, size=length) for _ in range(5))
    _, h_final, c_final, stores = tf.while_loop(lambda t, *_: t < length, forward, (0, h, c, stores))
    h_previous_all, c_previous_all, gates_all, tanh_c_all, hidden = (store.stack() for store in stores)

    def backward(d_hidden, d_h_final, d_c_final, variables=None):
        def step(t, d_h, d_c, d_gates_store):
            t_back = length - 1 - t
            input_gate, forget_gate, candidate, output_gate = tf.split(gates_all[t_back], 4, axis=-1)
            tanh_c = tanh_c_all[t_back]
            d_h = d_h + d_hidden[t_back]
            d_c = d_c + d_h * output_gate * (1.0 - tf.square(tanh_c))
            d_gates = tf.concat(
                [
                    d_c * candidate * input_gate * (1.0 - input_gate),
                    d_c * c_previous_all[t_back] * forget_gate * (1.0 - forget_gate),
                    d_c * input_gate * (1.0 - tf.square(candidate)),
                    d_h * tanh_c * output_gate * (1.0 - output_gate),
                ],
                -1,
            )
            d_h_previous = tf.matmul(d_gates, recurrent_kernel, transpose_b=True)
            return t + 1, d_h_previous * keep[t_back], d_c * forget_gate * keep[t_back], d_gates_store.write(t_back, d_gates)

        d_gates_store = tf.TensorArray(tf.float32, size=length)
        _, d_h, d_c, d_gates_store = tf.while_loop(lambda t, *_: t < length, step, (0, d_h_final, d_c_final, d_gates_store))
        d_gates_all = d_gates_store.stack()
        flat = lambda values, width: tf.reshape(values, [-1, width])  # noqa: E731
        d_kernel = tf.matmul(flat(h_previous_all, hidden_size), flat(d_gates_all, 4 * hidden_size), transpose_a=True)
        gradients = (d_gates_all, tf.zeros_like(keep), d_h, d_c, d_kernel)
        return (gradients, [d_kernel]) if variables else gradients

    return (hidden, h_final, c_final), backward


def build_mdn_rnn(rnn_config: RnnConfig, z_size: int, action_size: int) -> MdnRnn:
    """M for this config, built (weights created, Glorot/orthogonal initial values)."""
    return MdnRnn(rnn_config, z_size, action_size, name="mdn_rnn")
