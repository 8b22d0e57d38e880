"""workflows/behaviour.py: action statistics against hand-counted values, and its errors."""

import numpy as np
import pytest

from workflows.behaviour import action_stats, describe


def test_doom_statistics_equal_a_hand_count():
    # episode 1: left, right, no-op, no-op (a = 1/3 exactly is a no-op), right; episode 2: left, left
    first = np.array([[-1.0], [0.95], [0.1], [1 / 3], [0.5]])
    second = np.array([[-0.5], [-0.92]])
    stats = action_stats([first, second], "doom")
    every = np.concatenate([first, second])[:, 0]
    assert stats["steps"] == 7
    assert stats["mean"] == pytest.approx([every.mean()]) and stats["std"] == pytest.approx([every.std()])
    assert stats["saturated"] == pytest.approx([3 / 7])  # -1.0, 0.95, -0.92
    # changes within episodes only: |1.95|, |0.85|, |0.2333|, |0.1667| and |0.42|; not 0.5 -> -0.5 across the episodes
    assert stats["mean_abs_change"] == pytest.approx([(1.95 + 0.85 + (1 / 3 - 0.1) + (0.5 - 1 / 3) + 0.42) / 5])
    assert stats["discrete"] == pytest.approx({"noop": 2 / 7, "left": 3 / 7, "right": 2 / 7})
    # switches: left->right, right->noop, noop->noop, noop->right | left->left: 3 of 5 pairs
    assert stats["switches_per_100_steps"] == pytest.approx(60.0)
    assert describe(stats) == "noop 29%, left 43%, right 29%; 60.0 switches per 100 steps"


def test_carracing_statistics_are_per_output_without_a_discrete_mapping():
    actions = np.array([[0.0, 1.0, -1.0], [0.5, 1.0, 0.0], [-0.5, 0.0, 0.0]])
    stats = action_stats([actions], "carracing")
    assert "discrete" not in stats and "switches_per_100_steps" not in stats
    assert stats["mean"] == pytest.approx([0.0, 2 / 3, -1 / 3])
    assert stats["saturated"] == pytest.approx([0.0, 2 / 3, 1 / 3])
    assert stats["mean_abs_change"] == pytest.approx([0.75, 0.5, 0.5])
    assert describe(stats) == "a0 +0.00 ± 0.41 (|change| 0.75); a1 +0.67 ± 0.47 (|change| 0.50); a2 -0.33 ± 0.47 (|change| 0.50)"


def test_one_step_episodes_have_no_changes():
    stats = action_stats([np.array([[0.9]]), np.array([[-0.9]])], "doom")
    assert stats["mean_abs_change"] is None and stats["switches_per_100_steps"] is None
    assert describe(stats) == "noop 0%, left 50%, right 50%; - switches per 100 steps"


@pytest.mark.parametrize("episodes", [[], [np.zeros((0, 1))], [np.zeros((3, 1)), np.zeros((3, 2))]])
def test_bad_episodes_are_refused(episodes):
    with pytest.raises(ValueError, match="action_stats needs at least one episode|different action sizes"):
        action_stats(episodes, "doom")
