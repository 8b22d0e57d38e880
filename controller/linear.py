"""C, the linear controller (paper, section 3.3 and appendix A.3).

CarRacing: a = tanh(W [z, h] + b), W (Z+H, 3), b (3,): (32+256)*3 + 3 = 867 parameters.
Doom:      a = tanh(W [z, c, h]), no bias, c the LSTM cell state: (64+512+512)*1 = 1,088.

CMA-ES searches a flat float vector; this module maps it to (W, b),
stacks a population of flat vectors into the batched (P, F, A) / (P, A) arrays
the dream and the agent consume, and saves / loads a controller with the sizes
it was made for, so a controller for another environment is refused.

Flat layout: W row-major (feature index outer, action index inner), then b.
The action a = tanh(W [z, h] + b) itself is computed inside the compiled steps
of the agent (controller/agent.py) and of the dream (rnn/dream.py).
"""

import dataclasses
from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import save_npz


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
        return self.z_size + self.hidden_size * (2 if self.use_cell_state else 1)

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


# --- the controller file: DIR/controller/best.npz and mean.npz -------------------------------


def save_params(path: str | Path, params: np.ndarray, shape: ControllerShape, **extra) -> None:
    """Save a flat parameter vector with the sizes it was made for (plus scalar extras such as
    generation and fitness), atomically."""
    params = np.asarray(params, dtype=np.float32)
    if params.shape != (shape.num_params,):
        raise ValueError(f"parameters have shape {params.shape}, expected ({shape.num_params},)")
    fields = {key: np.asarray(value) for key, value in dataclasses.asdict(shape).items()}
    save_npz(path, params=params, **fields, **{key: np.asarray(value) for key, value in extra.items()})


def load_params(path: str | Path, expected: ControllerShape, fix_hint: str = "") -> tuple[np.ndarray, dict]:
    """Load a controller file and check it was made for `expected` (env and sizes).

    Returns (params float32 (N,), the other stored fields as Python scalars). Raises
    ArtifactError naming the file and the mismatch.
    """
    path = Path(path)
    hint = f"; {fix_hint}" if fix_hint else ""
    if not path.exists():
        raise ArtifactError(f"{path} is missing{hint}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {key: archive[key] for key in archive.files}
    except Exception as error:  # zip, pickle refusal, truncated file
        raise ArtifactError(f"{path}: unreadable controller file ({type(error).__name__}: {error}){hint}") from error
    missing = [key for key in ("params", *dataclasses.asdict(expected)) if key not in stored]
    if missing:
        raise ArtifactError(f"{path}: not a controller file, missing {missing}{hint}")
    recorded = {key: stored[key].item() for key in dataclasses.asdict(expected)}
    wanted = dataclasses.asdict(expected)
    mismatches = [f"{key}={recorded[key]!r} (expected {wanted[key]!r})" for key in wanted if recorded[key] != wanted[key]]
    if mismatches:
        raise ArtifactError(
            f"{path}: this controller was made for another environment or size: {', '.join(mismatches)}. "
            f"The run's config wants {expected.describe()}. Use the run directory it was trained in, "
            f"or retrain it with `python -m scripts.train_controller --run-dir DIR --force`."
        )
    params = stored["params"]
    if params.dtype != np.float32 or params.shape != (expected.num_params,):
        raise ArtifactError(f"{path}: 'params' has {params.dtype} {params.shape}, expected float32 ({expected.num_params},){hint}")
    extras = {key: value.item() for key, value in stored.items() if key != "params" and key not in wanted and value.ndim == 0}
    return params, extras
