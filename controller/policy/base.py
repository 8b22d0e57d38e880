"""What every kind of controller shares: its sizes, its input and the flat parameter rows it acts with.

A controller of any kind is a flat float32 vector of num_params values (what CMA-ES searches).
Its `act(features, params)` is a TensorFlow function over a batch: features (B, F) and params
(B, N), row b acting with its own controller params[b]. The reshape of a row into the kind's
matrices happens inside `act`, so it is traced into the compiled steps of the agent
(controller/agent.py) and of the dream (controller/dream_scoring.py), and no caller ever
handles a kind's matrices. The kinds: controller/policy/__init__.py.

TensorFlow is imported inside the functions that build graphs, so that the config
(scripts/config.py) can check controller.kind against the registry without loading it.
"""

import dataclasses
import math

import numpy as np

# The sizes every controller file records (controller/store.py), whatever the kind.
COMMON_FIELDS = ("env_name", "z_size", "hidden_size", "action_size", "use_cell_state", "use_bias")


def feature_size(z_size: int, hidden_size: int, use_cell_state: bool) -> int:
    """F: size of the controller input [z, h] or [z, c, h]."""
    return z_size + hidden_size * (2 if use_cell_state else 1)


def controller_features(z, h, c, use_cell_state: bool):
    """C's input, taken before (z, a) is fed to M: [z, h], or [z, c, h] (Doom, c the LSTM cell state)."""
    import tensorflow as tf

    return tf.concat([z, c, h] if use_cell_state else [z, h], axis=-1)


@dataclasses.dataclass(frozen=True)
class ControllerShape:
    """Sizes that fix the controller's parameter vector. hidden_size is M's (h); controller_hidden_size
    the width of C's own hidden layer, for the kinds that have one."""

    env_name: str
    z_size: int
    hidden_size: int
    action_size: int
    use_cell_state: bool
    use_bias: bool
    kind: str = "linear"
    controller_hidden_size: int = 0

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
            kind=config.controller.kind,
            controller_hidden_size=config.controller.hidden_size,
        )

    @property
    def feature_size(self) -> int:
        """F: size of the controller input [z, h] or [z, c, h]."""
        return feature_size(self.z_size, self.hidden_size, self.use_cell_state)


class Controller:
    """C of one kind for one shape. A kind defines `kind`, `own_fields`, `blocks()`, `formula()`
    and `act_on_blocks()`; everything else follows from them."""

    kind = ""
    own_fields: tuple[str, ...] = ()  # shape fields beyond COMMON_FIELDS that fix its parameters

    def __init__(self, shape: ControllerShape):
        if shape.kind != self.kind:
            raise ValueError(f"a {type(self).__name__} is kind {self.kind!r}, the shape says {shape.kind!r}")
        self.shape = shape
        self.feature_size = shape.feature_size
        self.action_size = shape.action_size

    def blocks(self) -> list[tuple[int, ...]]:
        """The shapes of the parameter blocks, in their order in the flat vector (each row-major)."""
        raise NotImplementedError

    def formula(self) -> str:
        """The action as an equation of the input (for logs and errors)."""
        raise NotImplementedError

    def act_on_blocks(self, features, blocks: list):
        """The actions (B, A) from features (B, F) and the blocks, each (B, *block shape)."""
        raise NotImplementedError

    @property
    def num_params(self) -> int:
        return sum(math.prod(block) for block in self.blocks())

    def describe(self) -> str:
        shape = self.shape
        return (
            f"{shape.env_name}: {self.kind} controller a = {self.formula()}, z {shape.z_size}, h {shape.hidden_size}, "
            f"actions {shape.action_size}, {self.num_params} parameters"
        )

    def file_fields(self) -> dict:
        """What a controller file records of the sizes (controller/store.py): a file recording others is refused."""
        names = (*COMMON_FIELDS, "kind", *self.own_fields)
        return {name: getattr(self.shape, name) for name in names}

    def inputs(self) -> str:
        return "[z, c, h]" if self.shape.use_cell_state else "[z, h]"

    def features(self, z, h, c):
        """C's input [z, h] or [z, c, h] of a batch (a TensorFlow function)."""
        return controller_features(z, h, c, self.shape.use_cell_state)

    def act(self, features, params):
        """C's actions (B, A) float32 for features (B, F) and flat parameter rows params (B, N), row b
        with its own controller params[b] (a TensorFlow function, traced into the agent's and the dream's step)."""
        import tensorflow as tf

        parts, start = [], 0
        for block in self.blocks():
            size = math.prod(block)
            parts.append(tf.reshape(params[:, start : start + size], [-1, *block]))
            start += size
        return self.act_on_blocks(features, parts)

    def check_rows(self, params: np.ndarray, count: int) -> np.ndarray:
        """params as float32 (count, N), or a ValueError naming the shape expected."""
        params = np.asarray(params, np.float32)
        if params.shape != (count, self.num_params):
            raise ValueError(f"controller parameters have shape {params.shape}, expected ({count}, {self.num_params}) for {self.describe()}")
        return params
