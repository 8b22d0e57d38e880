"""Config sections for C: the controller, CMA-ES training and evaluation."""

import dataclasses

from common.settings import setting


@dataclasses.dataclass
class ControllerConfig:
    kind: str = setting(
        "linear",
        "C's architecture (controller/policy/): 'linear' a = tanh(W f + b), the paper's; 'mlp' a = tanh(W2 tanh(W1 f + b1) + b2)",
        "",
        "paper, section 3.3 (linear)",
    )
    hidden_size: int = setting(
        8,
        "hidden units of the mlp controller (not used by linear); CMA-ES's covariance grows with the square of the parameter count",
        "units",
        "this project's choice",
    )
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
    shared_episodes: bool = setting(
        False,
        "every candidate of a generation plays the same rollouts_per_candidate episodes (common random numbers): "
        "the track's or game's own difficulty then drops out of the ranking; off: each candidate its own episodes",
        "",
        "this project's choice (the authors' --antithetic shared the seeds of each pair)",
    )
    adaptive_rollouts: bool = setting(
        False,
        "grow the episodes per candidate when the ranking is noise: R starts at rollouts_per_candidate (even, >= 2), doubles "
        "(up to max_rollouts_per_candidate) when the split-half reliability of the ranking is below rank_reliability, "
        "halves (down to rollouts_per_candidate) when half of the episodes already reached it (controller/noise.py)",
        "",
        "this project's choice (docs/design.md section 11)",
    )
    max_rollouts_per_candidate: int = setting(16, "the most episodes per candidate adaptive_rollouts may reach", "episodes", "paper, section 4.3 (its 16)")
    rank_reliability: float = setting(
        0.8,
        "adaptive_rollouts' target: the rank correlation between two independent rankings of the same candidates by R episodes each",
        "1",
        "this project's choice",
    )
    eval_every: int = setting(25, "score the distribution mean every this many generations", "generations", "authors' code", locked=False)
    eval_rollouts: int = setting(100, "episodes for that score", "episodes", "authors' code", locked=False)
    eval_set: str = setting(
        "fresh",
        "the episodes of that score: 'validation', the same eval_rollouts episodes every time (seeds 2^29 + k), and the best-scoring "
        "mean is kept as controller/selected.npz; 'fresh', new episodes every time, nothing selected",
        "",
        "authors' code (the mean scored on the same 1,024 tracks, the best kept)",
    )
    init_from: str = setting(
        "",
        "CMA-ES's x0: '' for zeros, or 'DIR:KIND', the saved controller KIND (mean, best or selected) of run DIR, an absolute path "
        "(train_controller --init-from DIR[:KIND] sets it)",
        "",
        "this project's choice",
    )
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
    params: str = setting("mean", "'best' candidate, the distribution 'mean', or the 'selected' mean (controller.eval_set=validation)", "", locked=False)
    video: bool = setting(True, "write an MP4 of the first episode with V's reconstruction beside it", "", locked=False)
