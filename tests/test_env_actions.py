"""Controller output -> env action (docs/design.md section 5, items 3 and 4)."""

import numpy as np
import pytest

from env.actions import DOOM_LEFT, DOOM_NOOP, DOOM_RIGHT, carracing_action, carracing_actions, doom_action, doom_actions


def test_carracing_mapping_values_and_dtype():
    action = carracing_action(np.array([-0.5, 0.0, 0.25]))
    assert action.dtype == np.float32 and action.shape == (3,)
    np.testing.assert_allclose(action, [-0.5, 0.5, 0.25])
    np.testing.assert_allclose(carracing_action([1.0, 1.0, 1.0]), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(carracing_action([-1.0, -1.0, -1.0]), [-1.0, 0.0, 0.0])


def test_carracing_brake_is_clipped_not_rescaled():
    # At rest (a2 = 0) there is no braking; (a2 + 1) / 2 would brake half way.
    assert carracing_action([0.0, 0.0, 0.0])[2] == 0.0
    assert carracing_action([0.0, 0.0, -0.7])[2] == 0.0
    assert carracing_action([0.0, 0.0, 0.7])[2] == pytest.approx(0.7)


def test_carracing_vectorised_matches_single():
    outputs = np.random.default_rng(0).uniform(-1, 1, size=(50, 3)).astype(np.float32)
    batch = carracing_actions(outputs)
    assert batch.shape == (50, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.stack([carracing_action(row) for row in outputs]))
    with pytest.raises(ValueError, match="3 controller outputs"):
        carracing_actions(np.zeros((4, 2)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1.0, DOOM_LEFT),
        (-0.34, DOOM_LEFT),
        (-1 / 3, DOOM_NOOP),
        (-0.33, DOOM_NOOP),
        (0.0, DOOM_NOOP),
        (0.33, DOOM_NOOP),
        (1 / 3, DOOM_NOOP),
        (0.34, DOOM_RIGHT),
        (1.0, DOOM_RIGHT),
    ],
)
def test_doom_thresholds(value, expected):
    assert doom_action(value) == expected
    assert doom_action(np.array([value], dtype=np.float32)) == expected
    assert isinstance(doom_action(value), int)


def test_doom_codes_and_vectorised():
    assert (DOOM_NOOP, DOOM_LEFT, DOOM_RIGHT) == (0, 1, 2)
    values = np.random.default_rng(1).uniform(-1, 1, size=200).astype(np.float32)
    expected = [doom_action(value) for value in values]
    np.testing.assert_array_equal(doom_actions(values), expected)
    np.testing.assert_array_equal(doom_actions(values[:, None]), expected)
