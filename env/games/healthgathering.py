"""ViZDoom Health Gathering: survive on an acid floor by picking up medkits; trained in M's dream.

The scenario (health_gathering.cfg, shipped with vizdoom) drains the player's health on a
floor of acid; medkits lying around restore it. Reward: +1 per tic survived (the cfg's
living_reward; its death_penalty of 100 is set to 0), so the return is the number of steps
survived, as in TakeCover, and C can be trained in the dream. Standing still dies at step 384.

C has 2 outputs for the cfg's buttons { TURN_LEFT TURN_RIGHT MOVE_FORWARD }:
  a0 < -1/3 turn left, a0 > 1/3 turn right, else no turn (TakeCover's thresholds);
  a1 > 0 move forward (one button: split at the middle of [-1, 1], so a random a1 walks half the time).
Each step is one of 6 actions, code = turn (0 none, 1 left, 2 right) + 3 x forward. M and the
rollouts keep the continuous outputs. Random policy: TakeCover's 'hold' (a ~ U[-1, 1]^2 held
1-10 steps), the healthgathering presets. Frames as TakeCover's (no HUD, resized whole), 1 tic
per step, the step cap env.max_steps (the cfg's own timeout is 2100 tics).
"""

import numpy as np

from common.settings import setting
from env.frames import preprocess_doom
from env.spec import EnvSpec

TURN_THRESHOLD = np.float32(1.0 / 3.0)  # compared in float32, the controller's dtype
FORWARD_THRESHOLD = np.float32(0.0)
NAMES = ("noop", "left", "right", "forward", "forward_left", "forward_right")
# Action code -> the states of TURN_LEFT, TURN_RIGHT, MOVE_FORWARD.
BUTTONS = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]]


def action_codes(actions: np.ndarray) -> np.ndarray:
    """(..., 2) controller outputs -> (...) int64 action codes 0-5 (NAMES)."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.shape[-1:] != (2,):
        raise ValueError(f"Health Gathering takes 2 controller outputs (turn, forward), got shape {actions.shape}")
    turn = np.where(actions[..., 0] < -TURN_THRESHOLD, 1, np.where(actions[..., 0] > TURN_THRESHOLD, 2, 0))
    return (turn + 3 * (actions[..., 1] > FORWARD_THRESHOLD)).astype(np.int64)


def buttons(action: np.ndarray) -> list[int]:
    return BUTTONS[int(action_codes(np.reshape(action, 2)))]


def make(env_config):
    from env.doom import VizdoomEnv

    return VizdoomEnv(
        "health_gathering.cfg",
        2,
        buttons,
        preprocess_doom,
        env_config.max_steps,
        env_config.healthgathering_skill,
        env_config.healthgathering_resolution,
        field_prefix="env.healthgathering_",
        death_penalty=0.0,
    )


SPEC = EnvSpec(
    name="healthgathering",
    title="ViZDoom Health Gathering",
    make=make,
    action_size=2,
    preprocess=preprocess_doom,
    game_actions=action_codes,
    action_names=NAMES,
    held_actions=(("noop", 0.0), ("left", [-1.0, -1.0]), ("forward", [0.0, 1.0]), ("forward_left", [-1.0, 1.0])),
    dream_trainable=True,
    episode_settings=("healthgathering_skill",),
    settings={
        "healthgathering_skill": setting(
            3, "ViZDoom difficulty; 2-5 play the same episodes here, 1 halves the acid's damage (measured)", "level 1-5", "docs/adding-an-environment.md"
        ),
        "healthgathering_resolution": setting(
            "RES_160X120", "ViZDoom screen resolution, as TakeCover's", "vizdoom.ScreenResolution name", "docs/design.md section 8"
        ),
    },
)
