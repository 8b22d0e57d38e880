"""Run the whole World Models pipeline in one run directory (docs/design.md section 1).

generate -> train_vae -> check_vae -> extract -> train_rnn -> train_controller
-> evaluate -> dream, each by calling that stage's own entry point, so a stage
here behaves exactly as `python -m scripts.<stage> --run-dir DIR`.

Resumable: a finished stage (its done.json, or for check_vae / dream the
picture or videos it makes) is skipped without touching any file; an unfinished
one resumes from its own checkpoints, and once a stage whose outputs later
stages read has run, every stage after it runs too (each resumes or redoes what
its changed inputs need). So rerunning the same command after a crash picks up
where it stopped. A --preset/--set that changes DIR/config.json runs every
stage (each decides what is left to do). With --ranks N > 1, train_controller
runs under `mpiexec -n N`. Prints each stage's time and, at the end, the paths
of the reconstruction grid, the curve, the dream video and the evaluation score.

    python -m scripts.pipeline --preset doom-smoke --run-dir runs/doom-smoke
"""

import argparse
import gc
import importlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from common.errors import ArtifactError
from common.files import read_json
from common.layout import CURVE_NAME, EPISODE_VIDEO_NAME, RECONSTRUCTIONS_NAME, SUMMARY_NAME, RunLayout
from common.stopping import run_child
from scripts import config as config_module
from scripts import stage

ORDER = stage.PIPELINE_STAGES  # the stage table (scripts/stage.py) is in pipeline order
VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".avi")
LEAVES = stage.leaves()  # no later stage reads their outputs
# Stages without a done.json of their own: the files they exist to make (each written atomically).
OUTPUTS = {name: spec.finished_files for name, spec in stage.STAGES.items() if not spec.has_done}
is_finished = stage.is_finished


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path, help="the run directory (created if needed)")
    parser.add_argument("--preset", choices=sorted(config_module.PRESETS), help="start the run from a preset (needed the first time)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config field (repeatable)")
    parser.add_argument("--ranks", type=int, default=1, help="MPI ranks for train_controller (> 1 runs it under mpiexec; default 1)")
    parser.add_argument("--skip-dream", action="store_true", help="stop after evaluate (no dream video)")
    parser.add_argument("--only", nargs="+", choices=ORDER, metavar="STAGE", help=f"run only these stages (of: {', '.join(ORDER)})")
    parser.add_argument("--force", action="store_true", help="discard every stage's outputs and start the run over")
    arguments = parser.parse_args(argv)
    if arguments.ranks < 1:
        parser.error(f"--ranks {arguments.ranks}: expected at least 1")
    return arguments


def _videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*") if path.suffix in VIDEO_SUFFIXES and path.is_file() and path.stat().st_size > 0)


def config_changes(run_dir: Path, preset: str | None, assignments: list[str]) -> bool:
    """Whether --preset/--set would change DIR/config.json (read-only: nothing is written).
    Without changes, finished stages are skipped; with them, every stage runs and decides."""
    config_path = RunLayout(run_dir).config
    if not config_path.exists():
        return True
    # what the stored file means today (fields added since it was written at the value it reads them as)
    return stage.stored_config_dict(read_json(config_path)) != stage.build_config(run_dir, preset, assignments).to_dict()


def mpiexec_path() -> str:
    """mpiexec from the interpreter's environment (the PyPI mpich package), else from PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if found is None:
        raise stage.StageError("--ranks > 1 needs mpiexec: `pip install -r requirements.txt` installs it (package mpich), or use --ranks 1")
    return found


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's warning that tf.functions of the same code keep tracing: stages run in
    this one process each load their own V and trace V's encode and decode functions for it once
    (vae/encode.py), which is expected, not the loop the warning is about."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_expected_retracing() -> None:
    """Install _ExpectedRetracing on TensorFlow's logger (once)."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(existing, _ExpectedRetracing) for existing in logger.filters):
        logger.addFilter(_ExpectedRetracing())


def run_stage(name: str, argv: list[str], ranks: int) -> None:
    """One stage: its main() in this process (holding the stage's lock while it runs), or
    train_controller under mpiexec (whose rank 0 takes the lock; a stop reaches every rank)."""
    if name == "train_controller" and ranks > 1:
        command = [mpiexec_path(), "-n", str(ranks), sys.executable, "-m", f"scripts.{name}", *argv]
        print(f"[pipeline] {' '.join(command)}", flush=True)
        status = run_child(command, os.environ.copy())
        if status != 0:
            raise stage.StageError(f"train_controller exited with status {status} under mpiexec; rerun the pipeline to resume it")
        return
    quiet_expected_retracing()
    module = importlib.import_module(f"scripts.{name}")
    try:
        module.main(argv)
    finally:
        stage.release_locks()
    # Models of one stage are not needed by the next: free them before it starts.
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()


def summary_lines(run_dir: Path) -> list[str]:
    """The run's pictures, videos and score, for the closing summary."""
    lines = []

    def show(label: str, path: Path) -> None:
        lines.append(f"  {label:<22} {path if path.exists() else f'{path} (missing)'}")

    run = RunLayout(run_dir)
    show("reconstruction grid", run.vae / RECONSTRUCTIONS_NAME)
    show("controller curve", run.controller / CURVE_NAME)
    videos = _videos(run.dream)
    show("dream video", videos[0] if videos else run.dream)
    show("evaluation video", run.eval / EPISODE_VIDEO_NAME)
    summary_path = run.eval / SUMMARY_NAME
    if summary_path.exists():
        try:
            summary = read_json(summary_path)
        except ArtifactError as error:
            lines.append(f"  evaluation score       unreadable: {error}")
        else:
            mean, std = summary.get("mean"), summary.get("std")
            episodes = summary.get("episodes", summary.get("num_episodes"))
            if isinstance(mean, int | float) and isinstance(std, int | float):
                score = f"{mean:.1f} ± {std:.1f}" + (f" over {episodes} episodes" if episodes is not None else "")
            else:
                score = ", ".join(f"{key}={value}" for key, value in summary.items() if not isinstance(value, dict | list))
            lines.append(f"  evaluation score       {score}  ({summary_path})")
    else:
        lines.append(f"  evaluation score       {summary_path} (missing)")
    return lines


def main(argv=None):
    arguments = parse_arguments(argv)
    run_dir = arguments.run_dir
    if arguments.preset is None and not RunLayout(run_dir).config.exists():
        raise stage.StageError(
            f"{run_dir / 'config.json'} does not exist: start the run with a preset, e.g. "
            f"`python -m scripts.pipeline --preset doom-smoke --run-dir {run_dir}` (presets: {', '.join(config_module.PRESETS)})"
        )
    stage.build_config(run_dir, arguments.preset, arguments.assignments)  # a bad --set stops here, before anything is made
    created = stage.missing_folders(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return run_stages(arguments)
    except BaseException:
        stage.remove_if_empty(created)  # a run folder this call made and nothing filled
        raise


def run_stages(arguments: argparse.Namespace) -> list[tuple[str, str, float]]:
    """Each stage of the run in order (see the module docstring); the first that fails ends the
    pipeline, saying so (the error itself is printed by stage.run_main)."""
    run_dir = arguments.run_dir
    names = [name for name in ORDER if not (arguments.skip_dream and name == "dream")]
    if arguments.only:
        names = [name for name in names if name in arguments.only]
    rerun_all = arguments.force or config_changes(run_dir, arguments.preset, arguments.assignments)

    timings: list[tuple[str, str, float]] = []
    started = time.perf_counter()
    for index, name in enumerate(names):
        if not rerun_all and is_finished(run_dir, name):
            print(f"[pipeline] {index + 1}/{len(names)} {name}: already finished, skipped", flush=True)
            timings.append((name, "skipped", 0.0))
            continue
        argv_for_stage = ["--run-dir", str(run_dir)]
        if arguments.preset:
            argv_for_stage += ["--preset", arguments.preset]
        for assignment in arguments.assignments:
            argv_for_stage += ["--set", assignment]
        if arguments.force:
            argv_for_stage.append("--force")
        print(f"[pipeline] {index + 1}/{len(names)} {name}: python -m scripts.{name} {' '.join(argv_for_stage)}", flush=True)
        stage_started = time.perf_counter()
        try:
            run_stage(name, argv_for_stage, arguments.ranks)
        except BaseException as error:
            outcome = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
            seconds = time.perf_counter() - stage_started
            print(f"[pipeline] {name} {outcome} after {seconds:.1f} s (exit status {stage.exit_status(error)}); the stages after it did not run", flush=True)
            raise
        seconds = time.perf_counter() - stage_started
        print(f"[pipeline] {name} took {seconds:.1f} s", flush=True)
        timings.append((name, "ran", seconds))
        if name not in LEAVES:
            rerun_all = True  # the later stages' outputs were made from this one's old outputs
    total = time.perf_counter() - started

    print(f"\n[pipeline] finished in {total:.1f} s ({run_dir})")
    for name, status, seconds in timings:
        print(f"  {name:<18} {status:<8} {seconds:8.1f} s")
    print("\n".join(summary_lines(run_dir)))
    return timings


if __name__ == "__main__":
    stage.run_main(main)
