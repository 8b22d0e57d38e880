"""Benchmark: the project's CarRacing-v3 renderer (env/carracing_fast.py) against gymnasium's, in one run.

Both envs play the same episodes (same seeds, the data-collection policy's
actions) in lockstep: every step is taken by one env and then the other, the
order alternating, so load from other processes hits both alike. Each step
is timed in wall-clock time and in this process's CPU time (the steadier
figure on a shared machine: the envs render in this process, one thread).
Every frame, reward and episode end is compared as well. Goal: fast / stock
steps per second >= 3.

    python -m scripts.benchmark carracing [--episodes 4] [--steps 300]
"""

import argparse
import time

import numpy as np

GOAL = 3.0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark carracing", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=4, help="episodes (seeds 0..N-1), each played by both envs")
    parser.add_argument("--steps", type=int, default=300, help="step cap per episode (the first 50 are the zoom-in)")
    arguments = parser.parse_args(argv)

    from scripts import stage

    stage.limit_threads(1)

    from env.actions import carracing_actions
    from env.carracing import RENDERERS, make_gym_carracing
    from env.config import GenerateConfig
    from env.policies import episode_actions

    envs = {renderer: make_gym_carracing(renderer) for renderer in RENDERERS}
    wall = dict.fromkeys(RENDERERS, 0.0)
    cpu = dict.fromkeys(RENDERERS, 0.0)
    steps = mismatches = 0
    print(f"one process, one thread; {arguments.episodes} episodes of up to {arguments.steps} steps, the 'brownian' collection policy's actions")
    for seed in range(arguments.episodes):
        actions = carracing_actions(episode_actions(GenerateConfig(), "carracing", 3, arguments.steps, seed))
        first = [envs[renderer].reset(seed=seed)[0] for renderer in RENDERERS]
        mismatches += not np.array_equal(*first)
        for step, action in enumerate(actions):
            order = RENDERERS if step % 2 == 0 else RENDERERS[::-1]
            outputs = {}
            for renderer in order:
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                outputs[renderer] = envs[renderer].step(action)
                wall[renderer] += time.perf_counter() - wall_start
                cpu[renderer] += time.process_time() - cpu_start
            fast, stock = outputs["fast"], outputs["stock"]
            mismatches += not (np.array_equal(fast[0], stock[0]) and fast[1:4] == stock[1:4])
            steps += 1
            if stock[2] or stock[3]:
                break
    for env in envs.values():
        env.close()

    rates = {renderer: (steps / wall[renderer], steps / max(cpu[renderer], 1e-9)) for renderer in RENDERERS}
    print(f"{steps} steps each; steps that differed (frame, reward, terminated or truncated): {mismatches}")
    for renderer in ("stock", "fast"):
        print(f"  {renderer:5s}: {rates[renderer][0]:7.1f} steps/s wall, {rates[renderer][1]:7.1f} steps/CPU-s")
    wall_ratio, cpu_ratio = (rates["fast"][index] / rates["stock"][index] for index in (0, 1))
    verdict = "met" if cpu_ratio >= GOAL else "NOT met"
    print(f"  fast / stock: {cpu_ratio:.2f}x on CPU time, {wall_ratio:.2f}x on wall time (goal >= {GOAL:g}x on CPU time: {verdict})")


if __name__ == "__main__":
    main()
