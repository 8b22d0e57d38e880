"""Rollout files: one compressed .npz per episode, validated on every read.

DIR/rollouts/<NNNNNN>.npz, episode index i zero-padded to 6 digits, holding
  obs    uint8   (T, 64, 64, 3)  the frame seen before action[t]
  action float32 (T, A)          the continuous controller output taken at t
  reward float32 (T,)            reward received for action[t]
  done   bool    (T,)            True where action[t] ended the episode by
                                 termination (death, track finished); an
                                 episode cut by the step cap has no True
"""

import zipfile
import zlib
from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import save_npz
from common.layout import command as stage_command
from env.frames import FRAME_SHAPE

ROLLOUT_FIELDS = {"obs": np.uint8, "action": np.float32, "reward": np.float32, "done": np.bool_}


class RolloutError(ArtifactError):
    """A rollout (or series) file that cannot be used; the message names the file and the fix."""


def episode_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / f"{index:06d}.npz"


def episode_index(path: str | Path) -> int:
    return int(Path(path).stem)


def list_episodes(folder: str | Path) -> list[Path]:
    """Finished episode files in index order (temporary files of a killed writer are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("[0-9]*.npz") if path.stem.isdigit())


def load_npz(path: str | Path, fields: dict[str, type], regenerate_hint: str) -> dict[str, np.ndarray]:
    """Load the named arrays of an .npz, checking keys and dtypes, never unpickling.

    Any problem is a RolloutError naming the file, what is wrong and `regenerate_hint`.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in fields if key not in archive.files]
            if missing:
                raise RolloutError(f"{path}: missing arrays {missing} (has {sorted(archive.files)}); {regenerate_hint}")
            arrays = {key: archive[key] for key in fields}
    except RolloutError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise RolloutError(f"{path}: unreadable ({type(error).__name__}: {error}); {regenerate_hint}") from error
    for key, dtype in fields.items():
        if arrays[key].dtype != np.dtype(dtype):
            raise RolloutError(f"{path}: '{key}' has dtype {arrays[key].dtype}, expected {np.dtype(dtype)}; {regenerate_hint}")
    return arrays


def check_lengths(path: Path, arrays: dict[str, np.ndarray], regenerate_hint: str) -> int:
    lengths = {key: len(value) for key, value in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise RolloutError(f"{path}: arrays have different lengths {lengths}; {regenerate_hint}")
    length = next(iter(lengths.values()))
    if length == 0:
        raise RolloutError(f"{path}: empty episode; {regenerate_hint}")
    return length


def check_finite(path: Path, arrays: dict[str, np.ndarray], keys: tuple[str, ...], regenerate_hint: str) -> None:
    """Refuse NaN or Inf in the named float arrays: one would turn every loss trained on them into NaN."""
    for key in keys:
        bad = ~np.isfinite(arrays[key])
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise RolloutError(f"{path}: '{key}' holds {int(bad.sum())} non-finite values (NaN or Inf), first in row {row}; {regenerate_hint}")


def _rollout_hint(path: Path) -> str:
    return f"delete it and rerun `{stage_command('generate', path.parent.parent)}` to make it again"


def read_rollout(path: str | Path, action_size: int | None = None) -> dict[str, np.ndarray]:
    """Read and validate one rollout file (see the module docstring for the format)."""
    path = Path(path)
    hint = _rollout_hint(path)
    arrays = load_npz(path, ROLLOUT_FIELDS, hint)
    check_lengths(path, arrays, hint)
    if arrays["obs"].ndim != 4 or arrays["obs"].shape[1:] != FRAME_SHAPE:
        raise RolloutError(f"{path}: 'obs' has shape {arrays['obs'].shape}, expected (T, {', '.join(map(str, FRAME_SHAPE))}); {hint}")
    if arrays["action"].ndim != 2 or (action_size is not None and arrays["action"].shape[1] != action_size):
        expected = f"(T, {action_size})" if action_size is not None else "(T, A)"
        raise RolloutError(f"{path}: 'action' has shape {arrays['action'].shape}, expected {expected}; {hint}")
    for key in ("reward", "done"):
        if arrays[key].ndim != 1:
            raise RolloutError(f"{path}: '{key}' has shape {arrays[key].shape}, expected (T,); {hint}")
    check_finite(path, arrays, ("action", "reward"), hint)
    return arrays


def episode_length(path: str | Path) -> int:
    """Steps in one rollout file, reading only its small 'done' array (not the frames).

    A file that cannot be read is a RolloutError naming it and the command that remakes it.
    """
    path = Path(path)
    hint = _rollout_hint(path)
    done = load_npz(path, {"done": np.bool_}, hint)["done"]
    if done.ndim != 1 or len(done) == 0:
        raise RolloutError(f"{path}: 'done' has shape {done.shape}, expected (T,) with T >= 1; {hint}")
    return len(done)


def write_rollout(path: str | Path, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray) -> None:
    """Write one episode atomically, in the dtypes of the format."""
    save_npz(
        path,
        obs=np.asarray(obs, dtype=np.uint8),
        action=np.asarray(action, dtype=np.float32),
        reward=np.asarray(reward, dtype=np.float32),
        done=np.asarray(done, dtype=np.bool_),
    )
