"""Training checkpoints of V and M: weights, optimizer state, progress counters and any
state the training carries between batches, in one file (written by common/training.py).

A model here is any keras.Model with `optimizer_targets()`, its (optimizer, variables) pairs.

One .npz written atomically (common.files.atomic_path): a kill during the write
leaves the previous checkpoint intact, and the weights, the optimizer state
(Adam's step count and moments, the random-number state) and the counters can
never come from different moments.
"""

from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import atomic_path


def _model_variables(model) -> list:
    return list(model.variables)


def _optimizer_variables(model) -> list[list]:
    return [list(optimizer.variables) for optimizer, _ in model.optimizer_targets()]


def save_checkpoint(path: str | Path, model, counters: dict[str, int], state: dict | None = None) -> None:
    """Save every model variable, every optimizer variable, the integer counters and the
    named arrays of `state` (e.g. an LSTM state carried from one batch to the next)."""
    arrays = {f"model/{index}": variable.numpy() for index, variable in enumerate(_model_variables(model))}
    for optimizer_index, variables in enumerate(_optimizer_variables(model)):
        arrays.update({f"optimizer{optimizer_index}/{index}": variable.numpy() for index, variable in enumerate(variables)})
    arrays.update({f"counter/{name}": np.asarray(value, np.int64) for name, value in counters.items()})
    arrays.update({f"state/{name}": np.asarray(value) for name, value in (state or {}).items()})
    # Uncompressed: float weights barely compress and zlib would take seconds per checkpoint.
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)


def load_checkpoint(path: str | Path, model) -> dict[str, int]:
    """Restore a checkpoint into a model built like the one saved (optimizers built); returns the counters."""
    return read_checkpoint(path, model)[0]


def read_checkpoint(path: str | Path, model) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Restore a checkpoint into a model built like the one saved; returns (counters, state arrays)."""
    path = Path(path)
    hint = f"delete {path} (training restarts from scratch) or rerun with --force"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise ArtifactError(f"{path}: unreadable checkpoint ({error}); {hint}") from error
    groups = [("model", _model_variables(model))] + [(f"optimizer{index}", variables) for index, variables in enumerate(_optimizer_variables(model))]
    for prefix, variables in groups:
        stored = sorted((key for key in arrays if key.startswith(prefix + "/")), key=lambda key: int(key.split("/")[1]))
        if len(stored) != len(variables):
            raise ArtifactError(f"{path}: {len(stored)} '{prefix}' arrays, the model has {len(variables)}: it was made for another model; {hint}")
        for key, variable in zip(stored, variables, strict=True):
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise ArtifactError(f"{path}: {variable.path} has shape {arrays[key].shape}, the model needs {tuple(variable.shape)}; {hint}")
    for prefix, variables in groups:
        for index, variable in enumerate(variables):
            variable.assign(arrays[f"{prefix}/{index}"])
    counters = {key.split("/", 1)[1]: int(value) for key, value in arrays.items() if key.startswith("counter/")}
    state = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith("state/")}
    return counters, state
