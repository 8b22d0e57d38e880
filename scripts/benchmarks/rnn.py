"""Benchmark: M's training step at Doom size (z 64, LSTM 512, 5 mixtures, restart input, done head).

Prints, all measured in this run:
- the matmul roofline: FLOP/s of a 2048^3 float32 matmul on the same threads;
- the train step's FLOPs per timestep, counted analytically: forward
  2 (I 4H + H 4H + H O) for the input projection, the recurrence and the MDN
  head (elementwise work left out), and the train step ~3x the forward pass;
- for each variant, train timesteps/s (B x L per step) and its ratio to the
  roofline (roofline timesteps/s = matmul FLOP/s / FLOPs per timestep); the goal
  is a ratio >= 0.6. Variants: the written-out backward pass (the training path)
  with tf.function or with XLA (jit_compile), and the reference loop left to
  automatic differentiation.

python -m scripts.benchmark rnn [--batch 100] [--length 500] [--threads 1] [--steps 3]
"""

import argparse
import time

GOAL_RATIO = 0.6


def flops_per_timestep(input_size: int, hidden_size: int, head_size: int) -> float:
    """Train-step FLOPs per timestep: 3 x forward, forward = 2 (I 4H + H 4H + H O)."""
    forward = 2.0 * (input_size * 4 * hidden_size + hidden_size * 4 * hidden_size + hidden_size * head_size)
    return 3.0 * forward


def matmul_flops_per_second(tf, size: int = 2048, repeats: int = 5) -> float:
    """Best of `repeats` timed size^3 matmuls (2 size^3 FLOPs each)."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    multiply = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    multiply(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        multiply(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def synthetic_batch(np, model, batch_size: int, length: int, seed: int = 0) -> dict:
    """A batch shaped like rnn/data.py's, with an episode start every ~300 steps."""
    rng = np.random.default_rng(seed)
    restart = (rng.uniform(size=(batch_size, length)) < 1 / 300).astype(np.float32)
    inputs = rng.normal(size=(batch_size, length, model.input_size)).astype(np.float32)
    inputs[..., -1] = restart
    ones = np.ones((batch_size, length), np.float32)
    return {
        "inputs": inputs,
        "restart": restart,
        "z_target": rng.normal(size=(batch_size, length, model.z_size)).astype(np.float32),
        "z_mask": ones,
        "step_mask": ones,
        "done_target": (rng.uniform(size=(batch_size, length)) < 1 / 300).astype(np.float32),
        "reward_target": np.zeros((batch_size, length), np.float32),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scripts.benchmark rnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100, help="windows per train step (Doom: 100)")
    parser.add_argument("--length", type=int, default=500, help="steps per window (Doom: 500)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (the project runs one per process)")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per variant (after one warm-up step)")
    parser.add_argument("--variants", default="fast,fast-xla,reference", help="comma-separated: fast, fast-xla, reference")
    arguments = parser.parse_args(argv)

    from scripts import stage

    stage.limit_threads(arguments.threads)
    import numpy as np
    import tensorflow as tf

    from rnn import model as model_module
    from rnn.config import RnnConfig
    from rnn.train import build_trainable

    rnn_config = RnnConfig(hidden_size=512, num_mixtures=5, restart_input=True, predict_done=True, batch_size=arguments.batch, sequence_length=arguments.length)
    roofline = matmul_flops_per_second(tf)
    model = build_trainable(rnn_config, 64, 1)
    flops = flops_per_timestep(model.input_size, model.hidden_size, model.head.units)
    roofline_timesteps = roofline / flops
    print(f"matmul 2048^3, {arguments.threads} thread(s): {roofline / 1e9:.0f} GFLOP/s")
    print(f"train step: {flops / 1e6:.2f} MFLOP per timestep (3 x forward) -> roofline {roofline_timesteps:,.0f} timesteps/s")
    batch = {key: tf.constant(value) for key, value in synthetic_batch(np, model, arguments.batch, arguments.length).items()}
    timesteps = arguments.batch * arguments.length
    recurrences = {"fast": model_module.lstm_recurrence, "fast-xla": model_module.lstm_recurrence, "reference": model_module.reference_recurrence}
    for variant in arguments.variants.split(","):
        original = model_module.lstm_recurrence
        model_module.lstm_recurrence = recurrences[variant]  # call() picks the recurrence at trace time
        try:
            train_function = tf.function(model.train_step, jit_compile=variant.endswith("-xla"))
            float(train_function(batch)["loss"])  # trace, compile, warm up
            start = time.perf_counter()
            for _ in range(arguments.steps):
                loss = train_function(batch)["loss"]
            float(loss)
            seconds = (time.perf_counter() - start) / arguments.steps
        finally:
            model_module.lstm_recurrence = original
        rate = timesteps / seconds
        print(
            f"{variant:>10}: batch {arguments.batch} x {arguments.length}, {seconds:.2f} s per step, {rate:,.0f} timesteps/s, "
            f"{rate / roofline_timesteps:.2f} of the roofline (goal {GOAL_RATIO})"
        )
