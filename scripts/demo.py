"""The main job (`./run.sh demo`): world models working, within minutes on 2 cores, in two parts.

1. The doom-smoke pipeline in RUNS/doom-smoke (scripts.pipeline, unchanged): every stage at the
   paper's model sizes on 6 short episodes. It shows the stages working together, not learning:
   its V draws blur, and its M's dream hardly ever kills, so every controller lives to the cap.
2. The committed TakeCover agent, pretrained/doom (V, M and C of the paper-scale run after four
   rounds of iterative training), copied to RUNS/doom-pretrained so that nothing is written in the
   repository: it plays --episodes fresh real episodes and the random policy plays the same ones
   (scripts.evaluate), it acts in its dream (scripts.dream), and V reconstructs freshly played
   frames (scripts.check_vae).

Then it prints every picture and video, with what each should look like. Rerunning resumes:
finished parts are skipped. Real runs: `python -m scripts.pipeline --preset NAME --run-dir DIR`.

    python -m scripts.demo [--runs runs] [--episodes 5]
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from common.errors import ArtifactError, StageError
from common.files import read_json, read_jsonl
from common.layout import CURVE_NAME, DREAM_VIDEO_NAME, EPISODE_VIDEO_NAME, REAL_VIDEO_NAME, RECONSTRUCTIONS_NAME, SUMMARY_NAME, RunLayout
from scripts import pipeline, stage
from scripts.export_agent import copy_file

SMOKE_PRESET = "doom-smoke"
SMOKE_NAME = "doom-smoke"
AGENT = Path("pretrained") / "doom"  # python -m scripts.* runs from the repository root
AGENT_COPY_NAME = "doom-pretrained"
AGENT_STAGES = ("evaluate", "evaluate_random", "dream", "check_vae")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs"), help=f"folder of the two run folders, {SMOKE_NAME}/ and {AGENT_COPY_NAME}/ (default runs)")
    parser.add_argument("--episodes", type=int, default=5, help="fresh real episodes the committed agent and the random policy play (default 5)")
    arguments = parser.parse_args(argv)
    if arguments.episodes < 1:
        parser.error(f"--episodes {arguments.episodes}: expected at least 1")
    return arguments


def copy_agent(source: Path, target: Path) -> bool:
    """Copy the exported agent's files (those its EXPORTED.json lists, each checked against its
    SHA-256) to `target`, written to a hidden folder beside it and renamed into place; returns
    False when `target` already holds this agent (the same EXPORTED.json). A `target` holding
    anything else is refused, never overwritten."""
    marker = source / stage.EXPORTED_MARKER
    if not marker.is_file():
        raise ArtifactError(f"{marker} does not exist: {source} is not an exported agent (python -m scripts.export_agent makes one)")
    record = read_json(marker)
    if target.exists():
        copied = target / stage.EXPORTED_MARKER
        if copied.is_file() and copied.read_bytes() == marker.read_bytes():
            return False
        raise StageError(
            f"{target} exists but does not hold the agent in {source} (its {stage.EXPORTED_MARKER} differs or is missing): "
            f"remove it (`rm -r {target}`) or give another --runs folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".copy", dir=target.parent))
    try:
        for name, expected in record["files"].items():
            if copy_file(source / name, staging / name) != expected["sha256"]:
                raise ArtifactError(
                    f"{source / name} differs from the SHA-256 that {marker} records: the clone's copy of the agent is damaged "
                    f"or not fetched (a Git LFS pointer?); restore it with `git checkout -- {source}`"
                )
        copy_file(marker, staging / stage.EXPORTED_MARKER)
        os.rename(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return True


def agent_stage_argv(name: str, run_dir: Path, episodes: int) -> tuple[str, list[str]]:
    """The entry point and its arguments for one of AGENT_STAGES on the agent's copy."""
    argv = ["--run-dir", str(run_dir)]
    if name == "evaluate":
        return name, [*argv, "--episodes", str(episodes)]
    if name == "evaluate_random":
        return "evaluate", [*argv, "--episodes", str(episodes), "--params", "random"]
    return name, argv


def run_agent_stages(run_dir: Path, episodes: int) -> list[tuple[str, str, float]]:
    """Score, dream and check V on the agent's copy; the videos and the picture are kept once made
    (evaluate decides for itself whether its episodes are already played)."""
    timings = []
    for name in AGENT_STAGES:
        module, argv = agent_stage_argv(name, run_dir, episodes)
        if name in pipeline.OUTPUTS and pipeline.is_finished(run_dir, name):
            print(f"[demo] {name}: already made, skipped", flush=True)
            timings.append((name, "skipped", 0.0))
            continue
        print(f"[demo] python -m scripts.{module} {' '.join(argv)}", flush=True)
        started = time.perf_counter()
        pipeline.run_stage(module, argv, ranks=1)
        timings.append((name, "ran", time.perf_counter() - started))
    return timings


def score_text(summary_path: Path) -> str:
    """'mean ± std steps over N episodes' from a TakeCover evaluation's summary.json (return = steps survived)."""
    if not summary_path.exists():
        return f"{summary_path} (missing)"
    summary = read_json(summary_path)
    return f"{summary['mean']:.0f} ± {summary['std']:.0f} steps over {summary['episodes']} episodes"


def smoke_curve_text(run_dir: Path) -> str:
    """What the smoke run's curve shows, from its metrics (the same test curve.png's note makes)."""
    from controller.train import capped_generations, return_cap

    metrics = RunLayout(run_dir).metrics("train_controller")
    if not metrics.exists():
        return "the CMA-ES curve (no metrics.jsonl: train_controller has not run)"
    records = read_jsonl(metrics)
    config = stage.build_config(run_dir, None, [])
    capped = capped_generations(records, return_cap(config))
    if capped and len(capped) == len(records):
        return (
            f"a flat line at the dream's {config.controller.max_dream_steps}-step cap, with a note: the smoke M's dream hardly ever kills, "
            f"so every candidate survives and CMA-ES has nothing to rank"
        )
    first, last = records[0]["fitness_mean"], records[-1]["fitness_mean"]
    return f"population mean fitness {first:.0f} -> {last:.0f} over {len(records)} generations ({len(capped)} with every candidate at the cap)"


def closing_lines(smoke_dir: Path, agent_dir: Path, agent_source: Path) -> list[str]:
    """The pictures and videos of both parts, each with what it should look like: the trained
    agent first (world models working), then the smoke run (the stages working)."""

    def show(path: Path, text: str) -> list[str]:
        return [f"  {path}" + ("" if path.exists() else "  (missing)"), f"      {text}"]

    agent, smoke = RunLayout(agent_dir), RunLayout(smoke_dir)
    exported = read_json(agent_source / stage.EXPORTED_MARKER).get("source_evaluation") or {}
    published = f" (its run: {exported['mean']:.0f} ± {exported['std']:.0f} over {exported['episodes']})" if "mean" in exported else ""
    return [
        f"The committed TakeCover agent, {agent_source} (copied to {agent_dir}), trained at the paper's scale inside its dream:",
        f"  the agent survives          {score_text(agent.eval / SUMMARY_NAME)}{published}",
        f"  the random policy survives  {score_text(agent.folder('evaluate_random') / SUMMARY_NAME)}, the same episodes",
        *show(
            agent.dream / DREAM_VIDEO_NAME,
            "the agent inside its dream: M imagines the room and V draws it; the far wall, side walls sliding in and out "
            "as the agent moves, fireballs; it ends when M's done head says the agent was hit",
        ),
        *show(
            agent.eval / EPISODE_VIDEO_NAME,
            "the first of those real episodes: the game (left), monsters along the far wall throwing fireballs, the agent "
            "moving between the side walls; V's reconstruction (right) keeps walls and fireballs, the monsters as smudges",
        ),
        *show(agent.dream / REAL_VIDEO_NAME, "one more real episode beside V's reconstruction"),
        *show(
            agent.vae / RECONSTRUCTIONS_NAME,
            "V on freshly played frames: walls, floor and their distance come back, monsters as dark marks; the samples from z ~ N(0, I) draw fireballs",
        ),
        "",
        f"The smoke run, {smoke_dir}: every stage at the paper's model sizes on a few short episodes; it shows the stages working, not learning:",
        *show(smoke.vae / RECONSTRUCTIONS_NAME, "brown-grey blur, captioned as a smoke V: a few hundred training steps"),
        *show(smoke.controller / CURVE_NAME, smoke_curve_text(smoke_dir)),
        *show(smoke.dream / DREAM_VIDEO_NAME, "the smoke M's dream drawn by the smoke V: an almost still brown-grey blur"),
    ]


def main(argv=None):
    arguments = parse_arguments(argv)
    smoke_dir, agent_dir = arguments.runs / SMOKE_NAME, arguments.runs / AGENT_COPY_NAME
    started = time.perf_counter()
    print(f"[demo] 1/2 the smoke pipeline: python -m scripts.pipeline --preset {SMOKE_PRESET} --run-dir {smoke_dir}", flush=True)
    pipeline.main(["--preset", SMOKE_PRESET, "--run-dir", str(smoke_dir)])
    smoke_seconds = time.perf_counter() - started

    print(f"\n[demo] 2/2 the committed agent {AGENT}, copied to {agent_dir}", flush=True)
    agent_started = time.perf_counter()
    if copy_agent(AGENT, agent_dir):
        print(f"[demo] copied {AGENT} to {agent_dir}", flush=True)
    timings = run_agent_stages(agent_dir, arguments.episodes)
    agent_seconds = time.perf_counter() - agent_started

    print(f"\n[demo] finished in {time.perf_counter() - started:.0f} s: the smoke pipeline {smoke_seconds:.0f} s, the committed agent {agent_seconds:.0f} s")
    for name, status, seconds in timings:
        print(f"  {name:<18} {status:<8} {seconds:8.1f} s")
    print("\nWhat to look at:")
    print("\n".join(closing_lines(smoke_dir, agent_dir, AGENT)))


if __name__ == "__main__":
    stage.run_main(main)
