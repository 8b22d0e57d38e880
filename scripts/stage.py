"""The run directory contract shared by every stage's entry point.

`python -m scripts.<stage> --run-dir DIR [--preset NAME] [--set section.key=value ...] [--force]`

- The first stage run in DIR writes the resolved DIR/config.json (preset +
  overrides + library versions); later stages read it and need no --preset.
  Only the process that writes the stage's outputs writes it (MPI rank 0; the
  other ranks only read and check), and only after the stage's inputs passed.
- A stage that finishes writes DIR/<its folder>/done.json with the config
  sections it read. A later --preset/--set that changes a locked field of such
  a section is refused: the stage's outputs were made with the old value.
  A resumable stage also writes DIR/<its folder>/started.json when it starts
  making outputs, so an interrupted stage is held to its values the same way
  (its partial outputs are not mixed with ones made under another config).
- One writer per folder: a stage holds an OS lock (flock) on DIR/.locks/<its folder>.lock
  while it runs; a second process of it on the same run stops at once, naming
  the first (pid, host, start time). The OS releases the lock when the process
  ends, however it ends, so a kill -9 leaves no stale lock.
- Refuse before touching: a stage checks every input it will read (upstream
  done.json, weights, series, tables, its own checkpoints) before it deletes,
  clears or writes anything (--force cleaning and done.json included).
- SIGTERM, SIGINT or SIGHUP stops a stage with status 128 + signal and the line
  "stopped by SIG...: rerun the same command to resume".
"""

import argparse
import ctypes
import dataclasses
import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.disk import is_disk_full
from common.errors import StageError, UserError
from common.files import read_json, write_json
from common.layout import DONE_NAME, DREAM_VIDEO_NAME, FOLDERS, INITIAL_Z_NAME, REAL_VIDEO_NAME, RECONSTRUCTIONS_NAME, STARTED_NAME, RunLayout, with_launcher
from common.layout import command as layout_command
from common.stopping import install_stop_handlers, signal_of, stopped_message
from scripts import config as config_module

LOCKS_FOLDER = ".locks"  # DIR/.locks/<folder>.lock: apart from every stage's outputs
# run.sh sets it to how it was started ("./run.sh python"): what a printed command starts python with
LAUNCHER_VARIABLE = "WORLD_MODELS_LAUNCHER"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, as every entry point and the pipeline see it."""

    name: str
    folder: str  # DIR/<folder> holds its outputs (and its lock)
    inputs: tuple[str, ...] = ()  # upstream stages that must have finished
    optional_inputs: tuple[str, ...] = ()  # upstream stages whose outputs it reads if they exist
    real_mode_inputs: tuple[str, ...] = ()  # also required when controller.mode=real
    dream_mode_inputs: tuple[str, ...] = ()  # also required when controller.mode=dream
    # (upstream stage, file): the one file of that stage this stage reads; it stands in for the stage's
    # done.json, so a run sharing an exported agent's folders (which ship that file alone) can run it
    # (never the exported agent itself)
    reads_only: tuple[tuple[str, str], ...] = ()
    sections: tuple[str, ...] = ()  # config sections whose locked fields its outputs depend on
    # "Finished": DIR/<folder>/done.json, or (stages without one) every file it exists to make.
    finished_files: tuple[str, ...] = ()
    in_pipeline: bool = True  # False: run only by its own command, never by scripts.pipeline

    @property
    def has_done(self) -> bool:
        return not self.finished_files

    def required(self, config: config_module.Config | None = None) -> tuple[str, ...]:
        if config is None:
            return self.inputs
        return self.inputs + (self.real_mode_inputs if config.controller.mode == "real" else self.dream_mode_inputs)


# In pipeline order (docs/design.md section 1).
STAGES: dict[str, Stage] = {
    spec.name: spec
    for spec in (
        Stage("generate", FOLDERS["generate"], sections=("env", "generate")),
        Stage("train_vae", FOLDERS["train_vae"], inputs=("generate",), sections=("vae",)),
        Stage("check_vae", FOLDERS["train_vae"], inputs=("train_vae",), finished_files=(f"{FOLDERS['train_vae']}/{RECONSTRUCTIONS_NAME}",)),
        Stage("extract", FOLDERS["extract"], inputs=("generate", "train_vae"), sections=("vae",)),
        Stage("train_rnn", FOLDERS["train_rnn"], inputs=("extract",), sections=("rnn",)),
        # in real mode C never reads series/ (an exported agent's V and M are enough: experiments/carracing_from_agent.sh)
        Stage(
            "train_controller",
            FOLDERS["train_controller"],
            inputs=("train_rnn",),
            real_mode_inputs=("train_vae",),
            dream_mode_inputs=("extract",),
            reads_only=(("extract", f"{FOLDERS['extract']}/{INITIAL_Z_NAME}"),),  # the dream's first frames
            sections=("controller",),
        ),
        Stage("evaluate", FOLDERS["evaluate"], inputs=("train_vae", "train_rnn"), optional_inputs=("train_controller",)),
        # The random data-collection policy on evaluate's seeds (python -m scripts.evaluate --params random): needs only config.json.
        Stage("evaluate_random", FOLDERS["evaluate_random"], in_pipeline=False),
        Stage(
            "dream",
            FOLDERS["dream"],
            inputs=("train_rnn",),
            optional_inputs=("train_vae", "extract", "train_controller"),
            finished_files=tuple(f"{FOLDERS['dream']}/{name}" for name in (DREAM_VIDEO_NAME, REAL_VIDEO_NAME)),
        ),
        # Rounds of iterative training (paper, section 6), each in DIR/iterate/round_NNN/: asked for with --rounds, not a pipeline step.
        Stage("iterate", FOLDERS["iterate"], inputs=("train_vae", "extract", "train_rnn", "train_controller"), sections=("iterate",), in_pipeline=False),
        # Steps of an iterate round only (their done.json in the round folder): the mean on the validation
        # seeds, and the round's fidelity report (scripts.fidelity itself keeps no done.json).
        Stage("evaluate_validation", FOLDERS["evaluate_validation"], in_pipeline=False),
        Stage("round_fidelity", FOLDERS["fidelity"], in_pipeline=False),
    )
}
PIPELINE_STAGES = tuple(name for name, spec in STAGES.items() if spec.in_pipeline)


def seed_set_stage(stage: str, first_seed: int) -> str:
    """The stage that scores `stage`'s episodes on a further seed set (evaluate --seed): the same
    stage with a folder of its own, DIR/<folder>_seed<first_seed>/, so its lock, done.json and
    results stand beside the run's own evaluation and never replace it. Registered on first use."""
    spec = STAGES[stage]
    name = f"{stage}_seed{first_seed}"
    if name not in STAGES:
        STAGES[name] = dataclasses.replace(spec, name=name, folder=f"{spec.folder}_seed{first_seed}", in_pipeline=False)
    return name


def leaves() -> tuple[str, ...]:
    """Pipeline stages whose outputs no other pipeline stage reads."""
    specs = [STAGES[name] for name in PIPELINE_STAGES]
    read = {upstream for spec in specs for upstream in (*spec.inputs, *spec.optional_inputs, *spec.real_mode_inputs, *spec.dream_mode_inputs)}
    return tuple(name for name in PIPELINE_STAGES if name not in read)


def command_for(stage: str, run_dir: Path) -> str:
    return layout_command(stage, run_dir)


def launcher() -> str:
    """What the commands a message names start python with: run.sh's own command when the process was
    started through run.sh (LAUNCHER_VARIABLE), else python."""
    return os.environ.get(LAUNCHER_VARIABLE) or "python"


def for_the_user(text: str) -> str:
    """A message with its `python -m scripts.` commands as the user can run them (launcher())."""
    return with_launcher(text, launcher())


EXPORTED_MARKER = "EXPORTED.json"  # scripts.export_agent writes it into every exported agent


def is_exported_agent(run_dir: Path) -> bool:
    """Whether DIR is an exported agent (e.g. pretrained/doom): V, M and C without their training data."""
    return (Path(run_dir) / EXPORTED_MARKER).is_file()


def exported_agent_note(run_dir: Path) -> str:
    return f"{run_dir} is an exported agent ({Path(run_dir) / EXPORTED_MARKER}): V, M and C without the rollouts, series and checkpoints they were trained from"


def exported_agent_advice(run_dir: Path, assignments: tuple[str, ...] = ()) -> str:
    """What to do instead of making training data in an exported agent: it is meant to stay small
    (a committed pretrained/<env>/ is ~25 MB; the data is gigabytes), so never there."""
    new_run = Path("runs") / f"{Path(run_dir).resolve().name}-train"
    options = "".join(f" --set {shlex.quote(assignment)}" for assignment in assignments)
    return (
        "Training there would write gigabytes of data into it: re-score or watch the agent there (scripts.evaluate, scripts.dream, "
        f"scripts.check_vae, scripts.fidelity); to train with its config, start a new run from its config.json: "
        f"`mkdir -p {new_run} && cp {Path(run_dir) / 'config.json'} {new_run}/ && python -m scripts.pipeline --run-dir {new_run}{options}`."
    )


def _versions() -> dict:
    import importlib.metadata

    versions = {"python": sys.version.split()[0]}
    for package in ("tensorflow", "keras", "tensorflow-probability", "gymnasium", "vizdoom", "cma", "numpy", "mpi4py"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def done_path(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / STAGES[stage].folder / DONE_NAME


def started_path(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / STAGES[stage].folder / STARTED_NAME


def is_finished(run_dir: Path, stage: str) -> bool:
    """Whether a stage's outputs are complete: its done.json, or every file it exists to make."""
    spec = STAGES[stage]
    if spec.has_done:
        return done_path(run_dir, stage).exists()
    return all((Path(run_dir) / path).exists() for path in spec.finished_files)


def locked_values(config: config_module.Config, sections: tuple[str, ...]) -> dict:
    """The locked fields of the given sections, as stored in done.json."""
    values = {}
    for section in sections:
        section_object = getattr(config, section)
        for field in dataclasses.fields(section_object):
            if field.metadata.get("locked", True):
                values[f"{section}.{field.name}"] = getattr(section_object, field.name)
    return values


def check_locks(run_dir: Path, config: config_module.Config, skip_stage: str | None = None) -> None:
    """Refuse a config that contradicts what a finished stage was made with."""
    for stage, spec in STAGES.items():
        if stage == skip_stage or not spec.sections:
            continue
        finished = done_path(run_dir, stage).exists()
        marker = done_path(run_dir, stage) if finished else started_path(run_dir, stage)
        if not marker.exists():
            continue
        recorded = read_json(marker).get("locked", {})
        current = locked_values(config, spec.sections)
        for key, old_value in recorded.items():
            if key in current and current[key] != old_value:
                what = "was made" if finished else "has partial outputs made"
                if is_exported_agent(run_dir):
                    raise StageError(
                        f"{key}={current[key]!r} contradicts {marker}: the agent's '{stage}' was made with {key}={old_value!r}. "
                        f"{exported_agent_note(run_dir)}. {exported_agent_advice(run_dir, (f'{key}={current[key]}',))}"
                    )
                raise StageError(
                    f"{key}={current[key]!r} contradicts {marker}: the {'finished' if finished else 'unfinished'} stage '{stage}' {what} with "
                    f"{key}={old_value!r}. Use a new --run-dir, or rerun `{command_for(stage, run_dir)} --force` "
                    f"with the new value (and the stages after it)."
                )


def build_config(run_dir: Path, preset: str | None, assignments: list[str]) -> config_module.Config:
    """The config a stage would run with: DIR/config.json (or --preset for a new run), then --set.
    Read-only: nothing is checked against finished stages and nothing is written. An error names
    where the bad value came from: a --set, or config.json."""
    config_path = RunLayout(run_dir).config
    try:
        overrides = config_module.parse_overrides(assignments)
    except ValueError as error:
        raise StageError(f"{error}. Correct or drop that --set (--help lists every config field).") from None
    sections = None
    if config_path.exists():
        stored = read_json(config_path)
        # A --preset other than the stored one rebuilds everything from that preset; the locks decide if that is allowed.
        if preset is None or preset == stored.get("preset"):
            preset = stored.get("preset")
            sections, notes = config_module.drop_retired({name: stored[name] for name in config_module.SECTIONS if name in stored})
            for note in notes:
                print(f"note: {config_path}: {note}", file=sys.stderr)
            try:
                config_module.build(preset, sections)
            except (ValueError, TypeError) as error:
                raise StageError(f"{config_path}: {error}. Correct that entry of the file, or start a new run (a new --run-dir).") from None
    elif preset is None:
        raise StageError(
            f"{config_path} does not exist: start the run with a preset, e.g. "
            f"`python -m scripts.generate --run-dir {run_dir} --preset doom-smoke` "
            f"(presets: {', '.join(config_module.PRESETS)})"
        )
    try:
        return config_module.build(preset, sections, overrides)
    except (ValueError, TypeError) as error:
        source = " ".join(f"--set {assignment}" for assignment in assignments) or f"--preset {preset}"
        raise StageError(f"{source}: {error}") from None


def stored_config_dict(stored: dict) -> dict:
    """The config a stored config.json means today: retired fields dropped, fields added since then at
    their defaults. A file written before a field was added or retired is left as it is (a committed
    agent's config.json stays byte-identical to its export record)."""
    sections, _ = config_module.drop_retired({name: stored[name] for name in config_module.SECTIONS if name in stored})
    return config_module.build(stored.get("preset"), sections, {}).to_dict()


def save_config(run_dir: Path, config: config_module.Config) -> None:
    """Write DIR/config.json (with the library versions) unless it already holds this config.

    The versions are those the run was started with: a later stage run with other versions
    (e.g. re-scoring a committed agent on another machine) leaves the file as it is."""
    record = config.to_dict()
    path = RunLayout(run_dir).config
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if "versions" in stored and stored_config_dict(stored) == record:
                return
        except (OSError, json.JSONDecodeError, ValueError, TypeError):
            pass  # rewritten below
    record["versions"] = _versions()
    write_json(path, record)


def resolve_config(run_dir: Path, preset: str | None, assignments: list[str], force_stage: str | None = None) -> config_module.Config:
    """build_config, then refuse what contradicts a finished (or started) stage, then save config.json."""
    config = build_config(run_dir, preset, assignments)
    check_locks(run_dir, config, skip_stage=force_stage)
    save_config(run_dir, config)
    return config


def require_done(run_dir: Path, stage: str) -> dict:
    """The done.json of a finished upstream stage, or an error saying how to make it."""
    marker = done_path(run_dir, stage)
    if not marker.exists():
        if is_exported_agent(run_dir):
            raise StageError(f"{marker} is missing: {exported_agent_note(run_dir)}. {exported_agent_advice(run_dir)}")
        raise StageError(f"{marker} is missing: stage '{stage}' has not finished in {run_dir}. Run `{command_for(stage, run_dir)}` first.")
    return read_json(marker)


def unfinished_upstream(run_dir: Path, stages: tuple[str, ...], config: config_module.Config) -> list[str]:
    """The unfinished stages among `stages` and those they need in turn, in pipeline order: the
    first is where the run has to go on. (A finished stage's own inputs were there when it ran.)"""
    missing: set[str] = set()
    pending = list(stages)
    while pending:
        name = pending.pop()
        if name not in missing and not done_path(run_dir, name).exists():
            missing.add(name)
            pending.extend(STAGES[name].required(config))
    return [name for name in STAGES if name in missing]


def stood_in_for(run_dir: Path, stage: str) -> set[str]:
    """The upstream stages whose one read file (the stage's reads_only) is in run_dir, so their
    done.json is not needed: a run sharing an exported agent's folders. Never in the exported agent
    itself, where training would overwrite what was exported."""
    spec = STAGES.get(stage)
    if spec is None or is_exported_agent(run_dir):
        return set()
    return {upstream for upstream, path in spec.reads_only if (run_dir / path).exists()}


def require_upstream(invocation: "Invocation", stages: tuple[str, ...]) -> None:
    """Every stage in `stages` has finished, or a StageError naming the first unfinished stage the
    run needs and the command that starts there (with this invocation's --preset and --set, which a
    new run needs). Reads only."""
    run_dir, arguments = invocation.run_dir, invocation.arguments
    stages = tuple(name for name in stages if name not in stood_in_for(run_dir, invocation.stage))
    missing = unfinished_upstream(run_dir, stages, invocation.config)
    if not missing:
        return
    markers = [str(done_path(run_dir, name)) for name in stages if name in missing]
    if is_exported_agent(run_dir):
        raise StageError(
            f"{', '.join(markers)} {'is' if len(markers) == 1 else 'are'} missing: '{invocation.stage}' needs {', '.join(missing)}, "
            f"which an exported agent does not hold. {exported_agent_note(run_dir)}. {exported_agent_advice(run_dir)}"
        )
    options = ([f"--preset {arguments.preset}"] if getattr(arguments, "preset", None) else []) + [
        f"--set {shlex.quote(assignment)}" for assignment in getattr(arguments, "assignments", [])
    ]
    command = " ".join([command_for(missing[0], run_dir), *options])
    if len(missing) == 1:
        raise StageError(f"{markers[0]} is missing: stage '{missing[0]}' has not finished in {run_dir}. Run `{command}` first.")
    raise StageError(
        f"{', '.join(markers)} {'is' if len(markers) == 1 else 'are'} missing: '{invocation.stage}' needs {', '.join(missing)}, none of which "
        f"has finished in {run_dir}. Start at the first, {missing[0]}: `{command}`, then run {', '.join(missing[1:])} in that order."
    )


def mark_started(run_dir: Path, stage: str, config: config_module.Config) -> None:
    """Record the locked values the stage's outputs are being made with (after any --force clean).

    Written once: if it exists, check_locks has already found the config equal to it.
    """
    marker = started_path(run_dir, stage)
    if not marker.exists():
        write_json(marker, {"stage": stage, "locked": locked_values(config, STAGES[stage].sections)})


def mark_done(run_dir: Path, stage: str, config: config_module.Config, summary: dict | None = None) -> None:
    write_json(
        done_path(run_dir, stage),
        {"stage": stage, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "locked": locked_values(config, STAGES[stage].sections), "summary": summary or {}},
    )


def clear_done(run_dir: Path, stage: str) -> None:
    marker = done_path(run_dir, stage)
    if marker.exists():
        marker.unlink()


def force_clean(run_dir: Path, stage: str, keep: tuple[str, ...] = ()) -> None:
    """--force: remove the stage's outputs (its folder's entries except names in `keep`; for a
    stage without done.json, only the files it exists to make) so it starts over."""
    spec = STAGES[stage]
    if not spec.has_done:
        for path in spec.finished_files:
            (Path(run_dir) / path).unlink(missing_ok=True)
        return
    folder = Path(run_dir) / spec.folder
    if not folder.exists():
        return
    for entry in folder.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_checkpoint(path: Path, stage: str, run_dir: Path, force_command: str | None = None) -> None:
    """A resume checkpoint (.npz) is readable through to its last array, holds its counters, and
    no array is empty (shapes are checked against the model when training loads it).
    force_command: what starts the stage over, if not `stage`'s command with --force."""
    import zipfile
    import zlib

    import numpy as np

    if not path.exists():
        return
    fix = f"delete it (the stage restarts from scratch) or rerun `{force_command or command_for(stage, run_dir) + ' --force'}`"
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            for name in names:
                archive[name]  # reads and CRC-checks every member
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise StageError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error}); {fix}") from None
    if not any(name.startswith("counter/") for name in names):
        raise StageError(f"{path}: not a training checkpoint (no counters among {names[:5]}...); {fix}")


def remove_temporaries(folder: Path) -> None:
    """Temporary files of a writer killed mid-write (common.files.atomic_path names them
    .<name>.*.tmp*). Safe only while holding the folder's lock: no other writer is mid-write."""
    if folder.is_dir():
        for path in folder.rglob(".*.tmp*"):
            if path.is_file():
                path.unlink(missing_ok=True)


# --- one writer per folder ----------------------------------------------------------------------

_held_locks: dict[Path, int] = {}  # lock file -> open descriptor holding its flock, in this process


def lock_path(run_dir: Path, stage: str) -> Path:
    """One lock per output folder: check_vae and train_vae (both write DIR/vae) exclude each other."""
    return Path(run_dir) / LOCKS_FOLDER / f"{STAGES[stage].folder}.lock"


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "another process (it has not written its details yet)"
    pid, host = holder.get("pid"), holder.get("host")
    here = host == socket.gethostname()
    how = f"wait for it (`tail --pid={pid} -f /dev/null`) or stop it (`kill {pid}`" + ("" if here else f" on {host}") + "; it resumes when rerun)"
    return (
        f"'{holder.get('stage')}' (pid {pid} on host {host}, started {holder.get('started')}: `{holder.get('command')}`). "
        f"One process at a time writes a stage's files: {how}, then rerun this command"
    )


def acquire_lock(path: Path, what: str, guarded: Path | None = None) -> None:
    """Hold an exclusive flock on `path` until release_locks() or the end of the process; the
    holder writes its pid, host, start time and command into the file. Re-entrant: a lock this
    process holds already is kept. A lock held by another process: StageError naming it and
    `guarded`, the folder the lock stands for."""
    path = Path(path).absolute()
    if path in _held_locks:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by child processes (PEP 446)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StageError(f"{guarded or path} is in use by {_holder_text(path)}.") from None
    holder = {
        "stage": what,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else what,
    }
    data = (json.dumps(holder, sort_keys=True) + "\n").encode()
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, data, 0)
    _held_locks[path] = descriptor


def release_locks(keep: tuple[Path, ...] = ()) -> None:
    """Release every lock this process holds except those in `keep` (the file stays; it is
    only a name to lock)."""
    kept = {Path(path).absolute() for path in keep}
    for path in list(_held_locks):
        if path not in kept:
            os.close(_held_locks.pop(path))  # closing the descriptor releases the flock


def quiet_cuda_without_driver() -> None:
    """TensorFlow's CUDA build probes CUDA (cuInit) when it first lists devices, also where no
    NVIDIA driver is installed, and logs the failure as an error line (`E... failed call to
    cuInit ... CUDA error`) on every CPU-only run. Without the driver's libcuda.so.1 no GPU can be
    used anyway, so TensorFlow is asked for CPU devices only (TF_ENABLED_DEVICE_TYPES=CPU) and
    never probes CUDA; its info lines about the device types it leaves out are hidden too
    (TF_CPP_MIN_LOG_LEVEL=1: warnings and errors still show). Where the driver loads (a GPU
    machine, the GPU image run with its GPUs) nothing changes, and values set by the user are
    kept. Before TensorFlow starts."""
    if "TF_ENABLED_DEVICE_TYPES" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libcuda.so.1")  # what TensorFlow loads for CUDA; only the NVIDIA driver installs it
    except OSError:
        os.environ["TF_ENABLED_DEVICE_TYPES"] = "CPU"
        default_tensorflow_log_level(1)


_log_level_set_here: str | None = None  # the TF_CPP_MIN_LOG_LEVEL this process set (a user's value is kept)


def default_tensorflow_log_level(level: int) -> None:
    """TensorFlow's C++ log level (1 hides info, 2 warnings too; errors always show), unless the
    user set one; a stricter default replaces an earlier one of ours. Read when TensorFlow starts."""
    global _log_level_set_here
    current = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if current is None or (current == _log_level_set_here and int(current) < level):
        _log_level_set_here = os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(level)


def limit_threads(threads: int = 1) -> None:
    """One thread per worker for BLAS/OpenMP/OpenCV (env.collect.limit_worker_threads) and TF,
    set before those libraries start. TensorFlow reads these only if it is not initialised yet."""
    from env.collect import limit_worker_threads  # here, not at the top: it imports OpenCV

    limit_worker_threads(threads)
    quiet_cuda_without_driver()
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[variable] = str(threads)
    default_tensorflow_log_level(2)
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised: keep what it has


# --- an entry point's start ---------------------------------------------------------------------


@dataclasses.dataclass
class Invocation:
    """What an entry point gets: the run folder, the resolved config, the parsed arguments, and
    (after begin) what its validation step loaded."""

    stage: str
    run_dir: Path
    config: config_module.Config
    arguments: argparse.Namespace
    inputs: Any = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)


def parse_arguments(
    stage: str, description: str, argv: list[str] | None = None, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """A stage's command line, parsed. Touches nothing."""
    parser = argparse.ArgumentParser(
        prog=f"python -m scripts.{stage}",
        description=description,
        epilog=config_module.help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="the run directory (created if needed)")
    parser.add_argument("--preset", choices=sorted(config_module.PRESETS), help="start a run from a preset (first stage only)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config field (repeatable)")
    parser.add_argument("--force", action="store_true", help="discard this stage's outputs and start it over")
    if add_arguments:
        add_arguments(parser)
    return parser.parse_args(argv)


def open_run(stage: str, arguments: argparse.Namespace) -> Invocation:
    """The config this stage runs with (DIR/config.json or --preset, then --set), refused if it
    contradicts a finished or started stage. Reads only: config.json is written by begin."""
    run_dir = arguments.run_dir
    config = build_config(run_dir, arguments.preset, arguments.assignments)
    check_locks(run_dir, config, skip_stage=stage if arguments.force else None)
    return Invocation(stage=stage, run_dir=run_dir, config=config, arguments=arguments)


def parse(stage: str, description: str, argv: list[str] | None = None, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> Invocation:
    """parse_arguments, then open_run: nothing is written."""
    return open_run(stage, parse_arguments(stage, description, argv, add_arguments))


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and each of its parents that does not exist yet, deepest first: what mkdir(parents=True) would create."""
    missing = []
    for path in (Path(folder), *Path(folder).parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each folder (deepest first) that is still empty: what a failed start created and left empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (another process is using it) or gone: leave it and its parents


def _undo_start(lock: Path, created: list[Path]) -> None:
    """A start that failed removes what it created: its lock file, unlinked while still held (a
    process that opens it meanwhile finds it held and stops), then the folders, if empty."""
    held = lock.absolute()
    if lock in created and held in _held_locks:
        lock.unlink(missing_ok=True)
        os.close(_held_locks.pop(held))
    remove_if_empty([path for path in created if path != lock])


def begin(
    invocation: Invocation,
    requires: tuple[str, ...] | None = None,
    write: bool = True,
    validate: Callable[[Invocation], Any] | None = None,
) -> Any:
    """The start every stage shares, in this order:
    1. (writer only) take the stage's folder lock: a second writer stops here;
    2. the upstream stages (`requires`, by default the table's) have finished, else an error
       naming the first unfinished one the run needs and the command that starts there;
    3. validate(invocation) checks (and may load) every input the stage reads, its own
       checkpoints included unless --force discards them; its result is kept in invocation.inputs;
    4. (writer only) save DIR/config.json, --force discards the stage's outputs, temporary files
       of a killed writer go, and the locked values its outputs are made with are recorded (started.json).
    Any error in 1-3 leaves every file of the run as it was: the lock file, DIR/.locks and DIR
    itself go again if this start created them. write=False (MPI ranks other than 0) only checks
    (steps 2-3). Returns invocation.inputs."""
    run_dir, name = invocation.run_dir, invocation.stage
    spec = STAGES.get(name)
    lock = lock_path(run_dir, name) if write and spec is not None else None
    created = [lock, *missing_folders(lock.parent)] if lock is not None and not lock.exists() else []
    try:
        if lock is not None:
            acquire_lock(lock, name, run_dir / spec.folder)
        require_upstream(invocation, tuple(spec.required(invocation.config) if requires is None and spec is not None else requires or ()))
        if spec is not None and invocation.arguments.force and (run_dir / spec.folder).is_symlink():
            # e.g. an iterate round's vae/, a link to the run's V: --force would delete the run's own files
            raise StageError(
                f"{run_dir / spec.folder} is a link to {(run_dir / spec.folder).resolve()}: --force here would delete the outputs it "
                f"links to. Run `{command_for(name, (run_dir / spec.folder).resolve().parent)} --force` on that run instead."
            )
        if validate is not None:
            invocation.inputs = validate(invocation)
    except BaseException:
        if lock is not None:
            _undo_start(lock, created)
        raise
    if not write:
        return invocation.inputs
    save_config(run_dir, invocation.config)
    if spec is None:
        return invocation.inputs
    if invocation.arguments.force:
        force_clean(run_dir, name)  # done.json and started.json included
    remove_temporaries(run_dir / spec.folder)
    if spec.has_done:
        mark_started(run_dir, name, invocation.config)
    return invocation.inputs


def exit_status(error: BaseException) -> int:
    """The status run_main ends the process with when `error` leaves an entry point's main."""
    if isinstance(error, UserError) or (isinstance(error, OSError) and is_disk_full(error)):
        return 2
    if isinstance(error, KeyboardInterrupt):
        return 128 + signal_of(error)
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 0 if error.code is None else 1
    return 1  # a bug: Python prints the traceback and exits with 1


def run_main(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Run an entry point: a UserError or a full disk becomes one clear line and exit status 2; SIGTERM, SIGINT
    or SIGHUP stop it (every `finally` runs) with status 128 + signal."""
    install_stop_handlers()
    quiet_cuda_without_driver()
    try:
        main(argv)
    except UserError as error:
        print(f"error: {for_the_user(str(error))}", file=sys.stderr)
        sys.exit(exit_status(error))
    except OSError as error:
        if not is_disk_full(error):
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(
            f"error: the disk is full{where} ({error.strerror}): no partial file was kept. Free some space and rerun the same command to resume.",
            file=sys.stderr,
        )
        sys.exit(exit_status(error))
    except KeyboardInterrupt as interrupt:
        print(stopped_message(signal_of(interrupt)), file=sys.stderr, flush=True)
        sys.exit(exit_status(interrupt))


def configure_devices(mode: str) -> None:
    """GPUs and many ranks (docs/design.md section 6): in real mode each rank's step is dominated by
    the CPU-bound envs and its agent batch is small, so ranks keep off the GPU; in dream mode
    they share it (memory growth) instead of each grabbing all of its memory. Before
    TensorFlow builds anything."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    if mode == "real":
        tf.config.set_visible_devices([], "GPU")
    else:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
