"""How much of a generation's ranking is noise, and how many episodes per candidate the next one
needs (controller.adaptive_rollouts; docs/design.md section 11).

Each candidate's R rollouts are split in two halves, the even-numbered and the odd-numbered ones
(an odd R leaves its last one out). If the ranking by R episodes were free of noise, the two
halves would rank the candidates alike; the split-half rank correlation rho_half is the Spearman
correlation between the candidates' two half means. Spearman-Brown turns it into the reliability
of the ranking by all R episodes (the correlation expected between two independent rankings by
R episodes each):

    reliability_R = 2 rho_half / (1 + rho_half)        (0 when rho_half <= 0)

The rule for the next generation's R, with target tau = controller.rank_reliability:
- reliability_R < tau: double R (if 2R <= controller.max_rollouts_per_candidate);
- rho_half >= tau (half of the episodes already reach it, since rho_half is the reliability of
  a ranking by R / 2): halve R (if R / 2 >= controller.rollouts_per_candidate);
- otherwise, or when rho_half is undefined (R < 2, or a half ranks every candidate alike), keep R.
The two conditions cannot both hold (reliability_R >= rho_half for rho_half >= 0), and between
them lies a band where R stays, so one generation's estimate does not flip R back and forth.
"""

import numpy as np


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of values (n,), tied values sharing the mean of their ranks."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.arange(len(values))
    _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(group, weights=ranks) / counts)[group]


def spearman(first: np.ndarray, second: np.ndarray) -> float | None:
    """Spearman's rank correlation (the Pearson correlation of the average ranks); None if either
    side has a single distinct value (no ranking to compare)."""
    first, second = average_ranks(first), average_ranks(second)
    first, second = first - first.mean(), second - second.mean()
    scale = np.sqrt(np.sum(first**2) * np.sum(second**2))
    if scale == 0:
        return None
    return float(np.clip(np.sum(first * second) / scale, -1.0, 1.0))


def split_half_correlation(returns: np.ndarray) -> float | None:
    """rho_half of returns (P, R): the rank correlation between the candidates' means over their
    even-numbered and their odd-numbered rollouts; None if R < 2 or it is undefined."""
    returns = np.asarray(returns, np.float64)
    half = returns.shape[1] // 2
    if half == 0:
        return None
    return spearman(returns[:, 0 : 2 * half : 2].mean(axis=1), returns[:, 1 : 2 * half : 2].mean(axis=1))


def reliability(correlation: float | None) -> float | None:
    """Spearman-Brown: the reliability of a ranking by twice the episodes whose halves correlate so."""
    if correlation is None:
        return None
    return 2 * correlation / (1 + correlation) if correlation > 0 else 0.0


def next_rollouts(rollouts: int, correlation: float | None, least: int, most: int, target: float) -> int:
    """The next generation's episodes per candidate, from this one's R and rho_half (module docstring)."""
    if correlation is None:
        return rollouts
    if reliability(correlation) < target and 2 * rollouts <= most:
        return 2 * rollouts
    if correlation >= target and rollouts // 2 >= least:
        return rollouts // 2
    return rollouts
