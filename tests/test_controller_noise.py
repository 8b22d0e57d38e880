"""controller/noise.py: the ranking's split-half reliability and the rule that sets the episodes per candidate."""

import numpy as np
import pytest

from controller import noise


def reference_spearman(first, second):
    """Without ties: 1 - 6 sum d^2 / (n (n^2 - 1)), d the difference of the ranks."""
    n = len(first)
    difference = np.argsort(np.argsort(first)) - np.argsort(np.argsort(second))
    return 1 - 6 * np.sum(difference**2) / (n * (n**2 - 1))


def test_average_ranks_share_the_mean_rank_of_ties():
    np.testing.assert_array_equal(noise.average_ranks([10.0, 30.0, 20.0]), [0, 2, 1])
    np.testing.assert_array_equal(noise.average_ranks([5.0, 1.0, 5.0, 5.0, 0.0]), [3, 1, 3, 3, 0])


def test_spearman_matches_the_rank_difference_formula_and_handles_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        first, second = rng.normal(size=12), rng.normal(size=12)
        assert noise.spearman(first, second) == pytest.approx(reference_spearman(first, second), abs=1e-12)
    assert noise.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert noise.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: the Pearson correlation of the average ranks [0.5, 0.5, 2, 3] and [0, 1, 2, 3]
    assert noise.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([0.5, 0.5, 2, 3], [0, 1, 2, 3])[0, 1])
    assert noise.spearman([7, 7, 7], [1, 2, 3]) is None  # one side ranks nothing


def test_split_half_correlation_compares_the_even_and_the_odd_rollouts():
    skill = np.array([[100.0], [300.0], [200.0], [0.0]])
    consistent = skill + np.array([[0.0, 1.0, 2.0, 3.0]])  # every half ranks the candidates alike
    assert noise.split_half_correlation(consistent) == pytest.approx(1.0)
    # the even rollouts rank 0 < 1 < 2 < 3, the odd ones the reverse
    reversed_halves = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0], [3.0, 0.0]])
    assert noise.split_half_correlation(reversed_halves) == pytest.approx(-1.0)
    # an odd R leaves its last rollout out: it could otherwise reverse the ranking
    with_a_third = np.concatenate([consistent[:, :2], np.array([[900.0], [-900.0], [0.0], [5.0]])], axis=1)
    assert noise.split_half_correlation(with_a_third) == pytest.approx(1.0)
    assert noise.split_half_correlation(np.ones((4, 1))) is None  # R = 1: no halves
    assert noise.split_half_correlation(np.ones((4, 2))) is None  # every candidate alike


def test_reliability_is_spearman_brown_for_twice_the_episodes():
    assert noise.reliability(0.5) == pytest.approx(2 / 3)
    assert noise.reliability(1.0) == 1.0
    assert noise.reliability(0.0) == 0.0 and noise.reliability(-0.4) == 0.0
    assert noise.reliability(None) is None


@pytest.mark.parametrize(
    ("rollouts", "correlation", "expected", "why"),
    [
        (2, 0.3, 4, "reliability 0.46 < 0.8: double"),
        (4, 0.6, 8, "reliability 0.75 < 0.8: double"),
        (16, 0.3, 16, "already at the most"),
        (4, 0.7, 4, "reliability 0.82 >= 0.8 but the half's 0.7 < 0.8: keep"),
        (8, 0.85, 4, "half of the episodes reach 0.8: halve"),
        (2, 0.95, 2, "already at the least"),
        (4, None, 4, "no measure: keep"),
        (4, -0.2, 8, "worse than chance: double"),
    ],
)
def test_next_rollouts_doubles_halves_or_keeps(rollouts, correlation, expected, why):
    assert noise.next_rollouts(rollouts, correlation, least=2, most=16, target=0.8) == expected, why


def test_the_rule_settles_where_the_ranking_reaches_the_target():
    """Candidates whose true returns spread by 100 (std) and whose episodes vary by 120 around
    each one's own mean: one episode's reliability is 1 / (1 + 1.44) = 0.41, R episodes'
    R x 0.41 / (1 + (R - 1) x 0.41): 0.74 at R = 4, 0.85 at R = 8 (a little less by ranks). Measured
    over 2,000 candidates, the rule climbs from 2 to 8 and stays there: at 8 the ranking reaches
    0.8 but half of its episodes do not."""
    rng = np.random.default_rng(1)
    rollouts, history = 2, []
    for _ in range(6):
        returns = rng.normal(scale=100.0, size=(2000, 1)) + rng.normal(scale=120.0, size=(2000, rollouts))
        rollouts = noise.next_rollouts(rollouts, noise.split_half_correlation(returns), least=2, most=32, target=0.8)
        history.append(rollouts)
    assert history == [4, 8, 8, 8, 8, 8]
