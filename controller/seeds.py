"""The episode seeds of training and evaluation, kept apart so a controller is never scored on
an episode it was trained on.

Training episode (generation g, candidate i, rollout r) uses a hash of (controller.seed, g, i, r)
in [2^31, 2^32); evaluation episode k uses evaluate.seed + k, below 2^31.
"""

import numpy as np

from common.errors import ArtifactError

TRAINING_SEED_BASE = 2**31  # training seeds lie in [2^31, 2^32); evaluation seeds below 2^31
MEAN_EVALUATION_TAG = 2**31  # candidate slot used for the periodic scoring of the mean


def episode_seed(seed: int, generation: int, candidate: int, rollout: int) -> int:
    """The seed of one training episode: a pure function of its coordinates, in [2^31, 2^32)."""
    value = np.random.SeedSequence([seed, generation, candidate, rollout]).generate_state(1, np.uint32)[0]
    return TRAINING_SEED_BASE + int(value) % TRAINING_SEED_BASE


def generation_seeds(seed: int, generation: int, population_size: int, rollouts: int) -> np.ndarray:
    """(P * R,) int64: job j = candidate j // R, rollout j % R."""
    return np.array([episode_seed(seed, generation, job // rollouts, job % rollouts) for job in range(population_size * rollouts)], np.int64)


def mean_evaluation_seeds(seed: int, generation: int, count: int) -> np.ndarray:
    """(count,) int64: the episodes the distribution mean is scored on after a generation."""
    return np.array([episode_seed(seed, generation, MEAN_EVALUATION_TAG, index) for index in range(count)], np.int64)


def evaluation_seeds(first_seed: int, episodes: int, option: str = "--set evaluate.seed") -> np.ndarray:
    """(episodes,) int64: first_seed + k, refused unless all lie in [0, 2^31); `option` is the
    command-line option the error tells the user to change."""
    seeds = first_seed + np.arange(episodes, dtype=np.int64)
    if episodes < 1 or first_seed < 0 or seeds[-1] >= TRAINING_SEED_BASE:
        raise ArtifactError(
            f"{option.removeprefix('--set ')}={first_seed} with {episodes} episodes: evaluation seeds must lie in [0, 2^31) "
            f"(training uses [2^31, 2^32)); pick a smaller {option}"
        )
    return seeds
