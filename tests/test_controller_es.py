"""CMA-ES wrapper: maximises, penalises large weights, resumes exactly."""

import numpy as np
import pytest

from controller.es import EvolutionStrategy


def shifted_sphere_return(candidates):
    """A 'return' to MAXIMISE: highest (0) at x = 0.5."""
    return -np.sum((candidates - 0.5) ** 2, axis=1)


def run(strategy, generations):
    history = []
    for _ in range(generations):
        candidates = strategy.ask()
        fitness = strategy.tell(shifted_sphere_return(candidates))
        history.append(fitness.mean())
    return history


def test_solves_a_shifted_sphere_and_fitness_goes_up():
    strategy = EvolutionStrategy(num_params=6, sigma_init=0.1, population_size=12, weight_decay=0.0, seed=0)
    history = run(strategy, 120)
    assert history[-1] > history[0]
    assert history[-1] > -1e-3
    np.testing.assert_allclose(strategy.mean, 0.5, atol=0.02)
    np.testing.assert_allclose(strategy.best_params, 0.5, atol=0.05)


def test_weight_decay_lowers_the_fitness_of_large_params():
    strategy = EvolutionStrategy(num_params=4, sigma_init=0.1, population_size=6, weight_decay=0.01, seed=0)
    small, large = np.full((1, 4), 0.1), np.full((1, 4), 10.0)
    assert strategy.fitness([5.0], large)[0] < strategy.fitness([5.0], small)[0]
    np.testing.assert_allclose(strategy.fitness([5.0], large), 5.0 - 0.01 * 100.0)
    # with decay, an optimum far from 0 is pulled back towards 0
    decayed = EvolutionStrategy(num_params=4, sigma_init=0.1, population_size=8, weight_decay=4.0, seed=0)
    run(decayed, 150)
    # maximise -(x-0.5)^2 - 4 x^2 / 4 = -(x-0.5)^2 - x^2  ->  x = 0.25
    np.testing.assert_allclose(decayed.mean, 0.25, atol=0.03)


def test_resume_k_plus_k_equals_2k_uninterrupted(tmp_path):
    def make():
        return EvolutionStrategy(num_params=10, sigma_init=0.1, population_size=8, weight_decay=0.01, seed=7)

    uninterrupted = make()
    run(uninterrupted, 10)
    first = make()
    run(first, 5)
    first.save(tmp_path / "es_state.pkl")
    np.random.seed(99)  # other code using NumPy's global generator must not matter
    np.random.rand(13)
    resumed = EvolutionStrategy.load(tmp_path / "es_state.pkl", num_params=10)
    assert resumed.generation == 5
    run(resumed, 5)
    np.testing.assert_array_equal(resumed.mean, uninterrupted.mean)
    assert resumed.sigma == uninterrupted.sigma
    np.testing.assert_array_equal(resumed.best_params, uninterrupted.best_params)


def test_a_non_finite_return_is_refused_naming_the_candidate_generation_and_seeds():
    strategy = EvolutionStrategy(num_params=3, sigma_init=0.1, population_size=4, weight_decay=0.0, seed=0)
    run(strategy, 2)
    candidates = strategy.ask()
    returns = shifted_sphere_return(candidates)
    returns[2] = np.nan
    returns[3] = np.inf
    seeds = np.arange(8, dtype=np.int64).reshape(4, 2) + 2**31
    with pytest.raises(
        ValueError,
        match=r"generation 2: candidate 2 of 4 has a non-finite mean return nan \(episode seeds \[2147483652, 2147483653\]\); 2 candidate\(s\) in all: \[2, 3\]",
    ):
        strategy.tell(returns, seeds)
    # nothing was told: the same generation can be scored again
    assert strategy.generation == 2
    np.testing.assert_array_equal(strategy.ask(), candidates)
    strategy.tell(shifted_sphere_return(candidates), seeds)
    assert strategy.generation == 3
