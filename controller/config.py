"""Config sections for C: the controller, CMA-ES training and evaluation."""

import dataclasses

from common.settings import setting


@dataclasses.dataclass
class ControllerConfig:
    mode: str = setting("real", "where candidates are scored: 'real' environment (CarRacing) or 'dream' (Doom)", "", "paper, sections 4 and 5")
    use_cell_state: bool = setting(False, "controller input [z, c, h] instead of [z, h] (Doom)", "", "authors' code (Doom)")
    use_bias: bool = setting(True, "a = tanh(W x + b) with a bias (CarRacing) or without (Doom)", "", "authors' code")
    sample_z: bool = setting(True, "in the real env, z sampled from (mu, sigma) rather than z = mu", "", "paper")
    temperature: float = setting(1.15, "tau for the dream (paper table 1.15, authors' code 1.25)", "1", "paper, section 5 table")
    max_dream_steps: int = setting(2100, "dream episode cap", "steps", "paper, section 5")
    done_rule: str = setting(
        "threshold",
        "how a dream episode ends: 'threshold' (M's done logit > 0) or 'sampled' (death drawn each step with M's calibrated "
        "probability sigmoid(scale (logit - log rnn.done_weight) + offset), from rnn/calibration.json: rnn/dream.py, rnn/calibration.py)",
        "",
        "authors' code (threshold); zacwellmer/WorldModels samples death",
    )
    population_size: int = setting(64, "CMA-ES candidates per generation", "candidates", "paper, section 4.3")
    rollouts_per_candidate: int = setting(16, "episodes per candidate; fitness is their mean return", "episodes", "paper, section 4.3")
    sigma_init: float = setting(0.1, "CMA-ES initial step size, x0 = 0", "1", "authors' code")
    weight_decay: float = setting(0.01, "fitness -= weight_decay * mean(params^2)", "1", "authors' code")
    num_generations: int = setting(2000, "CMA-ES generations", "generations", "paper, figure 18", locked=False)
    eval_every: int = setting(25, "score the distribution mean every this many generations", "generations", "authors' code", locked=False)
    eval_rollouts: int = setting(100, "episodes for that score", "episodes", "authors' code", locked=False)
    envs_per_worker: int = setting(
        32,
        "real environments a worker steps in lockstep (CarRacing 32: more rows share each call of V + M + C; Doom 16: each is an engine process)",
        "environments",
        "docs/benchmarks.md (controller)",
        locked=False,
    )
    seed: int = setting(0, "seed of CMA-ES and of the training episodes", "seed")


@dataclasses.dataclass
class EvaluateConfig:
    episodes: int = setting(100, "fresh real episodes", "episodes", "paper, section 4.4", locked=False)
    seed: int = setting(1_000_000, "episode i uses seed seed + i (disjoint from training seeds)", "seed", locked=False)
    params: str = setting("mean", "'best' candidate or the distribution 'mean'", "", locked=False)
    video: bool = setting(True, "write an MP4 of the first episode with V's reconstruction beside it", "", locked=False)


@dataclasses.dataclass
class IterateConfig:
    """Iterative training (paper, section 6): rounds of real episodes with the current C, M fine-tuned on them, C retrained in the dream."""

    episodes_per_round: int = setting(
        1000,
        "real episodes collected with the current controller in each round (the paper gives no number)",
        "episodes",
        "paper, section 6; this project's choice",
    )
    action_noise: float = setting(
        0.1,
        "std of the Gaussian noise added to C's output before the env's action mapping (then clipped to [-1, 1]); "
        "exploration, so M sees what follows actions C does not take",
        "action units",
        "paper, section 6; this project's choice",
    )
    rnn_epochs: int = setting(
        5, "epochs of M's fine-tune per round, from the previous round's weights", "epochs", "paper, section 6; this project's choice", locked=False
    )
    controller_generations: int = setting(
        50, "CMA-ES generations per round, from the previous round's distribution mean", "generations", "paper, section 6; this project's choice", locked=False
    )
    eval_episodes: int = setting(100, "fresh real episodes scoring each round's mean (seeds evaluate.seed + k)", "episodes", "paper, section 4.4", locked=False)
    seed: int = setting(0, "seed of the collection episodes (their env seeds and action noise)", "seed")
