"""Scoring in the real environment (paper, sections 4.4 and 5: the mean and standard deviation
over 100 fresh episodes, never a best episode), of the trained controller or, as the baseline
beside it, of the run's random data-collection policy.

Episode k uses seed evaluate.seed + k, below 2^29, while training episodes use
seeds in [2^31, 2^32) and the validation episodes that pick the agent 2^29 + k
(controller/seeds.py): evaluation tracks and games are never ones the controller
was trained on or chosen by. Both evaluations play the same seeds, so
their episodes correspond one to one. evaluate() writes DIR/eval/:
  returns.json  every episode: seed, return, length
  summary.json  mean, std (population, ddof 0), min, max, episodes, controller used
  histogram.png the returns
  episode.mp4   the first episode: the real frame beside V's reconstruction of z
  partial.json  while running: the episodes finished so far (a rerun resumes from them)
evaluate_random() writes the same files (no video) to DIR/eval_random/. Either can write to
another folder instead (scripts/evaluate.py --seed: a further seed set in DIR/eval_seed<N>/).
"""

import copy
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from common.files import atomic_path, read_json, write_json
from common.layout import EPISODE_VIDEO_NAME, FOLDERS, HISTOGRAM_NAME, PARTIAL_NAME, RETURNS_NAME, SUMMARY_NAME, RunLayout
from common.video import side_by_side
from common.video import write_video as write_pictures
from controller.policy import controller_from_config
from controller.seeds import VALIDATION_SEED_BASE, evaluation_seeds, validation_seeds
from controller.store import load_agent, load_controller
from env.batch import BatchEnv
from env.collect import random_policy_episodes
from vae.encode import decode_z, to_uint8
from vae.store import load_part

CHUNK_ROUNDS = 4  # episodes are run (and saved) in chunks of CHUNK_ROUNDS x envs episodes
EVAL_FOLDER = FOLDERS["evaluate"]
RANDOM_FOLDER = FOLDERS["evaluate_random"]


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


def random_policy_key(config) -> dict:
    """What the random policy's results depend on: its actions' settings, the seeds, the game and
    the game's settings that change its episodes (its spec's episode_settings: TakeCover's skill;
    not the CarRacing renderer: both give the same frames, rewards and episode ends)."""
    generate = config.generate
    return {
        "policy": generate.policy,
        "brownian_scale": float(generate.brownian_scale),
        "brownian_drive_bias": float(generate.brownian_drive_bias),
        "hold_min_steps": int(generate.hold_min_steps),
        "hold_max_steps": int(generate.hold_max_steps),
        "first_seed": int(config.evaluate.seed),
        "env": config.env.name,
        "max_steps": int(config.env.max_steps),
        **{name: getattr(config.env, name) for name in config.env.spec.episode_settings},
    }


def random_policy_name(config) -> str:
    return f"random ({config.generate.policy})"


def env_renderer(config) -> str | None:
    """The renderer summary.json names: the game's renderer field (its spec's renderer_setting), or None."""
    field = config.env.spec.renderer_setting
    return None if field is None else getattr(config.env, field)


# --- shared by both evaluations: resume, chunks, results -----------------------------------------


def load_partial(partial_path: Path, key: dict, episodes: int) -> dict[int, dict]:
    """Episode index -> record of the episodes a stopped run saved with the same key (else none)."""
    if not partial_path.exists():
        return {}
    partial = read_json(partial_path)
    if partial.get("key") != key:
        return {}
    return {record["episode"]: record for record in partial["episodes"] if record["episode"] < episodes}


def play_in_chunks(
    env_config,
    num_envs: int,
    todo: list[int],
    play_chunk: Callable,
    seeds: np.ndarray,
    done: dict[int, dict],
    partial_path: Path,
    key: dict,
    progress: bool,
) -> tuple[int, float]:
    """Play the episodes `todo` on num_envs real environments in lockstep, in chunks of
    CHUNK_ROUNDS x num_envs; play_chunk(batch_env, chunk, progress) -> (returns, lengths) of the
    chunk's episodes. After each chunk every finished episode is saved to partial.json, so a
    stopped run loses at most one chunk. Fills `done`; returns (env steps played, seconds)."""
    started = time.perf_counter()
    if not todo:
        return 0, 0.0
    chunk_size = CHUNK_ROUNDS * num_envs
    batch_env = BatchEnv(env_config, min(num_envs, len(todo)))
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc="episodes", unit="ep", leave=False) if progress else None
    steps = 0
    try:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            returns, lengths = play_chunk(batch_env, chunk, bar.update if bar else None)
            steps += int(np.sum(lengths))
            for position, index in enumerate(chunk):
                done[index] = {"episode": index, "seed": int(seeds[index]), "return": float(returns[position]), "length": int(lengths[position])}
            write_json(partial_path, {"key": key, "episodes": [done[index] for index in sorted(done)]})
    finally:
        batch_env.close()
        if bar is not None:
            bar.close()
    return steps, time.perf_counter() - started


def write_results(
    eval_dir: Path, config, done: dict[int, dict], returns_header: dict, identity: dict, label: str, steps: int, seconds: float, log: Callable[[str], None]
) -> dict:
    """returns.json (returns_header + every episode), summary.json (identity fields, then the
    statistics), histogram.png; removes partial.json. Returns the summary."""
    episodes = [done[index] for index in range(config.evaluate.episodes)]
    returns = np.array([episode["return"] for episode in episodes], np.float64)
    lengths = np.array([episode["length"] for episode in episodes], np.int64)
    write_json(eval_dir / RETURNS_NAME, {**returns_header, "episodes": episodes})
    solved = config.env.spec.solved_return
    summary = {
        "env": config.env.name,
        "env_renderer": env_renderer(config),
        **identity,
        "episodes": int(config.evaluate.episodes),
        "first_seed": int(config.evaluate.seed),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "min": float(returns.min()),
        "max": float(returns.max()),
        "mean_length": float(lengths.mean()),
        "steps_per_second_this_run": float(steps / seconds) if steps else None,
        "solved_return": solved,  # the game's "solved" line (its spec), or None
    }
    write_json(eval_dir / SUMMARY_NAME, summary)
    plot_histogram(returns, eval_dir / HISTOGRAM_NAME, f"{config.env.name}, {label}: {summary['mean']:.1f} ± {summary['std']:.1f}")
    (eval_dir / PARTIAL_NAME).unlink(missing_ok=True)
    env_name = config.env.name + (f" ({summary['env_renderer']} renderer)" if summary["env_renderer"] else "")
    solved_text = "" if solved is None else f"; {'at or above' if summary['mean'] >= solved else 'below'} the {solved:g} solved line"
    log(
        f"evaluate: {env_name}: return {summary['mean']:.2f} ± {summary['std']:.2f} over {config.evaluate.episodes} episodes "
        f"(min {summary['min']:.2f}, max {summary['max']:.2f}){solved_text}"
    )
    return summary


# --- the trained controller ----------------------------------------------------------------------


def evaluate(config, run_dir: Path, log: Callable[[str], None] = print, progress: bool = True, folder: str = EVAL_FOLDER, validation: bool = False) -> dict:
    """Run config.evaluate.episodes fresh real episodes with the chosen controller; write DIR/<folder>/.
    validation: play the validation seeds 2^29 + k instead of evaluate.seed + k (iterate picks its
    best round on them, so evaluate's seeds stay unused by any choice).

    Resumable: finished episodes are kept in DIR/<folder>/partial.json after every chunk, and a
    rerun with the same controller and seeds runs only the others.
    """
    run_dir = Path(run_dir)
    eval_dir = run_dir / folder
    if validation:  # first_seed 2^29 in the resume key and summary.json
        config = copy.deepcopy(config)
        config.evaluate.seed = VALIDATION_SEED_BASE
    settings = config.evaluate
    params, extras, params_path = load_controller(config, run_dir, settings.params)
    seeds = validation_seeds(settings.episodes) if validation else evaluation_seeds(settings.seed, settings.episodes)
    controller = controller_from_config(config)
    key = _partial_key(params, params_path, config)
    partial_path = eval_dir / PARTIAL_NAME
    done = load_partial(partial_path, key, settings.episodes)
    todo = [index for index in range(settings.episodes) if index not in done]
    agent = load_agent(config, run_dir)
    num_envs = max(1, min(config.controller.envs_per_worker, settings.episodes))
    resumed = f", {len(done)} already done" if done else ""
    log(f"evaluate: {settings.episodes} {config.env.name} episodes with {params_path} ({controller.describe()}), {num_envs} envs in lockstep{resumed}")
    video = settings.video and (0 in todo or not (eval_dir / EPISODE_VIDEO_NAME).exists())
    if video and 0 not in todo:
        todo.insert(0, 0)  # the video's episode was scored but its video never written

    def play_chunk(batch_env, chunk: list[int], update) -> tuple[np.ndarray, np.ndarray]:
        record = chunk.index(0) if video and 0 in chunk else None
        result = agent.run_episodes(batch_env, np.repeat(params[None], len(chunk), axis=0), seeds[chunk], record=record, progress=update)
        if record is not None:
            write_video(result, run_dir, config, eval_dir / EPISODE_VIDEO_NAME)
        return result["returns"], result["lengths"]

    steps, seconds = play_in_chunks(config.env, num_envs, todo, play_chunk, seeds, done, partial_path, key, progress)
    identity = {"controller": str(params_path), "params": settings.params, "controller_generation": extras.get("generation")}
    return write_results(eval_dir, config, done, {"controller": str(params_path), "key": key}, identity, f"{settings.params} controller", steps, seconds, log)


# --- the random data-collection policy -----------------------------------------------------------


def _finished_summary(eval_dir: Path, key: dict, config, extra_files: tuple[str, ...] = ()) -> dict | None:
    """The summary of a complete evaluation folder made with this key, episode count and CarRacing
    renderer (the renderer changes no result, but the summary names it), or None."""
    paths = [eval_dir / name for name in (RETURNS_NAME, SUMMARY_NAME, HISTOGRAM_NAME, *extra_files)]
    if not all(path.exists() for path in paths):
        return None
    saved, summary = read_json(paths[0]), read_json(paths[1])
    if saved.get("key") != key or len(saved.get("episodes", ())) != config.evaluate.episodes or summary.get("env_renderer") != env_renderer(config):
        return None
    return summary


def finished_random_summary(config, run_dir: Path, folder: str = RANDOM_FOLDER) -> dict | None:
    """The summary of a complete DIR/<folder>/ (eval_random) made with these settings and episode count, or None."""
    return _finished_summary(Path(run_dir) / folder, random_policy_key(config), config)


def finished_summary(config, run_dir: Path, folder: str = EVAL_FOLDER) -> dict | None:
    """The summary of a complete DIR/<folder>/ (eval) of the controller as it is now (same parameters,
    seeds, episode count; its video too if evaluate.video), or None: a rerun then has nothing to play."""
    params, _, params_path = load_controller(config, run_dir, config.evaluate.params)
    video = (EPISODE_VIDEO_NAME,) if config.evaluate.video else ()
    return _finished_summary(Path(run_dir) / folder, _partial_key(params, params_path, config), config, video)


def evaluate_random(config, run_dir: Path, log: Callable[[str], None] = print, progress: bool = True, folder: str = RANDOM_FOLDER) -> dict:
    """The baseline beside a trained agent: the run's data-collection policy (generate.policy:
    'hold' for Doom, 'brownian' for CarRacing) plays config.evaluate.episodes fresh real episodes
    with the controller evaluation's seeds (evaluate.seed + k); writes DIR/eval_random/.

    Needs only the config (no V, M or C). Unlike generate, which drops Doom episodes of
    <= generate.min_episode_steps steps from the training data, evaluation drops nothing: every
    episode's return counts. controller.envs_per_worker environments are stepped in lockstep.
    Resumable like evaluate(): DIR/<folder>/partial.json, keyed by random_policy_key.
    """
    run_dir = Path(run_dir)
    eval_dir = run_dir / folder
    eval_dir.mkdir(parents=True, exist_ok=True)
    settings = config.evaluate
    seeds = evaluation_seeds(settings.seed, settings.episodes)
    key = random_policy_key(config)
    partial_path = eval_dir / PARTIAL_NAME
    done = load_partial(partial_path, key, settings.episodes)
    todo = [index for index in range(settings.episodes) if index not in done]
    num_envs = max(1, min(config.controller.envs_per_worker, settings.episodes))
    name = random_policy_name(config)
    resumed = f", {len(done)} already done" if done else ""
    log(f"evaluate: {settings.episodes} {config.env.name} episodes with the {name} policy, {num_envs} envs in lockstep{resumed}")

    def play_chunk(batch_env, chunk: list[int], update) -> tuple[np.ndarray, np.ndarray]:
        return random_policy_episodes(batch_env, config.env, config.generate, seeds[chunk], progress=update)

    steps, seconds = play_in_chunks(config.env, num_envs, todo, play_chunk, seeds, done, partial_path, key, progress)
    return write_results(eval_dir, config, done, {"policy": name, "key": key}, {"policy": name}, f"{name} policy", steps, seconds, log)


# --- pictures ------------------------------------------------------------------------------------
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
    decoder = load_part(RunLayout(run_dir).vae, "decoder", config.vae)
    reconstructions = to_uint8(decode_z(decoder, result["z"]))
    raw_frames = result["raw_frames"] if len(result["raw_frames"]) == len(reconstructions) else result["frames"]
    write_pictures(path, side_by_side(raw_frames, reconstructions))
