"""Scoring a trained controller in the real environment (paper, sections 4.4 and 5: the mean
and standard deviation over 100 fresh episodes, never a best episode).

Episode k uses seed evaluate.seed + k, below 2^31, while training episodes use
seeds in [2^31, 2^32) (controller/seeds.py): evaluation tracks and games are
never ones the controller was trained on. Writes DIR/eval/:
  returns.json  every episode: seed, return, length
  summary.json  mean, std (population, ddof 0), min, max, episodes, controller used
  histogram.png the returns
  episode.mp4   the first episode: the real frame beside V's reconstruction of z
  partial.json  while running: the episodes finished so far (a rerun resumes from them)
"""

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from common.files import atomic_path, read_json, write_json
from common.video import side_by_side
from common.video import write_video as write_pictures
from controller import linear
from controller.seeds import evaluation_seeds
from controller.store import load_agent, load_controller
from env.batch import BatchEnv
from vae.encode import decode_z, to_uint8
from vae.store import load_part

CHUNK_ROUNDS = 4  # episodes are run (and saved) in chunks of CHUNK_ROUNDS x envs episodes
PARTIAL_NAME = "partial.json"


def _partial_key(params: np.ndarray, params_path: Path, config) -> dict:
    """What the saved partial results were made with: the same key resumes them."""
    return {
        "controller": str(params_path),
        "params_sha256": hashlib.sha256(params.tobytes()).hexdigest(),
        "first_seed": int(config.evaluate.seed),
        "sample_z": bool(config.controller.sample_z),
        "env": config.env.name,
        "max_steps": int(config.env.max_steps),
    }


def evaluate(config, run_dir: Path, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Run config.evaluate.episodes fresh real episodes with the chosen controller; write DIR/eval/.

    Resumable: finished episodes are kept in DIR/eval/partial.json after every chunk, and a
    rerun with the same controller and seeds runs only the others.
    """
    run_dir = Path(run_dir)
    eval_dir = run_dir / "eval"
    settings = config.evaluate
    params, extras, params_path = load_controller(config, run_dir, settings.params)
    seeds = evaluation_seeds(settings.seed, settings.episodes)
    shape = linear.ControllerShape.from_config(config)
    key = _partial_key(params, params_path, config)
    partial_path = eval_dir / PARTIAL_NAME
    done = {}  # episode index -> record
    if partial_path.exists():
        partial = read_json(partial_path)
        if partial.get("key") == key:
            done = {record["episode"]: record for record in partial["episodes"] if record["episode"] < settings.episodes}
    todo = [index for index in range(settings.episodes) if index not in done]
    agent = load_agent(config, run_dir)
    num_envs = max(1, min(config.controller.envs_per_worker, settings.episodes))
    resumed = f", {len(done)} already done" if done else ""
    log(f"evaluate: {settings.episodes} {config.env.name} episodes with {params_path} ({shape.describe()}), {num_envs} envs in lockstep{resumed}")
    video = settings.video and (0 in todo or not (eval_dir / "episode.mp4").exists())
    if video and 0 not in todo:
        todo.insert(0, 0)  # the video's episode was scored but its video never written
    batch_env = BatchEnv(config.env, min(num_envs, len(todo))) if todo else None
    bar = None
    if progress:
        bar = tqdm(total=settings.episodes, initial=settings.episodes - len(todo), desc="episodes", unit="ep", leave=False)
    started = time.perf_counter()
    steps = 0
    try:
        chunk_size = CHUNK_ROUNDS * num_envs
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            weights, biases = linear.stack(np.repeat(params[None], len(chunk), axis=0), shape)
            record = chunk.index(0) if video and 0 in chunk else None
            result = agent.run_episodes(batch_env, weights, biases, seeds[chunk], record=record, progress=bar.update if bar else None)
            if record is not None:
                write_video(result, run_dir, config, eval_dir / "episode.mp4")
            steps += int(result["lengths"].sum())
            for position, index in enumerate(chunk):
                done[index] = {
                    "episode": index,
                    "seed": int(seeds[index]),
                    "return": float(result["returns"][position]),
                    "length": int(result["lengths"][position]),
                }
            write_json(partial_path, {"key": key, "episodes": [done[index] for index in sorted(done)]})
    finally:
        if batch_env is not None:
            batch_env.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    episodes = [done[index] for index in range(settings.episodes)]
    returns = np.array([episode["return"] for episode in episodes], np.float64)
    lengths = np.array([episode["length"] for episode in episodes], np.int64)
    write_json(eval_dir / "returns.json", {"controller": str(params_path), "episodes": episodes})
    summary = {
        "env": config.env.name,
        "env_renderer": config.env.carracing_renderer if config.env.name == "carracing" else None,
        "controller": str(params_path),
        "params": settings.params,
        "controller_generation": extras.get("generation"),
        "episodes": int(settings.episodes),
        "first_seed": int(settings.seed),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
        "mean_length": float(lengths.mean()),
        "steps_per_second_this_run": float(steps / seconds) if steps else None,
    }
    write_json(eval_dir / "summary.json", summary)
    plot_histogram(returns, eval_dir / "histogram.png", f"{config.env.name}, {settings.params} controller: {summary['mean']:.1f} ± {summary['std']:.1f}")
    partial_path.unlink(missing_ok=True)
    env_name = config.env.name + (f" ({summary['env_renderer']} renderer)" if summary["env_renderer"] else "")
    log(
        f"evaluate: {env_name}: return {summary['mean']:.2f} ± {summary['std']:.2f} over {settings.episodes} episodes "
        f"(min {summary['min']:.2f}, max {summary['max']:.2f})"
    )
    return summary


def plot_histogram(returns: np.ndarray, path: Path, title: str) -> None:
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    axes.hist(returns, bins=min(30, max(5, len(returns) // 3)))
    axes.axvline(returns.mean(), color="black", linestyle="--", label=f"mean {returns.mean():.1f}")
    axes.set_xlabel("episode return")
    axes.set_ylabel("episodes")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=100)


def write_video(result: dict, run_dir: Path, config, path: Path) -> None:
    """episode.mp4: each step's real frame (full resolution if the env keeps it) beside V's
    decoding of the z the controller saw."""
    decoder = load_part(run_dir / "vae", "decoder", config.vae.z_size)
    reconstructions = to_uint8(decode_z(decoder, result["z"]))
    raw_frames = result["raw_frames"] if len(result["raw_frames"]) == len(reconstructions) else result["frames"]
    write_pictures(path, side_by_side(raw_frames, reconstructions))
