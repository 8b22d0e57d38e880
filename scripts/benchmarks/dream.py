"""Benchmark: the batched dream at Doom size (paper, section 5; docs/design.md section 6).

M with z 64, LSTM 512, 5 mixtures, restart input and done head (random weights),
tau 1.15, a fixed random linear controller [z, c, h] -> a traced into the dream's
step (controller/dream_scoring.py: one compiled call per step). Prints
- agent-steps/s of the whole batch (B = 64 x 16 = 1,024 rows alive),
- the same with actions given from outside each step (rnn/dream.py BatchedDream.step(actions),
  random actions held for 1-10 steps, as the fidelity report drives M),
- the time of one full generation, worst case: every one of the B episodes
  lasting all max_steps (done never fires). With R processes (MPI ranks,
  one thread each) running B/R rows each at once, a generation takes the
  time of one rank's share, which is what is measured,
- and the ratio to the goal (<= 60 s per generation on 2 cores; the authors'
  64-core machine needed about 80 s).

python -m scripts.benchmark dream [--ranks 2] [--max-steps 2100] [--batch 1024]
"""

import argparse
import time


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark dream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024, help="agents per generation (population x rollouts)")
    parser.add_argument("--ranks", type=int, default=2, help="processes sharing the generation (one per core)")
    parser.add_argument("--max-steps", type=int, default=2100, help="dream episode cap")
    parser.add_argument("--throughput-steps", type=int, default=100, help="steps timed for the agent-steps/s figure")
    parser.add_argument("--goal-seconds", type=float, default=60.0)
    arguments = parser.parse_args(argv)

    from scripts import stage

    stage.limit_threads(1)
    import numpy as np

    from controller.dream_scoring import DreamScorer
    from controller.policy import ControllerShape, make_controller
    from rnn.config import RnnConfig
    from rnn.dream import BatchedDream
    from rnn.model import build_mdn_rnn

    z_size, action_size = 64, 1
    model = build_mdn_rnn(RnnConfig(hidden_size=512, num_mixtures=5, restart_input=True, predict_done=True), z_size, action_size)
    kernel, bias = model.head.get_weights()
    bias[-1] = -1e9  # done never fires: every episode runs to the cap (the worst case)
    model.head.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    initial_mu = rng.normal(size=(1000, z_size)).astype(np.float32)
    initial_logvar = np.full((1000, z_size), -2.0, np.float32)

    controller = make_controller(ControllerShape("doom", z_size, 512, action_size, use_cell_state=True, use_bias=False))

    def timed_run(num_rows, num_steps):
        scorer = DreamScorer(model, initial_mu, initial_logvar, 1.15, num_steps, controller)
        params = rng.normal(scale=0.1, size=(num_rows, controller.num_params)).astype(np.float32)
        scorer.run(params[:2], np.arange(2))  # trace once
        start = time.perf_counter()
        scorer.run(params, np.arange(num_rows, dtype=np.int64))
        return time.perf_counter() - start

    def timed_actions_run(num_rows, num_steps):
        """Actions from outside: random, each row's held for 1-10 steps (numpy work included)."""
        dream = BatchedDream(model, initial_mu, initial_logvar, 1.15, num_steps)
        dream.reset(np.arange(2))
        dream.step(np.zeros((2, action_size), np.float32))  # trace once
        actions = rng.uniform(-1, 1, (num_rows, action_size)).astype(np.float32)
        hold = rng.integers(1, 11, num_rows)
        start = time.perf_counter()
        dream.reset(np.arange(num_rows, dtype=np.int64))
        while not dream.finished:
            change = dream.step_count % hold == 0
            actions[change] = rng.uniform(-1, 1, (int(change.sum()), action_size))
            dream.step(actions[dream.rows])
        return time.perf_counter() - start

    def report(label, seconds):
        rate = arguments.batch * arguments.throughput_steps / seconds
        print(f"{label}, B={arguments.batch}, 1 thread: {rate:,.0f} agent-steps/s ({seconds / arguments.throughput_steps * 1000:.1f} ms per step)")
        return rate

    agent_steps_per_second = report("batched dream, controller in the step", timed_run(arguments.batch, arguments.throughput_steps))
    given_actions_per_second = report("batched dream, actions given each step", timed_actions_run(arguments.batch, arguments.throughput_steps))

    share = -(-arguments.batch // arguments.ranks)
    generation = timed_run(share, arguments.max_steps)
    print(
        f"one generation ({arguments.batch} episodes x {arguments.max_steps} steps, worst case), {arguments.ranks} ranks x 1 thread "
        f"({share} rows each): {generation:.1f} s; goal {arguments.goal_seconds:.0f} s -> ratio {generation / arguments.goal_seconds:.2f} "
        f"(authors: ~80 s on 64 cores)"
    )
    return {"agent_steps_per_second": agent_steps_per_second, "given_actions_steps_per_second": given_actions_per_second, "generation_seconds": generation}


if __name__ == "__main__":
    main()
