"""C's kinds: parameter counts (the paper's for linear), the flat layout of each kind against a NumPy
reference of its action, the registry by controller.kind, and controller files of each kind."""

import numpy as np
import pytest

from common.errors import ArtifactError
from controller import store
from controller.policy import KINDS, ControllerShape, controller_from_config, make_controller
from scripts import config as config_module

CARRACING = ControllerShape("carracing", z_size=32, hidden_size=256, action_size=3, use_cell_state=False, use_bias=True)
DOOM = ControllerShape("doom", z_size=64, hidden_size=512, action_size=1, use_cell_state=True, use_bias=False)
SMALL_LINEAR = ControllerShape("carracing", z_size=5, hidden_size=7, action_size=3, use_cell_state=False, use_bias=True)
SMALL_DOOM = ControllerShape("doom", z_size=5, hidden_size=7, action_size=1, use_cell_state=True, use_bias=False)


def mlp(shape: ControllerShape, hidden: int) -> ControllerShape:
    return ControllerShape(**{**shape.__dict__, "kind": "mlp", "controller_hidden_size": hidden})


def reference_actions(shape: ControllerShape, features: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The documented layout, read with NumPy one row at a time (float64)."""
    features, params = features.astype(np.float64), params.astype(np.float64)
    size, actions = shape.feature_size, shape.action_size
    out = np.zeros((len(features), actions))
    for row, (feature, flat) in enumerate(zip(features, params, strict=True)):
        if shape.kind == "linear":  # W (F, A) row-major, then b
            weights = flat[: size * actions].reshape(size, actions)
            bias = flat[size * actions :] if shape.use_bias else 0.0
            out[row] = np.tanh(feature @ weights + bias)
        else:  # W1 (F, H), b1 (H,), W2 (H, A), then b2
            hidden = shape.controller_hidden_size
            w1 = flat[: size * hidden].reshape(size, hidden)
            b1 = flat[size * hidden : size * hidden + hidden]
            w2 = flat[size * hidden + hidden : size * hidden + hidden + hidden * actions].reshape(hidden, actions)
            b2 = flat[size * hidden + hidden + hidden * actions :] if shape.use_bias else 0.0
            assert len(flat) == size * hidden + hidden + hidden * actions + (actions if shape.use_bias else 0)
            out[row] = np.tanh(np.tanh(feature @ w1 + b1) @ w2 + b2)
    return out


def test_parameter_counts():
    # the paper's linear controllers
    assert make_controller(CARRACING).num_params == 867  # (32 + 256) * 3 + 3
    assert make_controller(DOOM).num_params == 1088  # (64 + 512 + 512) * 1
    # what fixes a controller (what its file records): the presets' are the paper's
    assert controller_from_config(config_module.build("carracing")).file_fields() == make_controller(CARRACING).file_fields()
    assert controller_from_config(config_module.build("doom")).file_fields() == make_controller(DOOM).file_fields()
    # the mlp: F*H + H + H*A (+ A)
    assert make_controller(mlp(CARRACING, 8)).num_params == 288 * 8 + 8 + 8 * 3 + 3 == 2339
    assert make_controller(mlp(DOOM, 8)).num_params == 1088 * 8 + 8 + 8 == 8720
    assert controller_from_config(config_module.build("doom", overrides={"controller.kind": "mlp", "controller.hidden_size": 3})).num_params == 1088 * 3 + 3 + 3
    assert set(KINDS) == {"linear", "mlp"}


@pytest.mark.parametrize("shape", [SMALL_LINEAR, SMALL_DOOM, mlp(SMALL_LINEAR, 4), mlp(SMALL_DOOM, 6)], ids=["linear-bias", "linear", "mlp-bias", "mlp"])
def test_act_matches_the_numpy_reference_of_the_layout(shape):
    """Each row acts with its own parameter row; the result is the layout's NumPy reference."""
    controller = make_controller(shape)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, shape.feature_size)).astype(np.float32)
    params = rng.normal(scale=0.5, size=(6, controller.num_params)).astype(np.float32)
    actions = controller.act(features, params).numpy()
    assert actions.shape == (6, shape.action_size) and actions.dtype == np.float32
    np.testing.assert_allclose(actions, reference_actions(shape, features, params), rtol=1e-5, atol=1e-6)
    # a row's action depends on its own parameters only
    swapped = controller.act(features[::-1].copy(), params[::-1].copy()).numpy()
    np.testing.assert_allclose(swapped, actions[::-1], rtol=1e-6, atol=1e-7)


def test_linear_act_is_the_papers_einsum_bit_for_bit():
    """The linear controller is the same computation as before kinds existed (tanh(einsum + b))."""
    import tensorflow as tf

    controller = make_controller(SMALL_LINEAR)
    rng = np.random.default_rng(2)
    features = rng.normal(size=(9, SMALL_LINEAR.feature_size)).astype(np.float32)
    params = rng.normal(size=(9, controller.num_params)).astype(np.float32)
    weight_count = SMALL_LINEAR.feature_size * SMALL_LINEAR.action_size
    weights = params[:, :weight_count].reshape(9, SMALL_LINEAR.feature_size, SMALL_LINEAR.action_size)
    expected = tf.tanh(tf.einsum("bf,bfa->ba", features, weights) + params[:, weight_count:]).numpy()
    np.testing.assert_array_equal(controller.act(features, params).numpy(), expected)


def test_features_are_z_h_or_z_c_h():
    z, h, c = (np.full((2, size), value, np.float32) for size, value in ((5, 1.0), (7, 2.0), (7, 3.0)))
    assert make_controller(SMALL_LINEAR).features(z, h, c).numpy()[0].tolist() == [1.0] * 5 + [2.0] * 7
    assert make_controller(mlp(SMALL_DOOM, 2)).features(z, h, c).numpy()[0].tolist() == [1.0] * 5 + [3.0] * 7 + [2.0] * 7


def test_action_ranges_after_mapping_to_the_environments():
    from env import actions as env_actions

    extremes = np.array([[-1, -1, -1], [1, 1, 1], [0, 0, 0], [0.3, -0.5, 0.7]], np.float32)
    for a in extremes:
        steer, gas, brake = env_actions.carracing_action(a)
        assert -1 <= steer <= 1 and 0 <= gas <= 1 and 0 <= brake <= 1
    # brake = clip(a2, 0, 1): no braking at a2 = 0 (docs/design.md section 5 item 3)
    assert env_actions.carracing_action(np.zeros(3, np.float32))[2] == 0
    assert [env_actions.doom_action(np.array([value], np.float32)) for value in (-0.9, 0.0, 0.9)] == [1, 0, 2]


def test_bad_kinds_sizes_and_rows_are_refused():
    with pytest.raises(ValueError, match="controller.kind='rnn': expected one of linear, mlp"):
        config_module.build("doom", overrides={"controller.kind": "rnn"})
    with pytest.raises(ValueError, match="controller.hidden_size=0"):
        config_module.build("carracing", overrides={"controller.kind": "mlp", "controller.hidden_size": 0})
    config_module.build("carracing", overrides={"controller.hidden_size": 0})  # the linear controller has no hidden layer
    with pytest.raises(ValueError, match=r"expected \(2, 1088\)"):
        make_controller(DOOM).check_rows(np.zeros((2, 867), np.float32), 2)


def test_the_describe_line_names_kind_formula_and_count():
    assert make_controller(CARRACING).describe() == "carracing: linear controller a = tanh(W [z, h] + b), z 32, h 256, actions 3, 867 parameters"
    assert make_controller(mlp(DOOM, 8)).describe() == (
        "doom: mlp controller a = tanh(W2 tanh(W1 [z, c, h] + b1)), 8 hidden units, z 64, h 512, actions 1, 8720 parameters"
    )


@pytest.mark.parametrize("shape", [CARRACING, mlp(CARRACING, 4)], ids=["linear", "mlp"])
def test_save_load_round_trip_records_the_kind(tmp_path, shape):
    controller = make_controller(shape)
    params = np.arange(controller.num_params, dtype=np.float32)
    path = tmp_path / "best.npz"
    store.save_params(path, params, controller, generation=3, fitness=1.5)
    loaded, extras = store.load_params(path, controller)
    np.testing.assert_array_equal(loaded, params)
    assert loaded.dtype == np.float32
    assert extras == {"generation": 3, "fitness": 1.5}
    with np.load(path) as archive:
        assert archive["kind"].item() == shape.kind
        assert ("controller_hidden_size" in archive.files) == (shape.kind == "mlp")
        if shape.kind == "mlp":
            assert archive["controller_hidden_size"].item() == 4


def test_files_of_another_env_kind_or_size_are_refused(tmp_path):
    linear, small_mlp, wider_mlp = make_controller(CARRACING), make_controller(mlp(CARRACING, 4)), make_controller(mlp(CARRACING, 5))
    linear_path, mlp_path = tmp_path / "best.npz", tmp_path / "mean.npz"
    store.save_params(linear_path, np.zeros(linear.num_params, np.float32), linear)
    store.save_params(mlp_path, np.zeros(small_mlp.num_params, np.float32), small_mlp)
    with pytest.raises(ArtifactError, match="best.npz.*another environment, kind or size.*env_name='carracing'"):
        store.load_params(linear_path, make_controller(DOOM))
    with pytest.raises(ArtifactError, match=r"best.npz.*kind='linear' \(expected 'mlp'\)"):
        store.load_params(linear_path, small_mlp)
    with pytest.raises(ArtifactError, match=r"mean.npz.*kind='mlp' \(expected 'linear'\)"):
        store.load_params(mlp_path, linear)
    with pytest.raises(ArtifactError, match=r"mean.npz.*controller_hidden_size=4 \(expected 5\).*retrain it"):
        store.load_params(mlp_path, wider_mlp)
    with pytest.raises(ArtifactError, match="missing"):
        store.load_params(tmp_path / "other.npz", linear)


def test_a_file_from_before_kinds_loads_as_linear_only(tmp_path):
    """pretrained/*/controller/*.npz record no kind: they are linear controllers."""
    linear = make_controller(CARRACING)
    params = np.random.default_rng(0).normal(size=linear.num_params).astype(np.float32)
    path = tmp_path / "mean.npz"
    fields = {key: np.asarray(value) for key, value in linear.file_fields().items() if key != "kind"}
    np.savez(path, params=params, generation=np.asarray(7), **fields)
    loaded, extras = store.load_params(path, linear)
    np.testing.assert_array_equal(loaded, params)
    assert extras == {"generation": 7}
    with pytest.raises(ArtifactError, match=r"kind='linear' \(expected 'mlp'\)"):
        store.load_params(path, make_controller(mlp(CARRACING, 4)))


@pytest.mark.parametrize("preset", ["doom", "carracing"])
def test_the_committed_agents_files_load_as_linear(preset):
    from pathlib import Path

    from scripts import stage

    folder = Path(__file__).resolve().parents[1] / "pretrained" / preset
    config = stage.build_config(folder, None, [])  # read-only: the committed config.json as a stage reads it
    controller = controller_from_config(config)
    for name in ("best.npz", "mean.npz"):
        params, _ = store.load_params(folder / "controller" / name, controller)
        assert params.shape == (controller.num_params,) == ({"doom": 1088, "carracing": 867}[preset],)
