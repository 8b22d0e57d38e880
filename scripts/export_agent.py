"""Export a trained agent: a finished run's V, M and C as a small run directory of their own.

  python -m scripts.export_agent --run-dir DIR --to OUT [--force] [--allow-large]

OUT gets exactly the files that `scripts.evaluate`, `scripts.dream` and `scripts.fidelity`
read (exported_files: with the selected mean and M's rnn/calibration.json when the run has
them), copied byte for byte (config.json as it is), and OUT/EXPORTED.json:
the source folder, the time, each file's size and SHA-256, and the source's own evaluation
summary if it has one. No rollouts, series episodes, checkpoints, logs or CMA-ES state:
python -m scripts.evaluate --run-dir OUT then scores the same agent on the same seeds with
the same returns; fidelity there skips its held-out parts (they need series episodes).

Everything is checked before anything is written: V, the first-frame table, M and the
controller have finished in DIR and load for its config, OUT is new, empty or (with --force)
an earlier export, and the total is at most 40 MB unless --allow-large (the folder is meant
to be committed, and a large file stays in git's history for good). The files are written to
a hidden folder beside OUT and renamed into place, so OUT is either the old export or the new one.
"""

import argparse
import datetime
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from common.errors import StageError
from common.files import atomic_path, read_json, write_json
from common.layout import BEST_NAME, DONE_NAME, MEAN_NAME, SELECTED_NAME, SUMMARY_NAME, RunLayout
from scripts import stage

MARKER_NAME = stage.EXPORTED_MARKER
MAX_BYTES = 40_000_000  # a committed pretrained/<env>/ folder stays under 40 MB
# The stages whose outputs an exported agent is made of, in pipeline order.
REQUIRED_STAGES = ("train_vae", "extract", "train_rnn", "train_controller")


def exported_files(run_dir: Path | None = None) -> tuple[str, ...]:
    """Paths (relative to the run directory) of every file evaluate, dream and fidelity read:
    config.json; V's encoder and decoder (evaluate's agent and video, dream); M's weights;
    the first frames the dream starts from; both saved controllers (evaluate --params best|mean),
    and the done.json markers of V, M and C that their stage checks require and compare the config with.
    Two more when run_dir holds them: the selected mean (--params selected, controller.eval_set=validation)
    and M's calibration (rnn/calibration.py), which the dream's sampled done rule reads."""
    relative = RunLayout(Path())  # paths relative to the run directory
    optional = (relative.controller_params(SELECTED_NAME), relative.calibration)
    present = tuple(path for path in optional if run_dir is not None and (run_dir / path).exists())
    paths = (
        relative.config,
        relative.vae_weights("encoder"),
        relative.vae_weights("decoder"),
        relative.vae / DONE_NAME,
        relative.initial_z,
        relative.rnn_weights,
        relative.rnn / DONE_NAME,
        relative.controller_params(BEST_NAME),
        relative.controller_params(MEAN_NAME),
        relative.controller / DONE_NAME,
        *present,
    )
    return tuple(path.as_posix() for path in paths)


def check_source(run_dir: Path):
    """The config of a run whose V, first frames, M and controller have finished and load; else a
    StageError or ArtifactError naming the missing file and the command that makes it."""
    from controller.store import load_controller, params_path
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z
    from vae.store import load_encoder_decoder

    if not run_dir.is_dir():
        raise StageError(f"{run_dir} is not a run directory (no such folder)")
    config = stage.build_config(run_dir, None, [])
    # A run that trained C in an exported agent's shared folders (controller.init_from) has the first-frame
    # table and no extract done.json: the table is all the export takes from series/, as for train_controller.
    stood_in = stage.stood_in_for(run_dir, "train_controller")
    for name in REQUIRED_STAGES:
        if name not in stood_in:
            stage.require_done(run_dir, name)
    run = RunLayout(run_dir)
    load_encoder_decoder(run.vae, config.vae)
    read_initial_z(run.series, config.vae.z_size)
    load_mdn_rnn(run.rnn, config)
    for kind in ("best", "mean", "selected"):
        if kind != "selected" or params_path(run_dir, kind).exists():
            load_controller(config, run_dir, kind)
    return config


def check_destination(out: Path, run_dir: Path, force: bool) -> bool:
    """Whether OUT exists and will be replaced (empty, or an earlier export with --force); a
    StageError for anything else. Nothing outside OUT is ever removed, so OUT may not hold DIR."""
    source, target = run_dir.resolve(), out.resolve()
    if target == source or target in source.parents:
        raise StageError(f"--to {out} holds the run directory {run_dir} itself: choose a folder outside it, e.g. pretrained/{source.name}")
    if out.is_symlink():
        raise StageError(f"--to {out} is a link to {target}: give the folder itself")
    if not out.exists():
        return False
    if not out.is_dir():
        raise StageError(f"--to {out} is a file, not a folder: choose a new folder")
    entries = sorted(entry.name for entry in out.iterdir())
    if not entries:
        return True
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    if not (out / MARKER_NAME).is_file():
        raise StageError(
            f"--to {out} is not empty ({len(entries)} entries: {shown}) and holds no {MARKER_NAME}, so no export made it: "
            f"choose a new or empty folder (--force replaces only an earlier export)"
        )
    if not force:
        raise StageError(f"--to {out} already holds an exported agent ({shown}): rerun with --force to replace it, or choose a new folder")
    return True


def copy_file(source: Path, destination: Path) -> str:
    """Copy byte for byte, written atomically; returns the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, atomic_path(destination) as temporary, open(temporary, "wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            digest.update(block)
            writer.write(block)
    return digest.hexdigest()


def _place(staging: Path, out: Path, replace: bool) -> None:
    """Rename the finished staging folder to OUT; an existing OUT (checked empty or an earlier
    export) is moved aside first and removed only once the new one is in place."""
    if not replace:
        os.rename(staging, out)
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".previous", dir=out.parent))
    os.rename(out, previous / out.name)
    os.rename(staging, out)
    shutil.rmtree(previous)


def export_agent(run_dir: Path, out: Path, force: bool = False, allow_large: bool = False, command: str = "", log=print) -> dict:
    """Check DIR and OUT, then write OUT (see the module docstring); `command` is recorded as the
    command that made it. Returns the EXPORTED.json record."""
    run_dir, out = Path(run_dir), Path(out)
    if stage.is_exported_agent(run_dir):
        raise StageError(f"{run_dir} is itself an exported agent ({run_dir / MARKER_NAME}): copy the folder instead, `cp -r {run_dir} {out}`")
    check_source(run_dir)
    replace = check_destination(out, run_dir, force)
    names = exported_files(run_dir)
    total = sum((run_dir / name).stat().st_size for name in names)
    log(f"export_agent: {len(names)} files, {total / 1e6:.1f} MB from {run_dir}")
    if total > MAX_BYTES:
        if not allow_large:
            raise StageError(
                f"the export of {run_dir} would hold {total / 1e6:.1f} MB, above the {MAX_BYTES / 1e6:g} MB a committed agent may take "
                f"(largest: {max(names, key=lambda name: (run_dir / name).stat().st_size)}): nothing was written. "
                f"Rerun with --allow-large to export it anyway (not for committing)."
            )
        log(f"export_agent: warning: {total / 1e6:.1f} MB is above {MAX_BYTES / 1e6:g} MB (--allow-large): do not commit it")

    summary_path = RunLayout(run_dir).eval / SUMMARY_NAME
    record = {
        "source": str(run_dir.resolve()),
        "exported_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "total_bytes": total,
        "files": {},
        "source_evaluation": read_json(summary_path) if summary_path.exists() else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))
    try:
        for name in names:
            sha256 = copy_file(run_dir / name, staging / name)
            record["files"][name] = {"bytes": (staging / name).stat().st_size, "sha256": sha256}
        write_json(staging / MARKER_NAME, record)
        _place(staging, out, replace)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    log(f"export_agent: wrote {out} ({size / 1e6:.1f} MB). Re-score it with `python -m scripts.evaluate --run-dir {out} --episodes 100`")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.export_agent", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path, help="the finished run to export (read only)")
    parser.add_argument("--to", required=True, type=Path, dest="out", help="the folder to write, e.g. pretrained/doom (new or empty)")
    parser.add_argument("--force", action="store_true", help="replace an earlier export in --to (a folder with EXPORTED.json)")
    parser.add_argument("--allow-large", action="store_true", help=f"export even above {MAX_BYTES / 1e6:g} MB (then not for committing)")
    arguments = parser.parse_args(argv)
    stage.limit_threads(1)
    command = " ".join(["python -m scripts.export_agent", *(sys.argv[1:] if argv is None else argv)])
    return export_agent(arguments.run_dir, arguments.out, force=arguments.force, allow_large=arguments.allow_large, command=command)


if __name__ == "__main__":
    stage.run_main(main)
