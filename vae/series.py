"""Series files: each rollout encoded by V, the input of M.

DIR/series/<NNNNNN>.npz (same index as the rollout) holding
  mu      float32 (T, Z)  encoder mean of obs[t]
  logvar  float32 (T, Z)  encoder log-variance of obs[t]
  action  float32 (T, A)  as in the rollout
  reward  float32 (T,)    as in the rollout
  done    bool    (T,)    as in the rollout
DIR/series/initial_z.npz: mu, logvar float32 (N, Z), the first frame of every
  episode, where dream episodes start (paper, section 5).
"""

from pathlib import Path

import numpy as np

from common.files import save_npz
from common.layout import INITIAL_Z_NAME
from common.layout import command as stage_command
from env.rollouts import RolloutError, check_finite, check_lengths, list_episodes, load_npz

SERIES_FIELDS = {"mu": np.float32, "logvar": np.float32, "action": np.float32, "reward": np.float32, "done": np.bool_}


def _series_hint(path: Path) -> str:
    return f"delete it and rerun `{stage_command('extract', path.parent.parent)}` to make it again"


def read_series(path: str | Path, z_size: int | None = None, action_size: int | None = None) -> dict[str, np.ndarray]:
    """Read and validate one series file."""
    path = Path(path)
    hint = _series_hint(path)
    arrays = load_npz(path, SERIES_FIELDS, hint)
    check_lengths(path, arrays, hint)
    for key, width in (("mu", z_size), ("logvar", z_size), ("action", action_size)):
        shape = arrays[key].shape
        if len(shape) != 2 or (width is not None and shape[1] != width):
            raise RolloutError(f"{path}: '{key}' has shape {shape}, expected (T, {width if width is not None else 'N'}); {hint}")
    for key in ("reward", "done"):
        if arrays[key].ndim != 1:
            raise RolloutError(f"{path}: '{key}' has shape {arrays[key].shape}, expected (T,); {hint}")
    check_finite(path, arrays, ("mu", "logvar", "action", "reward"), hint)
    return arrays


def write_series(path: str | Path, mu, logvar, action, reward, done) -> None:
    save_npz(
        path,
        mu=np.asarray(mu, np.float32),
        logvar=np.asarray(logvar, np.float32),
        action=np.asarray(action, np.float32),
        reward=np.asarray(reward, np.float32),
        done=np.asarray(done, np.bool_),
    )


def list_series(folder: str | Path) -> list[Path]:
    """Episode series files in index order (initial_z.npz is not one)."""
    return list_episodes(folder)


def read_initial_z(folder: str | Path, z_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first-frame (mu, logvar) table, each (N, Z) float32."""
    path = Path(folder) / INITIAL_Z_NAME
    if not path.exists():
        raise RolloutError(f"{path} is missing; run `{stage_command('extract', Path(folder).parent)}` to make it")
    arrays = load_npz(path, {"mu": np.float32, "logvar": np.float32}, _series_hint(path))
    for key in ("mu", "logvar"):
        shape = arrays[key].shape
        if len(shape) != 2 or len(arrays[key]) == 0 or (z_size is not None and shape[1] != z_size):
            raise RolloutError(f"{path}: '{key}' has shape {shape}, expected (N>0, {z_size if z_size else 'Z'}); {_series_hint(path)}")
    check_finite(path, arrays, ("mu", "logvar"), _series_hint(path))
    return arrays["mu"], arrays["logvar"]


def write_initial_z(folder: str | Path, mu: np.ndarray, logvar: np.ndarray) -> None:
    save_npz(Path(folder) / INITIAL_Z_NAME, mu=np.asarray(mu, np.float32), logvar=np.asarray(logvar, np.float32))
