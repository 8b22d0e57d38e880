"""Controller outputs (in [-1, 1], from a = tanh(...)) -> environment actions.

Paper, appendix A.3 / authors' code; docs/design.md section 5, items 3 and 4:
- CarRacing: steer = a0, gas = (a1 + 1) / 2, brake = clip(a2, 0, 1). The brake
  is clipped, not rescaled: (a2 + 1) / 2 would brake half way at a2 = 0.
- Doom TakeCover: a < -1/3 -> move left, a > 1/3 -> move right, else no-op.
  The recorded action (and M's input) stays the continuous a.
"""

import numpy as np

DOOM_NOOP, DOOM_LEFT, DOOM_RIGHT = 0, 1, 2
# Compared in float32, the dtype of the controller's output (so a = 1/3 exactly is a no-op).
DOOM_THRESHOLD = np.float32(1.0 / 3.0)


def carracing_actions(actions: np.ndarray) -> np.ndarray:
    """(..., 3) controller outputs -> (..., 3) float32 [steer, gas, brake] for gymnasium CarRacing-v3."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.shape[-1:] != (3,):
        raise ValueError(f"CarRacing takes 3 controller outputs (steer, gas, brake), got shape {actions.shape}")
    steer = np.clip(actions[..., 0], -1.0, 1.0)
    gas = np.clip((actions[..., 1] + 1.0) / 2.0, 0.0, 1.0)
    brake = np.clip(actions[..., 2], 0.0, 1.0)
    return np.stack([steer, gas, brake], axis=-1).astype(np.float32)


def carracing_action(action: np.ndarray) -> np.ndarray:
    """One controller output (3,) -> float32 (3,) [steer, gas, brake]."""
    action = np.asarray(action, dtype=np.float32).reshape(-1)
    return carracing_actions(action)


def doom_actions(actions: np.ndarray) -> np.ndarray:
    """(N,) or (N, 1) controller outputs -> (N,) int64: 0 no-op, 1 left, 2 right."""
    values = np.asarray(actions, dtype=np.float32)
    if values.ndim == 2:
        values = values[:, 0]
    choices = np.full(values.shape, DOOM_NOOP, dtype=np.int64)
    choices[values < -DOOM_THRESHOLD] = DOOM_LEFT
    choices[values > DOOM_THRESHOLD] = DOOM_RIGHT
    return choices


def doom_action(action) -> int:
    """One controller output (a float or shape (1,)) -> 0 no-op, 1 left (a < -1/3), 2 right (a > 1/3)."""
    value = np.asarray(action, dtype=np.float32).reshape(-1)[0]
    if value < -DOOM_THRESHOLD:
        return DOOM_LEFT
    if value > DOOM_THRESHOLD:
        return DOOM_RIGHT
    return DOOM_NOOP
