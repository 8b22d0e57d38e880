"""Tiny run directories for the controller's tests: random-weight V and M drawn from a seed, a
synthetic first-frame table and done markers, so train_controller and evaluate run in seconds and
every test that plays them sees the same episodes on every run."""

from pathlib import Path

import numpy as np

from scripts import stage

TINY_DOOM = [
    "vae.z_size=8",
    "rnn.hidden_size=16",
    "rnn.num_mixtures=2",
    "controller.population_size=4",
    "controller.rollouts_per_candidate=2",
    "controller.num_generations=2",
    "controller.max_dream_steps=25",
    "controller.eval_every=1",
    "controller.eval_rollouts=3",
    "env.max_steps=30",
    "evaluate.episodes=3",
    "controller.envs_per_worker=2",
]

TINY_CARRACING = [
    "vae.z_size=8",
    "rnn.hidden_size=16",
    "rnn.num_mixtures=2",
    "controller.population_size=4",
    "controller.rollouts_per_candidate=1",
    "controller.num_generations=1",
    "controller.eval_every=0",
    "env.max_steps=8",
    "evaluate.episodes=3",
    "controller.envs_per_worker=2",
]


def make_run(run_dir: Path, preset: str, assignments: list[str], with_vae: bool = True, seed: int = 0) -> object:
    """config.json + random V (if asked) and M weights drawn from `seed` + initial_z + done markers;
    returns the config. Keras draws each layer's initializer seed from Python's global generator, so
    unseeded weights (and the real episodes C plays through them) would differ from run to run."""
    import keras

    from rnn.model import build_mdn_rnn
    from rnn.store import WEIGHTS_NAME
    from vae.model import build_decoder, build_encoder
    from vae.series import write_initial_z

    run_dir.mkdir(parents=True, exist_ok=True)
    config = stage.resolve_config(run_dir, preset, assignments)
    z_size = config.vae.z_size
    keras.utils.set_random_seed(seed)
    model = build_mdn_rnn(config.rnn, z_size, config.env.action_size)
    if config.rnn.predict_done:
        # a done logit mostly below 0: dream episodes of a few to a few dozen steps
        bias = model.head.bias.numpy()
        bias[z_size * 3 * config.rnn.num_mixtures] = -2.0
        model.head.bias.assign(bias)
    (run_dir / "rnn").mkdir(exist_ok=True)
    model.save_weights(run_dir / "rnn" / WEIGHTS_NAME)
    rng = np.random.default_rng(0)
    write_initial_z(run_dir / "series", rng.normal(size=(5, z_size)).astype(np.float32), np.full((5, z_size), -2.0, np.float32))
    if with_vae:
        (run_dir / "vae").mkdir(exist_ok=True)
        build_encoder(z_size).save_weights(run_dir / "vae" / "encoder.weights.h5")
        build_decoder(z_size).save_weights(run_dir / "vae" / "decoder.weights.h5")
        stage.mark_done(run_dir, "train_vae", config)
    stage.mark_done(run_dir, "extract", config)
    stage.mark_done(run_dir, "train_rnn", config)
    return config


def vary_dream_deaths(run_dir: Path, config, seed: int = 0) -> None:
    """Replace the tiny M by one drawn from `seed` (the same on every call) whose done logit swings
    with its state (kernel x 10, bias -1), so dream episodes end at steps that depend on the
    controller and the seed (make_run's M, its done logit near -2, mostly lives to the step cap)."""
    import keras

    from rnn.model import build_mdn_rnn
    from rnn.store import WEIGHTS_NAME

    keras.utils.set_random_seed(seed)
    model = build_mdn_rnn(config.rnn, config.vae.z_size, config.env.action_size)
    done = config.vae.z_size * 3 * config.rnn.num_mixtures  # the done logit's column in M's head
    kernel, bias = model.head.kernel.numpy(), model.head.bias.numpy()
    kernel[:, done] *= 10.0
    bias[done] = -1.0
    model.head.kernel.assign(kernel)
    model.head.bias.assign(bias)
    model.save_weights(run_dir / "rnn" / WEIGHTS_NAME)
