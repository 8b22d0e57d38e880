"""The controller's files and the trained pieces the agent is made of, from a run directory.

DIR/controller/best.npz (the best candidate ever scored), mean.npz (the CMA-ES
distribution mean) and selected.npz (the mean that scored best on the validation episodes,
controller.eval_set=validation) hold a flat parameter vector (its layout: the kind's file in
controller/policy/) with the kind and sizes it was made for, so a controller of another
environment, kind or size is refused with an ArtifactError naming the file, not a shape
error deep in TensorFlow. Files written before controllers had kinds record none: they
are linear.
"""

from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import save_npz
from common.layout import BEST_NAME, MEAN_NAME, SELECTED_NAME, RunLayout
from common.layout import command as stage_command
from controller.agent import Agent
from controller.policy import COMMON_FIELDS, Controller, controller_from_config
from rnn.store import load_mdn_rnn
from vae.store import load_part

PARAMS_NAMES = {"best": BEST_NAME, "mean": MEAN_NAME, "selected": SELECTED_NAME}
KIND_BEFORE_KINDS = "linear"  # the kind of a file that records none


def save_params(path: str | Path, params: np.ndarray, controller: Controller, **extra) -> None:
    """Save a flat parameter vector with the kind and sizes it was made for (plus scalar extras such
    as generation and fitness), atomically."""
    params = np.asarray(params, dtype=np.float32)
    if params.shape != (controller.num_params,):
        raise ValueError(f"parameters have shape {params.shape}, expected ({controller.num_params},)")
    fields = {key: np.asarray(value) for key, value in controller.file_fields().items()}
    save_npz(path, params=params, **fields, **{key: np.asarray(value) for key, value in extra.items()})


def load_params(path: str | Path, expected: Controller, fix_hint: str = "") -> tuple[np.ndarray, dict]:
    """Load a controller file and check it was made for `expected` (env, kind and sizes).

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
    wanted = expected.file_fields()
    recorded = {key: stored[key].item() for key in wanted if key in stored}
    recorded.setdefault("kind", KIND_BEFORE_KINDS)
    # the kind's own sizes are needed only from a file of that kind (another kind is the mismatch to report)
    required = ("params", *COMMON_FIELDS, *(expected.own_fields if recorded["kind"] == wanted["kind"] else ()))
    missing = [key for key in required if key not in stored]
    if missing:
        raise ArtifactError(f"{path}: not a controller file, missing {missing}{hint}")
    mismatches = [f"{key}={recorded[key]!r} (expected {wanted[key]!r})" for key in wanted if key in recorded and recorded[key] != wanted[key]]
    if mismatches:
        raise ArtifactError(
            f"{path}: this controller was made for another environment, kind or size: {', '.join(mismatches)}. "
            f"The run's config wants {expected.describe()}. Use the run directory it was trained in, "
            f"or retrain it with `{stage_command('train_controller', 'DIR', '--force')}`."
        )
    params = stored["params"]
    if params.dtype != np.float32 or params.shape != (expected.num_params,):
        raise ArtifactError(f"{path}: 'params' has {params.dtype} {params.shape}, expected float32 ({expected.num_params},){hint}")
    extras = {key: value.item() for key, value in stored.items() if key != "params" and key not in wanted and value.ndim == 0}
    return params, extras


def params_path(run_dir: str | Path, which: str) -> Path:
    """DIR/controller/best.npz, mean.npz or selected.npz (which 'best', 'mean' or 'selected')."""
    if which not in PARAMS_NAMES:
        raise ValueError(f"controller file {which!r}: expected one of {sorted(PARAMS_NAMES)}")
    return RunLayout(run_dir).controller_params(PARAMS_NAMES[which])


def load_controller(config, run_dir: str | Path, which: str) -> tuple[np.ndarray, dict, Path]:
    """The run's saved 'best', 'mean' or 'selected' parameters (N,), their extras (generation, ...)
    and their path; ArtifactError if missing or made for another env, kind or size."""
    path = params_path(run_dir, which)
    hint = f"run `{RunLayout(run_dir).command('train_controller')}` first"
    if which == "selected":
        hint = f"it is kept by a run trained with controller.eval_set=validation and controller.eval_every > 0; use --params mean or best, or {hint}"
    params, extras = load_params(path, controller_from_config(config), fix_hint=hint)
    return params, extras, path


def load_agent(config, run_dir: str | Path) -> Agent:
    """V's encoder, M and C as the batched real-environment agent, from the run directory."""
    run = RunLayout(run_dir)
    encoder = load_part(run.vae, "encoder", config.vae)
    model = load_mdn_rnn(run.rnn, config)
    return Agent(encoder, model, controller_from_config(config), sample_z=config.controller.sample_z)
