"""C, the linear controller (paper, section 3.3 and appendix A.3).

CarRacing: a = tanh(W [z, h] + b), W (Z+H, 3), b (3,): (32+256)*3 + 3 = 867 parameters.
Doom:      a = tanh(W [z, c, h]), no bias, c the LSTM cell state: (64+512+512)*1 = 1,088.

CMA-ES searches a flat float vector; this module maps it to (W, b) and
stacks a population of flat vectors into the batched (P, F, A) / (P, A) arrays
the dream and the agent consume. It also holds C itself in TensorFlow, the one
definition of its input and of its action, traced into the compiled steps of
the agent (controller/agent.py) and of the dream (controller/dream_scoring.py).
Saving and loading a controller file: controller/store.py.

Flat layout: W row-major (feature index outer, action index inner), then b.
"""

import dataclasses

import numpy as np
import tensorflow as tf


def feature_size(z_size: int, hidden_size: int, use_cell_state: bool) -> int:
    """F: size of the controller input [z, h] or [z, c, h]."""
    return z_size + hidden_size * (2 if use_cell_state else 1)


def controller_features(z, h, c, use_cell_state: bool):
    """C's input, taken before (z, a) is fed to M: [z, h], or [z, c, h] (Doom, c the LSTM cell state)."""
    return tf.concat([z, c, h] if use_cell_state else [z, h], axis=-1)


def controller_actions(features, weights, biases):
    """C (paper, section 3.3): a = tanh(features W + b), each row with its own W (F, A) and b (A,)."""
    return tf.tanh(tf.einsum("bf,bfa->ba", features, weights) + biases)


@dataclasses.dataclass(frozen=True)
class ControllerShape:
    """Sizes that fix the controller's parameter vector."""

    env_name: str
    z_size: int
    hidden_size: int
    action_size: int
    use_cell_state: bool
    use_bias: bool

    @classmethod
    def from_config(cls, config) -> "ControllerShape":
        """From the resolved Config (env, vae, rnn and controller sections)."""
        return cls(
            env_name=config.env.name,
            z_size=config.vae.z_size,
            hidden_size=config.rnn.hidden_size,
            action_size=config.env.action_size,
            use_cell_state=config.controller.use_cell_state,
            use_bias=config.controller.use_bias,
        )

    @property
    def feature_size(self) -> int:
        """F: size of the controller input [z, h] or [z, c, h]."""
        return feature_size(self.z_size, self.hidden_size, self.use_cell_state)

    @property
    def num_params(self) -> int:
        return self.feature_size * self.action_size + (self.action_size if self.use_bias else 0)

    def describe(self) -> str:
        inputs = "[z, c, h]" if self.use_cell_state else "[z, h]"
        bias = " + b" if self.use_bias else ""
        return f"{self.env_name}: a = tanh(W {inputs}{bias}), z {self.z_size}, h {self.hidden_size}, actions {self.action_size}, {self.num_params} parameters"


def unflatten(params: np.ndarray, shape: ControllerShape) -> tuple[np.ndarray, np.ndarray | None]:
    """Flat vector (N,) -> W (F, A) float32 and b (A,) float32 or None."""
    params = np.asarray(params, dtype=np.float32)
    if params.shape != (shape.num_params,):
        raise ValueError(f"controller parameters have shape {params.shape}, expected ({shape.num_params},) for {shape.describe()}")
    weight_count = shape.feature_size * shape.action_size
    weights = params[:weight_count].reshape(shape.feature_size, shape.action_size)
    biases = params[weight_count:].copy() if shape.use_bias else None
    return weights.copy(), biases


def stack(population: np.ndarray, shape: ControllerShape) -> tuple[np.ndarray, np.ndarray | None]:
    """P flat vectors (P, N) -> weights (P, F, A) float32 and biases (P, A) float32 or None."""
    population = np.asarray(population, dtype=np.float32)
    if population.ndim != 2 or population.shape[1] != shape.num_params:
        raise ValueError(f"population has shape {population.shape}, expected (P, {shape.num_params}) for {shape.describe()}")
    weight_count = shape.feature_size * shape.action_size
    weights = population[:, :weight_count].reshape(len(population), shape.feature_size, shape.action_size)
    biases = population[:, weight_count:] if shape.use_bias else None
    return np.ascontiguousarray(weights), (np.ascontiguousarray(biases) if biases is not None else None)
