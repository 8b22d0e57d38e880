"""The run directory contract shared by every stage's entry point.

`python -m scripts.<stage> --run-dir DIR [--preset NAME] [--set section.key=value ...] [--force]`

- The first stage run in DIR writes the resolved DIR/config.json (preset +
  overrides + library versions); later stages read it and need no --preset.
- A stage that finishes writes DIR/<its folder>/done.json with the config
  sections it read. A later --preset/--set that changes a locked field of such
  a section is refused: the stage's outputs were made with the old value.
  A resumable stage also writes DIR/<its folder>/started.json when it starts
  making outputs, so an interrupted stage is held to its values the same way
  (its partial outputs are not mixed with ones made under another config).
- A stage whose inputs are missing stops before computing anything, naming
  the file it needs and the command that makes it.
"""

import argparse
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common.errors import StageError, UserError
from common.files import read_json, write_json
from scripts import config as config_module

# stage -> (folder it writes, config sections whose locked fields it depends on)
STAGES = {
    "generate": ("rollouts", ("env", "generate")),
    "train_vae": ("vae", ("vae",)),
    "extract": ("series", ("vae",)),
    "train_rnn": ("rnn", ("rnn",)),
    "train_controller": ("controller", ("controller",)),
    "evaluate": ("eval", ()),
}


def command_for(stage: str, run_dir: Path) -> str:
    return f"python -m scripts.{stage} --run-dir {run_dir}"


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
    return Path(run_dir) / STAGES[stage][0] / "done.json"


def started_path(run_dir: Path, stage: str) -> Path:
    return Path(run_dir) / STAGES[stage][0] / "started.json"


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
    for stage, (_, sections) in STAGES.items():
        if stage == skip_stage or not sections:
            continue
        finished = done_path(run_dir, stage).exists()
        marker = done_path(run_dir, stage) if finished else started_path(run_dir, stage)
        if not marker.exists():
            continue
        recorded = read_json(marker).get("locked", {})
        current = locked_values(config, sections)
        for key, old_value in recorded.items():
            if key in current and current[key] != old_value:
                what = "was made" if finished else "has partial outputs made"
                raise StageError(
                    f"{key}={current[key]!r} contradicts {marker}: the {'finished' if finished else 'unfinished'} stage '{stage}' {what} with "
                    f"{key}={old_value!r}. Use a new --run-dir, or rerun `{command_for(stage, run_dir)} --force` "
                    f"with the new value (and the stages after it)."
                )


def build_config(run_dir: Path, preset: str | None, assignments: list[str]) -> config_module.Config:
    """The config a stage would run with: DIR/config.json (or --preset for a new run), then --set.
    Read-only: nothing is checked against finished stages and nothing is written."""
    config_path = run_dir / "config.json"
    try:
        overrides = config_module.parse_overrides(assignments)
        if config_path.exists():
            stored = read_json(config_path)
            if preset is not None and preset != stored.get("preset"):
                # A different preset rebuilds everything from that preset; the locks decide if that is allowed.
                return config_module.build(preset, None, overrides)
            sections = {name: stored[name] for name in config_module.SECTIONS if name in stored}
            return config_module.build(stored.get("preset"), sections, overrides)
        if preset is None:
            raise StageError(
                f"{config_path} does not exist: start the run with a preset, e.g. "
                f"`python -m scripts.generate --run-dir {run_dir} --preset doom-smoke` "
                f"(presets: {', '.join(config_module.PRESETS)})"
            )
        return config_module.build(preset, None, overrides)
    except (ValueError, TypeError) as error:
        raise StageError(f"{config_path}: {error}") from None


def resolve_config(run_dir: Path, preset: str | None, assignments: list[str], force_stage: str | None = None) -> config_module.Config:
    """build_config, then refuse what contradicts a finished (or started) stage, then save config.json."""
    config = build_config(run_dir, preset, assignments)
    check_locks(run_dir, config, skip_stage=force_stage)
    record = config.to_dict()
    record["versions"] = _versions()
    write_json(run_dir / "config.json", record)
    return config


def require_done(run_dir: Path, stage: str) -> dict:
    """The done.json of a finished upstream stage, or an error saying how to make it."""
    marker = done_path(run_dir, stage)
    if not marker.exists():
        raise StageError(f"{marker} is missing: stage '{stage}' has not finished in {run_dir}. Run `{command_for(stage, run_dir)}` first.")
    return read_json(marker)


def mark_started(run_dir: Path, stage: str, config: config_module.Config) -> None:
    """Record the locked values the stage's outputs are being made with (after any --force clean).

    Written once: if it exists, check_locks has already found the config equal to it.
    """
    marker = started_path(run_dir, stage)
    if not marker.exists():
        write_json(marker, {"stage": stage, "locked": locked_values(config, STAGES[stage][1])})


def mark_done(run_dir: Path, stage: str, config: config_module.Config, summary: dict | None = None) -> None:
    write_json(
        done_path(run_dir, stage),
        {"stage": stage, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "locked": locked_values(config, STAGES[stage][1]), "summary": summary or {}},
    )


def clear_done(run_dir: Path, stage: str) -> None:
    marker = done_path(run_dir, stage)
    if marker.exists():
        marker.unlink()


def force_clean(run_dir: Path, stage: str, keep: tuple[str, ...] = ()) -> None:
    """--force: remove the stage's folder (except names in `keep`) so it starts over."""
    folder = Path(run_dir) / STAGES[stage][0]
    if not folder.exists():
        return
    for entry in folder.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def limit_threads(threads: int = 1) -> None:
    """One thread per worker for BLAS/OpenMP/OpenCV (env.collect.limit_worker_threads) and TF,
    set before those libraries start. TensorFlow reads these only if it is not initialised yet."""
    from env.collect import limit_worker_threads  # here, not at the top: it imports OpenCV

    limit_worker_threads(threads)
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[variable] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # already initialised: keep what it has


@dataclasses.dataclass
class Invocation:
    """What an entry point gets: the run folder, the resolved config, the parsed arguments."""

    stage: str
    run_dir: Path
    config: config_module.Config
    arguments: argparse.Namespace


def parse(stage: str, description: str, argv: list[str] | None = None, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> Invocation:
    """Parse a stage's command line, resolve and save the config."""
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
    arguments = parser.parse_args(argv)
    run_dir = arguments.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config = resolve_config(run_dir, arguments.preset, arguments.assignments, force_stage=stage if arguments.force else None)
    return Invocation(stage=stage, run_dir=run_dir, config=config, arguments=arguments)


def begin(invocation: Invocation, requires: tuple[str, ...] = (), write: bool = True) -> None:
    """The start every stage shares, in this order: the upstream stages in `requires` have
    finished (else an error naming them, before anything is deleted); --force discards this
    stage's outputs; the locked values its outputs are made with are recorded (started.json).
    write=False (MPI ranks other than 0) only checks."""
    for upstream in requires:
        require_done(invocation.run_dir, upstream)
    if not write or invocation.stage not in STAGES:
        return
    if invocation.arguments.force:
        force_clean(invocation.run_dir, invocation.stage)  # done.json and started.json included
    mark_started(invocation.run_dir, invocation.stage, invocation.config)


def run_main(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Run an entry point; a StageError becomes one clear line and exit status 2."""
    try:
        main(argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
