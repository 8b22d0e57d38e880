"""Benchmark: the controller's hot paths (docs/design.md section 6), all measured in this one run.

1. CarRacing-v3, real environment: steps/s of N lockstep envs driven by the full
   agent (V z 32 + M LSTM 256 + C, paper sizes, random weights, one compiled call
   per lockstep step) / steps/s of the same envs with nothing else. Goal >= 0.9
   (the env's own rendering is the limit). The env-only figure comes from a twin
   batch of envs with the same seeds that replays every lockstep step's actions
   right after the agent's envs take it (same tracks, same driving; their frames
   are checked equal): the two are interleaved step by step, so load from other
   jobs on a shared machine hits both alike. Timed in wall-clock time and in this
   process's CPU time (the steadier figure; CarRacing renders in this process).
   Episodes run the config's full length (1,000 steps): the first 50 are the
   zoom-in, which renders ~40% slower than driving, so short episodes flatter the ratio.
2. ViZDoom TakeCover, the same ratio with Doom sizes (z 64, LSTM 512, C on [z, c, h]).
   Reported only: Doom steps ~50x faster than CarRacing, so V's encoder dominates.
   ViZDoom's engine runs in its own process, so only its wall-clock ratio means anything.
3. CMA-ES ask + tell time per generation (population 64, 867 and 1,088 parameters) /
   the time of a generation at paper scale (64 x 16 episodes): for CarRacing from
   the agent's steps/s measured in 1 (1,000-step episodes), for Doom from the
   batched dream's measured time per step of 1,024 rows (episodes of 100 steps,
   the shortest kept, and of the 2,100-step cap). Goal < 1%. Per core (one rank).

python -m scripts.benchmark controller [--envs 16] [--carracing-steps 1000] [--doom-steps 300]
"""

import argparse
import time

from controller.config import ControllerConfig


class _Clock:
    """Wall time and this process's CPU time. With one thread per process, CPU time is the work
    done without the waits for other jobs on a shared machine; it is a fair measure for
    CarRacing (rendered in this process), not for ViZDoom (its engine is another process)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds) since the clock started."""
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


class _TwinBatchEnv:
    """The agent's BatchEnv plus a twin BatchEnv (same env config and seeds) that takes every
    reset and every step's actions right after it, timed: the twin's time is what the same
    environment work costs with nothing else, measured interleaved with the agent's run."""

    def __init__(self, env_config, num_envs: int):
        from env.batch import BatchEnv

        self.batch_env = BatchEnv(env_config, num_envs)
        self.twin = BatchEnv(env_config, num_envs)
        self.num_envs = num_envs
        self.twin_wall = self.twin_cpu = 0.0
        self.differing_steps = 0  # steps where the twin's frames differ (the replay would not be the same work)

    def _timed(self, call, *args):
        clock = _Clock()
        result = call(*args)
        wall, cpu = clock.elapsed()
        self.twin_wall += wall
        self.twin_cpu += cpu
        return result

    def reset_one(self, row, seed):
        frame = self.batch_env.reset_one(row, seed)
        self._timed(self.twin.reset_one, row, seed)
        return frame

    def step(self, actions):
        result = self.batch_env.step(actions)
        twin_frames = self._timed(self.twin.step, actions)[0]
        self.differing_steps += int(not (twin_frames == result[0]).all())
        return result

    def close(self):
        self.batch_env.close()
        self.twin.close()


def _real_env_ratio(preset: str, num_envs: int, max_steps: int | None) -> tuple[float, float, float]:
    """One episode per env with V + M + C (random weights), its env-only twin interleaved step by step.
    Returns (agent steps/s wall, wall-time ratio, CPU-time ratio), ratio = steps/s with agent / env only."""
    import numpy as np

    from controller.agent import Agent
    from controller.policy import controller_from_config
    from env.frames import FRAME_SHAPE
    from rnn.model import build_mdn_rnn
    from scripts import config as config_module
    from vae.model import build_encoder

    config = config_module.build(preset, overrides={} if max_steps is None else {"env.max_steps": max_steps})
    controller = controller_from_config(config)
    agent = Agent(build_encoder(config.vae.z_size), build_mdn_rnn(config.rnn, config.vae.z_size, config.env.action_size), controller, sample_z=True)
    params = np.random.default_rng(0).normal(scale=0.3, size=(num_envs, controller.num_params)).astype(np.float32)
    hidden = np.zeros((num_envs, config.rnn.hidden_size), np.float32)
    frames = np.zeros((num_envs, *FRAME_SHAPE), np.uint8)
    agent.step(frames, np.zeros((num_envs, config.vae.z_size), np.float32), hidden, hidden, params, np.zeros(num_envs, np.float32))  # trace
    seeds = np.arange(num_envs, dtype=np.int64) + 12345

    batch_env = _TwinBatchEnv(config.env, num_envs)
    try:
        clock = _Clock()
        result = agent.run_episodes(batch_env, params, seeds)
        total_wall, total_cpu = clock.elapsed()
    finally:
        batch_env.close()
    steps = int(result["lengths"].sum())
    # the run with the agent is everything but the twin; steps/s ratio = env-only time / agent-run time
    agent_wall, agent_cpu = total_wall - batch_env.twin_wall, total_cpu - batch_env.twin_cpu
    name = f"CarRacing-v3 ({config.env.carracing_renderer} renderer)" if preset == "carracing" else "ViZDoom TakeCover"
    print(
        f"{name}, {num_envs} envs x {config.env.max_steps}-step cap ({steps:,} steps, mean episode {steps / num_envs:,.0f}), interleaved step by step: "
        f"env only {steps / batch_env.twin_wall:,.1f} steps/s wall, {steps / batch_env.twin_cpu:,.1f} steps/CPU-s"
    )
    print(
        f"  with agent: {steps / agent_wall:,.1f} steps/s wall -> ratio {batch_env.twin_wall / agent_wall:.3f}; "
        f"{steps / agent_cpu:,.1f} steps/CPU-s -> ratio {batch_env.twin_cpu / agent_cpu:.3f}; "
        f"the agent's own cost {(agent_cpu - batch_env.twin_cpu) / steps * 1000:.3f} ms CPU per env step"
    )
    if batch_env.differing_steps:
        print(f"  WARNING: the twin's frames differed on {batch_env.differing_steps} steps: the env-only figure is not the same work")
    return steps / agent_wall, batch_env.twin_wall / agent_wall, batch_env.twin_cpu / agent_cpu


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
    from controller.policy import ControllerShape, make_controller
    from rnn.config import RnnConfig
    from rnn.model import build_mdn_rnn

    model = build_mdn_rnn(RnnConfig(hidden_size=512, num_mixtures=5, restart_input=True, predict_done=True), 64, 1)
    controller = make_controller(ControllerShape("doom", 64, 512, 1, use_cell_state=True, use_bias=False))
    kernel, bias = model.head.get_weights()
    bias[-1] = -1e9  # done never fires: every row runs all `steps`
    model.head.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    dream = DreamScorer(model, rng.normal(size=(100, 64)).astype(np.float32), np.full((100, 64), -2.0, np.float32), 1.15, steps, controller)
    params = rng.normal(scale=0.1, size=(rows, controller.num_params)).astype(np.float32)
    dream.run(params[:2], np.arange(2))  # trace once
    start = time.process_time()
    dream.run(params, np.arange(rows, dtype=np.int64))
    return (time.process_time() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark controller", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=ControllerConfig().envs_per_worker, help="environments in lockstep (default: controller.envs_per_worker)")
    parser.add_argument("--carracing-steps", type=int, default=None, help="step cap per CarRacing episode timed (default: the config's, 1,000)")
    parser.add_argument("--doom-steps", type=int, default=300, help="step cap per Doom episode timed")
    parser.add_argument("--dream-steps", type=int, default=10, help="dream steps timed for 1,024 rows")
    arguments = parser.parse_args(argv)

    from scripts import stage

    stage.limit_threads(1)

    print(f"one process, one thread; {arguments.envs} environments in lockstep; V, M, C at paper sizes with random weights")

    car_agent, car_wall_ratio, car_cpu_ratio = _real_env_ratio("carracing", arguments.envs, arguments.carracing_steps)
    verdict = "met" if car_cpu_ratio >= 0.9 else "NOT met"
    print(f"  CarRacing ratio: {car_cpu_ratio:.3f} on CPU time, {car_wall_ratio:.3f} on wall time (goal >= 0.9 on CPU time: {verdict})")
    _, doom_wall_ratio, _ = _real_env_ratio("doom", arguments.envs, arguments.doom_steps)
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
