"""Benchmark: rollout collection against the bare environment (docs/design.md section 6).

For each environment the same episodes (same seeds, same random-policy
actions) are played in this one process, one thread, each episode in turn
by every variant (interleaved, so load from other processes hits all alike):
  env only            the engine alone (gymnasium CarRacing-v3 step / vizdoom
                      make_action + screen buffer), actions precomputed
  collection, no save the project's wrapper: policy, action mapping, crop + resize
  collection + save   the same, plus env.rollouts.write_rollout (.npz, zlib level 1)
  ... + save, zlib 6  the same at np.savez_compressed's level 6 (for comparison)
  ... + save, stored  the same .npz without compression (~3x the disk)
Goal: collection + save >= 0.9 x env only.

Each variant is timed twice: wall clock, and CPU seconds of this process plus
its child processes (the ViZDoom engine runs in one). On a machine shared
with other jobs the CPU ratio is the steadier figure.

    python -m scripts.benchmark rollouts [--carracing-steps N] [--doom-steps N] [--only carracing|doom]
"""

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

from common.files import save_npz
from env.actions import carracing_actions, doom_actions
from env.collect import collect_and_save, collect_episode, limit_worker_threads
from env.config import EnvConfig, GenerateConfig
from env.doom import TICS_PER_STEP
from env.games.takecover import DOOM_BUTTONS
from env.make import make_env
from env.policies import episode_actions
from env.rollouts import episode_path

GOAL = 0.9


def cpu_seconds() -> float:
    """CPU time of this process and its live children (Linux /proc; the children's share is 0 elsewhere)."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK")
    for children_file in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(children_file) as handle:
                children = handle.read().split()
            for child in children:
                with open(f"/proc/{child}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        except OSError:
            continue
    return total


class Timer:
    """Accumulates wall and CPU seconds of one variant."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.steps = 0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *_):
        self.wall += time.perf_counter() - self._wall
        self.cpu += cpu_seconds() - self._cpu


def env_only_carracing(env, seed, actions) -> int:
    """The gymnasium env alone; returns the steps played."""
    gym_env = env.gym_env
    gym_env.reset(seed=seed)
    for step, action in enumerate(carracing_actions(actions)):
        _, _, terminated, truncated, _ = gym_env.step(action)
        if terminated or truncated:
            return step + 1
    return len(actions)


def env_only_doom(env, seed, actions) -> int:
    """The vizdoom game alone (a step = one tic + reading the screen buffer)."""
    game = env.game
    game.set_seed(seed)
    game.new_episode()
    for step, choice in enumerate(doom_actions(actions)):
        game.get_state().screen_buffer  # noqa: B018 - reading the frame is part of an env step
        game.make_action(DOOM_BUTTONS[int(choice)], TICS_PER_STEP)
        if game.is_episode_finished():
            return step + 1
    return len(actions)


def benchmark(name: str, total_steps: int, max_steps: int, policy: str) -> None:
    env_config = EnvConfig(name=name, max_steps=max_steps)
    generate_config = GenerateConfig(policy=policy, num_rollouts=1)
    env = make_env(env_config)
    env_only = env_only_carracing if name == "carracing" else env_only_doom
    timers = {key: Timer() for key in ("env", "wrapped", "saved", "level6", "stored")}
    megabytes = dict.fromkeys(("saved", "level6", "stored"), 0.0)
    env_only(env, 0, episode_actions(generate_config, name, env_config.action_size, 50, 0))  # warm-up
    index = 0
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        while timers["env"].steps < total_steps:
            seed = generate_config.base_seed + index
            actions = episode_actions(generate_config, name, env_config.action_size, max_steps, seed)
            with timers["env"] as timer:
                timer.steps += env_only(env, seed, actions)
            with timers["wrapped"] as timer:
                episode = collect_episode(env, episode_actions(generate_config, name, env_config.action_size, max_steps, seed), seed)
                timer.steps += len(episode["done"])
            with timers["saved"] as timer:
                timer.steps += collect_and_save(env, env_config, generate_config, folder, index).steps
            megabytes["saved"] += episode_path(folder, index).stat().st_size / 1e6
            with timers["level6"] as timer:
                episode = collect_episode(env, episode_actions(generate_config, name, env_config.action_size, max_steps, seed), seed)
                save_npz(folder / "level6.npz", compression_level=6, **episode)
                timer.steps += len(episode["done"])
            megabytes["level6"] += (folder / "level6.npz").stat().st_size / 1e6
            with timers["stored"] as timer:
                episode = collect_episode(env, episode_actions(generate_config, name, env_config.action_size, max_steps, seed), seed)
                save_npz(folder / "stored.npz", compression_level=None, **episode)
                timer.steps += len(episode["done"])
            megabytes["stored"] += (folder / "stored.npz").stat().st_size / 1e6
            index += 1
    env.close()
    steps = {key: timer.steps for key, timer in timers.items()}
    assert len(set(steps.values())) == 1, f"the same seeds and actions must give the same episodes: {steps}"

    wall = {key: timer.steps / timer.wall for key, timer in timers.items()}
    cpu = {key: timer.steps / timer.cpu for key, timer in timers.items()}
    print(f"{name}: {steps['env']} steps in {index} episodes (seeds 0..{index - 1}, policy {policy}, cap {max_steps}), per variant")
    print(f"  {'':28s}{'wall steps/s':>13s}{'ratio':>7s}{'CPU steps/s':>13s}{'ratio':>7s}")
    labels = {
        "env": "env only",
        "wrapped": "collection, no save",
        "saved": "collection + save",
        "level6": "collection + save, zlib 6",
        "stored": "collection + save, stored",
    }
    for key, label in labels.items():
        size = f"  {megabytes[key]:.1f} MB" if key in megabytes else ""
        print(f"  {label:28s}{wall[key]:13.1f}{wall[key] / wall['env']:7.3f}{cpu[key]:13.1f}{cpu[key] / cpu['env']:7.3f}{size}")
    ratio_wall, ratio_cpu = wall["saved"] / wall["env"], cpu["saved"] / cpu["env"]
    verdict = "met" if min(ratio_wall, ratio_cpu) >= GOAL else "NOT met"
    print(f"  goal collection + save >= {GOAL} x env only: {verdict} (wall {ratio_wall:.3f}, CPU {ratio_cpu:.3f})", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark rollouts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carracing-steps", type=int, default=600, help="CarRacing steps per variant (~6 ms each)")
    parser.add_argument("--carracing-episode", type=int, default=300, help="CarRacing episode cap for the benchmark")
    parser.add_argument("--doom-steps", type=int, default=8000, help="Doom steps per variant (~0.2 ms each)")
    parser.add_argument("--doom-episode", type=int, default=2100, help="Doom episode cap")
    parser.add_argument("--only", choices=("carracing", "doom"), help="benchmark one environment")
    arguments = parser.parse_args(argv)
    limit_worker_threads(1)  # like a collection worker
    if arguments.only in (None, "carracing"):
        benchmark("carracing", arguments.carracing_steps, arguments.carracing_episode, "brownian")
    if arguments.only in (None, "doom"):
        benchmark("doom", arguments.doom_steps, arguments.doom_episode, "hold")


if __name__ == "__main__":
    main()
