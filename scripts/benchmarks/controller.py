"""Benchmark: the controller's hot paths (docs/design.md section 6), all measured in this one run.

1. CarRacing-v3, real environment: steps/s of N lockstep envs driven by the full
   agent (V z 32 + M LSTM 256 + C, paper sizes, random weights, one compiled call
   per lockstep step) / steps/s of the same envs, same seeds, replaying the same
   actions with nothing else. Goal >= 0.9 (the env's own rendering is the limit).
2. ViZDoom TakeCover, the same ratio with Doom sizes (z 64, LSTM 512, C on [z, c, h]).
   Reported only: Doom steps ~50x faster than CarRacing, so V's encoder dominates.
   Best of a few alternating rounds, in wall-clock time and in this process's CPU
   time (fair on a shared machine for CarRacing, rendered in-process; ViZDoom's
   engine runs in its own process, so only its wall-clock ratio means anything).
3. CMA-ES ask + tell time per generation (population 64, 867 and 1,088 parameters) /
   the time of a generation at paper scale (64 x 16 episodes): for CarRacing from
   the agent's steps/s measured in 1 (1,000-step episodes), for Doom from the
   batched dream's measured time per step of 1,024 rows (episodes of 100 steps,
   the shortest kept, and of the 2,100-step cap). Goal < 1%. Per core (one rank).

python -m scripts.benchmark controller [--envs 16] [--carracing-steps 100] [--doom-steps 300]
"""

import argparse
import time

from controller.config import ControllerConfig


class _RecordingBatchEnv:
    """A BatchEnv that keeps the actions of every lockstep step, so the env-only run can replay
    them: both runs then do exactly the same environment work (same tracks, same driving)."""

    def __init__(self, batch_env):
        self.batch_env = batch_env
        self.num_envs = batch_env.num_envs
        self.actions = []

    def reset_one(self, row, seed):
        return self.batch_env.reset_one(row, seed)

    def step(self, actions):
        self.actions.append(actions.copy())
        return self.batch_env.step(actions)


class _Clock:
    """Wall time and this process's CPU time. With one thread per process, CPU time is the work
    done without the waits for other jobs on a shared machine; it is a fair measure for
    CarRacing (rendered in this process), not for ViZDoom (its engine is another process)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, steps: int) -> tuple[float, float]:
        """(steps per wall second, steps per CPU second)."""
        return steps / (time.perf_counter() - self.wall), steps / max(time.process_time() - self.cpu, 1e-9)


def _env_only(config, seeds, actions) -> tuple[float, float]:
    """(wall, CPU) steps/s of BatchEnv replaying the agent's actions, nothing else."""
    from env.batch import BatchEnv

    batch_env = BatchEnv(config.env, len(seeds))
    try:
        clock = _Clock()
        batch_env.reset(seeds)
        steps = 0
        for step_actions in actions:
            steps += int((~batch_env.finished).sum())
            batch_env.step(step_actions)
        return clock.rates(steps)
    finally:
        batch_env.close()


def _agent_runner(config, num_envs: int, rng):
    """A function running one episode per env with V + M + C (random weights); returns
    ((wall, CPU) steps/s, the actions of every lockstep step)."""
    import numpy as np

    from controller import linear
    from controller.agent import Agent
    from env.batch import BatchEnv
    from rnn.model import build_mdn_rnn
    from vae.model import build_encoder

    shape = linear.ControllerShape.from_config(config)
    agent = Agent(build_encoder(config.vae.z_size), build_mdn_rnn(config.rnn, config.vae.z_size, config.env.action_size), shape, sample_z=True)
    params = rng.normal(scale=0.3, size=(num_envs, shape.num_params)).astype(np.float32)
    weights, biases = linear.stack(params, shape)
    hidden = np.zeros((num_envs, shape.hidden_size), np.float32)
    frames = np.zeros((num_envs, 64, 64, 3), np.uint8)
    agent.step(frames, np.zeros((num_envs, shape.z_size), np.float32), hidden, hidden, weights, biases, np.zeros(num_envs, np.float32))  # trace

    def run(seeds):
        batch_env = _RecordingBatchEnv(BatchEnv(config.env, num_envs))
        try:
            clock = _Clock()
            result = agent.run_episodes(batch_env, weights, biases, seeds)
            return clock.rates(int(result["lengths"].sum())), batch_env.actions
        finally:
            batch_env.batch_env.close()

    return run


def _real_env_ratio(preset: str, num_envs: int, max_steps: int, rounds: int) -> tuple[float, float, float]:
    """Best-of-`rounds` steps/s with the agent and env only (replaying the agent's actions),
    measured alternately so a shared machine's load hits both alike.
    Returns (agent steps/s, wall-time ratio, CPU-time ratio)."""
    import numpy as np

    from scripts import config as config_module

    config = config_module.build(preset, overrides={"env.max_steps": max_steps})
    seeds = np.arange(num_envs, dtype=np.int64) + 12345
    run_agent = _agent_runner(config, num_envs, np.random.default_rng(0))
    env_rates, agent_rates = [], []
    for _ in range(rounds):
        rates, actions = run_agent(seeds)
        agent_rates.append(rates)
        env_rates.append(_env_only(config, seeds, actions))
    env_wall, env_cpu = (max(rate[index] for rate in env_rates) for index in (0, 1))
    name = f"CarRacing-v3 ({config.env.carracing_renderer} renderer)" if preset == "carracing" else "ViZDoom TakeCover"
    print(f"{name} (best of {rounds}, {num_envs} envs x {max_steps} steps): env only {env_wall:,.1f} steps/s wall, {env_cpu:,.1f} steps/CPU-s")
    wall, cpu = (max(rate[index] for rate in agent_rates) for index in (0, 1))
    print(f"  with agent: {wall:,.1f} steps/s wall -> ratio {wall / env_wall:.3f}; {cpu:,.1f} steps/CPU-s -> ratio {cpu / env_cpu:.3f}")
    return wall, wall / env_wall, cpu / env_cpu


def _ask_tell_seconds(num_params: int, generations: int = 12) -> float:
    import numpy as np

    from controller.es import EvolutionStrategy

    strategy = EvolutionStrategy(num_params, 0.1, 64, 0.01, seed=0)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(generations):
        start = time.process_time()
        strategy.ask()
        strategy.tell(rng.normal(size=64))
        total += time.process_time() - start
    return total / generations


def _dream_seconds_per_step(rows: int, steps: int) -> float:
    import numpy as np

    from controller.dream_scoring import DreamScorer
    from rnn.config import RnnConfig
    from rnn.model import build_mdn_rnn

    model = build_mdn_rnn(RnnConfig(hidden_size=512, num_mixtures=5, restart_input=True, predict_done=True), 64, 1)
    kernel, bias = model.head.get_weights()
    bias[-1] = -1e9  # done never fires: every row runs all `steps`
    model.head.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    dream = DreamScorer(model, rng.normal(size=(100, 64)).astype(np.float32), np.full((100, 64), -2.0, np.float32), 1.15, steps, use_cell_state=True)
    weights = rng.normal(scale=0.1, size=(rows, dream.feature_size, 1)).astype(np.float32)
    dream.run(weights[:2], None, np.arange(2))  # trace once
    start = time.process_time()
    dream.run(weights, None, np.arange(rows, dtype=np.int64))
    return (time.process_time() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark controller", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=ControllerConfig().envs_per_worker, help="environments in lockstep (default: controller.envs_per_worker)")
    parser.add_argument("--carracing-steps", type=int, default=60, help="steps per CarRacing episode timed")
    parser.add_argument("--rounds", type=int, default=2, help="alternating env-only / agent measurements; the best of each counts")
    parser.add_argument("--doom-steps", type=int, default=300, help="step cap per Doom episode timed")
    parser.add_argument("--dream-steps", type=int, default=10, help="dream steps timed for 1,024 rows")
    arguments = parser.parse_args(argv)

    from scripts import stage

    stage.limit_threads(1)

    print(f"one process, one thread; {arguments.envs} environments in lockstep; V, M, C at paper sizes with random weights")

    car_agent, car_wall_ratio, car_cpu_ratio = _real_env_ratio("carracing", arguments.envs, arguments.carracing_steps, arguments.rounds)
    verdict = "met" if car_cpu_ratio >= 0.9 else "NOT met"
    print(f"  CarRacing ratio: {car_cpu_ratio:.3f} on CPU time, {car_wall_ratio:.3f} on wall time (goal >= 0.9 on CPU time: {verdict})")
    _, doom_wall_ratio, _ = _real_env_ratio("doom", arguments.envs, arguments.doom_steps, arguments.rounds)
    print(f"  Doom ratio: {doom_wall_ratio:.3f} on wall time (reported; no goal; CPU time leaves out the engine's own process)")
    ask_tell = {num_params: _ask_tell_seconds(num_params) for num_params in (867, 1088)}
    car_generation = 64 * 16 * 1000 / car_agent
    print(
        f"CMA-ES ask+tell, population 64: {ask_tell[867] * 1000:.0f} ms (867 params), {ask_tell[1088] * 1000:.0f} ms (1,088 params) of CPU time per generation"
    )
    print(
        f"CarRacing generation (64 x 16 episodes x 1,000 steps at {car_agent:.1f} steps/s): {car_generation:,.0f} s on one core -> "
        f"CMA-ES share {ask_tell[867] / car_generation:.5%} (goal < 1%: {'met' if ask_tell[867] / car_generation < 0.01 else 'NOT met'})"
    )
    per_step = _dream_seconds_per_step(64 * 16, arguments.dream_steps)
    for episode_steps in (100, 2100):
        generation = per_step * episode_steps
        share = ask_tell[1088] / generation
        print(
            f"Doom dream generation (1,024 rows, {per_step * 1000:.0f} ms per step, episodes of {episode_steps} steps): {generation:,.1f} s of one core's CPU time -> "
            f"CMA-ES share {share:.3%} (goal < 1%: {'met' if share < 0.01 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
