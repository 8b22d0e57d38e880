"""The episode seeds of every stage, kept apart so a controller is never scored on an episode it
was trained on, nor picked on the episodes it is finally scored on.

The seed map (ViZDoom takes a seed modulo 2^32, so every range lies in [0, 2^32)):

    [0, 2^29)        generate's episodes (generate.base_seed + i) and evaluation's
                     (evaluate.seed + k, evaluate --seed N: N + k); refused from 2^29 up
    [2^29, 2^30)     validation: episode k of the fixed set the distribution mean is scored on
                     (controller.eval_set=validation) is 2^29 + k, the same in every run
    [2^30, 2^31)     iterative training's collection episodes (workflows/iterate.py)
    [2^31, 2^32)     CMA-ES's training episodes, and the fresh episodes the mean is scored on
                     (controller.eval_set=fresh): hashes of (controller.seed, generation, ...)

Training episode (generation g, candidate i, rollout r) uses a hash of (controller.seed, g, i, r);
with controller.shared_episodes every candidate of generation g plays rollout r on the same
seed, a hash of (controller.seed, g, SHARED_EPISODES_TAG, r) (common random numbers: the
track's or game's own difficulty is the same for every candidate, so it drops out of the ranking).
"""

import numpy as np

from common.errors import ArtifactError

TRAINING_SEED_BASE = 2**31  # training seeds lie in [2^31, 2^32)
VALIDATION_SEED_BASE = 2**29  # validation seeds lie in [2^29, 2^30); evaluation seeds below
VALIDATION_SEED_END = 2**30  # where iterative training's collection seeds begin (workflows/iterate.py)
MEAN_EVALUATION_TAG = 2**31  # candidate slot used for the periodic scoring of the mean on fresh episodes
SHARED_EPISODES_TAG = 2**31 + 1  # candidate slot of the episodes every candidate shares


def episode_seed(seed: int, generation: int, candidate: int, rollout: int) -> int:
    """The seed of one training episode: a pure function of its coordinates, in [2^31, 2^32)."""
    value = np.random.SeedSequence([seed, generation, candidate, rollout]).generate_state(1, np.uint32)[0]
    return TRAINING_SEED_BASE + int(value) % TRAINING_SEED_BASE


def generation_seeds(seed: int, generation: int, population_size: int, rollouts: int, shared: bool = False) -> np.ndarray:
    """(P * R,) int64: job j = candidate j // R, rollout j % R. shared: rollout r has one seed for
    every candidate (it depends on the generation and r only)."""
    if shared:
        return np.tile([episode_seed(seed, generation, SHARED_EPISODES_TAG, rollout) for rollout in range(rollouts)], population_size).astype(np.int64)
    return np.array([episode_seed(seed, generation, job // rollouts, job % rollouts) for job in range(population_size * rollouts)], np.int64)


def mean_evaluation_seeds(seed: int, generation: int, count: int) -> np.ndarray:
    """(count,) int64: fresh episodes the distribution mean is scored on after a generation."""
    return np.array([episode_seed(seed, generation, MEAN_EVALUATION_TAG, index) for index in range(count)], np.int64)


def validation_seeds(count: int) -> np.ndarray:
    """(count,) int64: the fixed validation episodes 2^29 + k, the same after every generation and in every run."""
    if not 1 <= count <= VALIDATION_SEED_END - VALIDATION_SEED_BASE:
        raise ValueError(f"{count} validation episodes: expected 1 to 2^29")
    return VALIDATION_SEED_BASE + np.arange(count, dtype=np.int64)


def mean_score_seeds(eval_set: str, seed: int, generation: int, count: int) -> np.ndarray:
    """The episodes the distribution mean is scored on after `generation`: the fixed validation
    set (eval_set 'validation') or fresh ones ('fresh')."""
    if eval_set == "validation":
        return validation_seeds(count)
    if eval_set == "fresh":
        return mean_evaluation_seeds(seed, generation, count)
    raise ValueError(f"controller.eval_set={eval_set!r}: expected 'fresh' or 'validation'")


def evaluation_seeds(first_seed: int, episodes: int, option: str = "--set evaluate.seed") -> np.ndarray:
    """(episodes,) int64: first_seed + k, refused unless all lie in [0, 2^31) and below the
    validation seeds; `option` is the command-line option the error tells the user to change."""
    seeds = first_seed + np.arange(episodes, dtype=np.int64)
    name = option.removeprefix("--set ")
    if episodes < 1 or first_seed < 0 or seeds[-1] >= TRAINING_SEED_BASE:
        raise ArtifactError(
            f"{name}={first_seed} with {episodes} episodes: evaluation seeds must lie in [0, 2^31) (training uses [2^31, 2^32)); pick a smaller {option}"
        )
    if seeds[-1] >= VALIDATION_SEED_BASE:
        raise ArtifactError(
            f"{name}={first_seed} with {episodes} episodes: evaluation seeds must lie below 2^29 = {VALIDATION_SEED_BASE:,}, "
            f"where the validation episodes that pick the agent begin (controller/seeds.py); pick a smaller {option}"
        )
    return seeds
