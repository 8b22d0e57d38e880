"""C's parameter vector: counts from the paper, the flat <-> (W, b) mapping, action ranges."""

import numpy as np
import pytest

from common.errors import ArtifactError
from controller import linear
from scripts import config as config_module

CARRACING = linear.ControllerShape("carracing", z_size=32, hidden_size=256, action_size=3, use_cell_state=False, use_bias=True)
DOOM = linear.ControllerShape("doom", z_size=64, hidden_size=512, action_size=1, use_cell_state=True, use_bias=False)


def test_parameter_counts_match_the_paper():
    assert CARRACING.num_params == 867
    assert DOOM.num_params == 1088
    assert linear.ControllerShape.from_config(config_module.build("carracing")) == CARRACING
    assert linear.ControllerShape.from_config(config_module.build("doom")) == DOOM


@pytest.mark.parametrize("shape", [CARRACING, DOOM])
def test_flat_layout_is_w_row_major_then_b(shape):
    params = np.arange(shape.num_params, dtype=np.float32)
    weights, biases = linear.unflatten(params, shape)
    assert weights.shape == (shape.feature_size, shape.action_size)
    feature, action = shape.feature_size - 2, shape.action_size - 1
    assert weights[feature, action] == feature * shape.action_size + action
    if shape.use_bias:
        np.testing.assert_array_equal(biases, params[shape.feature_size * shape.action_size :])
    else:
        assert biases is None


@pytest.mark.parametrize("shape", [CARRACING, DOOM])
def test_stack_agrees_with_unflatten(shape):
    population = np.random.default_rng(1).normal(size=(5, shape.num_params)).astype(np.float32)
    weights, biases = linear.stack(population, shape)
    assert weights.shape == (5, shape.feature_size, shape.action_size)
    assert (biases is None) == (not shape.use_bias)
    for row in range(5):
        row_weights, row_biases = linear.unflatten(population[row], shape)
        np.testing.assert_array_equal(weights[row], row_weights)
        if shape.use_bias:
            np.testing.assert_array_equal(biases[row], row_biases)


def test_action_ranges_after_mapping_to_the_environments():
    from env import actions as env_actions

    extremes = np.array([[-1, -1, -1], [1, 1, 1], [0, 0, 0], [0.3, -0.5, 0.7]], np.float32)
    for a in extremes:
        steer, gas, brake = env_actions.carracing_action(a)
        assert -1 <= steer <= 1 and 0 <= gas <= 1 and 0 <= brake <= 1
    # brake = clip(a2, 0, 1): no braking at a2 = 0 (docs/design.md section 5 item 3)
    assert env_actions.carracing_action(np.zeros(3, np.float32))[2] == 0
    assert [env_actions.doom_action(np.array([value], np.float32)) for value in (-0.9, 0.0, 0.9)] == [1, 0, 2]


def test_wrong_sizes_are_refused():
    with pytest.raises(ValueError, match="expected \\(867,\\)"):
        linear.unflatten(np.zeros(1088, np.float32), CARRACING)
    with pytest.raises(ValueError, match="expected \\(P, 1088\\)"):
        linear.stack(np.zeros((2, 867), np.float32), DOOM)


def test_save_load_checks_env_and_size(tmp_path):
    params = np.arange(CARRACING.num_params, dtype=np.float32)
    path = tmp_path / "best.npz"
    linear.save_params(path, params, CARRACING, generation=3, fitness=1.5)
    loaded, extras = linear.load_params(path, CARRACING)
    np.testing.assert_array_equal(loaded, params)
    assert extras == {"generation": 3, "fitness": 1.5}
    with pytest.raises(ArtifactError, match="best.npz.*another environment or size.*env_name='carracing'"):
        linear.load_params(path, DOOM)
    with pytest.raises(ArtifactError, match="missing"):
        linear.load_params(tmp_path / "mean.npz", CARRACING)
