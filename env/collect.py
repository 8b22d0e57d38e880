"""Random-policy rollout collection (paper, sections 4.1 and 5.1): episodes -> DIR/rollouts/*.npz.

Episode i is played with seed base_seed + i (the env's track or game and the
policy's actions both come from it) and written to <i:06d>.npz atomically by
the process that played it, so the files do not depend on the worker count.

Which episodes are kept (the rule):
- An episode of <= generate.min_episode_steps steps is dropped (Doom: the
  player died almost at once). Its index is recorded as <i:06d>.dropped, so a
  rerun does not play it again, and collection goes on with further indices.
- The kept set is exactly the first num_rollouts indices whose episodes are
  not dropped. Indices are handed out in increasing order, and a new one only
  while (kept + in flight) < num_rollouts, so no index beyond that set is ever
  played, whatever the number of workers or interruptions.
- A rerun skips every index that has a file or a .dropped marker: deleting
  one file and rerunning makes exactly that file again.

Workers are spawned processes (no fork: the engines hold threads and child
processes), one environment each, reused across episodes, one thread each
for OpenCV/BLAS. With one worker everything runs in the calling process.

Stopping: if the calling process is interrupted (KeyboardInterrupt, e.g. from a
SIGTERM handler), every worker is sent SIGTERM; a worker closes its environment
(a ViZDoom game is a child process of the worker) and exits at once, and any
process left below the caller after a grace period is killed. An episode cut
short leaves at most a temporary file, removed by the next run.
"""

import atexit
import concurrent.futures
import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.files import write_json
from common.stopping import STOP_SIGNALS, descendants, end_processes, is_alive
from env.config import EnvConfig, GenerateConfig
from env.frames import FRAME_SHAPE
from env.make import make_env
from env.policies import episode_actions
from env.rollouts import episode_path, list_episodes, write_rollout

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_worker_threads(threads: int = 1) -> None:
    """One thread for OpenCV and BLAS in a collection worker (parallelism comes from processes)."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import cv2

    cv2.setNumThreads(threads)


@dataclasses.dataclass
class EpisodeResult:
    index: int
    steps: int
    kept: bool
    total_reward: float
    seconds: float


@dataclasses.dataclass
class CollectionSummary:
    kept_episodes: int  # episodes on disk after this run
    new_episodes: int  # written by this run
    dropped_episodes: int  # dropped by this run (<= min_episode_steps)
    new_steps: int  # env steps played by this run, kept or dropped
    seconds: float


def dropped_path(folder: str | Path, index: int) -> Path:
    return Path(folder) / f"{index:06d}.dropped"


def dropped_indices(folder: str | Path) -> set[int]:
    folder = Path(folder)
    return {int(path.stem) for path in folder.glob("[0-9]*.dropped") if path.stem.isdigit()} if folder.is_dir() else set()


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files left by a writer killed mid-write (common.files.atomic_path names them .<name>.*.tmp*)."""
    for path in Path(folder).glob(".*.tmp*"):
        path.unlink(missing_ok=True)


def collect_episode(env, actions: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Play one episode with precomputed actions; arrays in the rollout format (env/rollouts.py).

    obs[t] is the frame seen before action[t]; done[t] is True only where
    action[t] ended the episode by termination (the step cap is not a done).
    """
    max_steps = len(actions)
    obs = np.empty((max_steps, *FRAME_SHAPE), dtype=np.uint8)
    reward = np.zeros(max_steps, dtype=np.float32)
    done = np.zeros(max_steps, dtype=bool)
    frame = env.reset(seed)
    steps = 0
    for step in range(max_steps):
        obs[step] = frame
        frame, reward[step], terminated, truncated = env.step(actions[step])
        done[step] = terminated
        steps = step + 1
        if terminated or truncated:
            break
    return {"obs": obs[:steps], "action": actions[:steps], "reward": reward[:steps], "done": done[:steps]}


def collect_and_save(env, env_config: EnvConfig, generate_config: GenerateConfig, folder: Path, index: int) -> EpisodeResult:
    """Play episode `index` and write its file, or its .dropped marker if it is too short."""
    start = time.perf_counter()
    seed = generate_config.base_seed + index
    actions = episode_actions(generate_config, env_config.name, env_config.action_size, env_config.max_steps, seed)
    episode = collect_episode(env, actions, seed)
    steps = len(episode["done"])
    kept = steps > generate_config.min_episode_steps
    if kept:
        write_rollout(episode_path(folder, index), **episode)
    else:
        write_json(dropped_path(folder, index), {"index": index, "seed": seed, "steps": steps, "min_episode_steps": generate_config.min_episode_steps})
    return EpisodeResult(index, steps, kept, float(episode["reward"].sum()), time.perf_counter() - start)


# The worker's environment, made on its first episode and reused (a ViZDoom game takes ~0.3 s to start).
_worker: dict = {}


def _close_worker_env() -> None:
    env = _worker.pop("env", None)
    if env is not None:
        env.close()


def _exit_worker(signum, frame) -> None:
    """A worker's stop signal: close the game (else its engine process outlives the worker), exit now.
    (concurrent.futures would catch an exception raised here and go on with the next episode.)"""
    try:
        _close_worker_env()
    finally:
        os._exit(128 + signum)


def _init_worker(env_config: EnvConfig, generate_config: GenerateConfig, folder: Path, thread_initializer: Callable[[], None] | None) -> None:
    if thread_initializer is not None:
        thread_initializer()
    if multiprocessing.parent_process() is not None:  # a pool worker, not the calling process
        for signum in STOP_SIGNALS:
            signal.signal(signum, _exit_worker)
    _close_worker_env()  # an environment from an earlier call in this process may have another config
    _worker.update(env_config=env_config, generate_config=generate_config, folder=folder)
    if not _worker.get("closes_at_exit"):
        atexit.register(_close_worker_env)
        _worker["closes_at_exit"] = True


def _worker_episode(index: int) -> EpisodeResult:
    if "env" not in _worker:
        _worker["env"] = make_env(_worker["env_config"])
    return collect_and_save(_worker["env"], _worker["env_config"], _worker["generate_config"], _worker["folder"], index)


class _InlineExecutor(concurrent.futures.Executor):
    """The one-worker case: run each episode in the calling process when submitted."""

    def submit(self, function, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as error:  # handed to the caller through the future (KeyboardInterrupt propagates)
            future.set_exception(error)
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        _close_worker_env()


def _stop_pool(executor: concurrent.futures.Executor, grace_seconds: float = 5.0) -> None:
    """End every worker process and what it started (game engines) now, not after their episodes."""
    if not isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        return  # one worker: the environment is in this process and closed by shutdown
    workers = list((getattr(executor, "_processes", None) or {}).keys())
    below = [pid for worker in workers for pid in descendants(worker)]
    end_processes(workers, grace_seconds)
    end_processes([pid for pid in below if is_alive(pid)], grace_seconds=1.0)
    executor.shutdown(wait=False, cancel_futures=True)


def collect_rollouts(
    folder: str | Path,
    env_config: EnvConfig,
    generate_config: GenerateConfig,
    num_workers: int = 1,
    progress: Callable[[EpisodeResult], None] | None = None,
    thread_initializer: Callable[[], None] | None = limit_worker_threads,
) -> CollectionSummary:
    """Collect until `generate_config.num_rollouts` episodes are on disk in `folder` (see the module docstring).

    progress: called in this process after each finished episode (kept or dropped).
    thread_initializer: run first in each worker (spawned processes import it by name).
    """
    if generate_config.min_episode_steps >= env_config.max_steps:
        raise ValueError(
            f"generate.min_episode_steps={generate_config.min_episode_steps} >= env.max_steps={env_config.max_steps}: every episode would be dropped"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    start = time.perf_counter()
    kept_indices = {int(path.stem) for path in list_episodes(folder)}
    resolved = kept_indices | dropped_indices(folder)
    target = generate_config.num_rollouts
    # Guard against a config that drops (nearly) everything: stop with an error, not an endless loop.
    max_dropped = 10 * target + 100
    summary = CollectionSummary(len(kept_indices), 0, 0, 0, 0.0)
    if summary.kept_episodes >= target:
        return summary

    def unresolved_indices():
        index = 0
        while True:
            if index not in resolved:
                yield index
            index += 1

    next_indices = unresolved_indices()
    if num_workers <= 1:
        _init_worker(env_config, generate_config, folder, thread_initializer)
        executor: concurrent.futures.Executor = _InlineExecutor()
    else:
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=num_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(env_config, generate_config, folder, thread_initializer),
        )
    in_flight: set[concurrent.futures.Future] = set()
    try:
        while True:
            # Hand out the next indices only while they could all be needed (the keep rule above).
            while len(in_flight) < max(num_workers, 1) and summary.kept_episodes + len(in_flight) < target:
                in_flight.add(executor.submit(_worker_episode, next(next_indices)))
            if not in_flight:
                break
            finished, in_flight = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                summary.new_steps += result.steps
                if result.kept:
                    summary.kept_episodes += 1
                    summary.new_episodes += 1
                else:
                    summary.dropped_episodes += 1
                if progress is not None:
                    progress(result)
            if summary.dropped_episodes > max_dropped:
                raise ValueError(
                    f"{summary.dropped_episodes} episodes dropped for being <= generate.min_episode_steps={generate_config.min_episode_steps} steps: "
                    "lower generate.min_episode_steps"
                )
    except KeyboardInterrupt:
        _stop_pool(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    summary.seconds = time.perf_counter() - start
    return summary


def random_policy_episodes(
    batch_env, env_config, generate_config, seeds: np.ndarray, progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Play one episode per seed with the data-collection policy: episode k takes the actions
    env.policies.episode_actions draws for seeds[k], exactly what generate plays for that seed
    (scripted_episodes)."""
    return scripted_episodes(batch_env, env_config, seeds, random_policy_script(env_config, generate_config), progress)


def random_policy_script(env_config, generate_config) -> Callable[[int], np.ndarray]:
    """seed -> the (max_steps, action_size) actions generate plays for that seed."""

    def actions_for(seed: int) -> np.ndarray:
        return episode_actions(generate_config, env_config.name, env_config.action_size, env_config.max_steps, seed)

    return actions_for


def scripted_episodes(
    batch_env, env_config, seeds: np.ndarray, actions_for: Callable[[int], np.ndarray], progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Play one episode per seed over the rows of `batch_env` (lockstep), refilling a row with the
    next seed as its episode ends: episode k is reset(seeds[k]) then actions_for(seeds[k])[t] at
    step t (an array (env_config.max_steps, action_size)). Returns (returns (K,) float64, summed
    step by step; lengths (K,) int64). Every episode is kept, however short."""
    seeds = np.asarray(seeds, np.int64)
    returns = np.zeros(len(seeds), np.float64)
    lengths = np.zeros(len(seeds), np.int64)
    num_rows = batch_env.num_envs
    job_of_row = np.full(num_rows, -1, np.int64)  # -1: the row is idle
    actions_of_row: list[np.ndarray | None] = [None] * num_rows
    next_job = 0

    def start(row: int) -> None:
        nonlocal next_job
        seed = int(seeds[next_job])
        job_of_row[row] = next_job
        actions_of_row[row] = actions_for(seed)
        batch_env.reset_one(row, seed)
        next_job += 1

    for row in range(min(num_rows, len(seeds))):
        start(row)
    while (job_of_row >= 0).any():
        active = np.flatnonzero(job_of_row >= 0)
        jobs = job_of_row[active]
        actions = np.zeros((num_rows, env_config.action_size), np.float32)
        for row, job in zip(active, jobs, strict=True):
            actions[row] = actions_of_row[row][lengths[job]]
        _, rewards, terminated, truncated = batch_env.step(actions)
        returns[jobs] += rewards[active]
        lengths[jobs] += 1
        for row in active[(terminated | truncated)[active]]:
            job_of_row[row] = -1
            if progress is not None:
                progress(1)
            if next_job < len(seeds):
                start(row)
    return returns, lengths
