"""ViZDoom TakeCover (paper, section 5): env.name 'doom'; trained in M's dream.

The agent moves left or right to dodge fireballs; reward +1 per tic survived. C's one output
picks left (a < -1/3), right (a > 1/3) or no-op (env/actions.py); M and the rollouts keep the
continuous a. The scenario's take_cover.cfg at env.doom_skill (docs/design.md section 8),
1 tic per step, no HUD; frames resized whole (env/frames.py). Random policy: the authors'
'hold' (a ~ U[-1, 1] held 1-10 steps, the `doom` preset).
"""

import numpy as np

from common.settings import setting
from env.actions import DOOM_LEFT, DOOM_NOOP, DOOM_RIGHT, doom_action, doom_actions
from env.frames import preprocess_doom
from env.spec import EnvSpec

# take_cover.cfg's available_buttons are { MOVE_LEFT MOVE_RIGHT }.
DOOM_BUTTONS = {DOOM_NOOP: [0, 0], DOOM_LEFT: [1, 0], DOOM_RIGHT: [0, 1]}


def buttons(action: np.ndarray) -> list[int]:
    return DOOM_BUTTONS[doom_action(action)]


def make(env_config):
    from env.doom import VizdoomEnv

    return VizdoomEnv(
        "take_cover.cfg", 1, buttons, preprocess_doom, env_config.max_steps, env_config.doom_skill, env_config.doom_resolution, field_prefix="env.doom_"
    )


SPEC = EnvSpec(
    name="doom",
    title="ViZDoom TakeCover",
    make=make,
    action_size=1,
    preprocess=preprocess_doom,
    game_actions=doom_actions,
    action_names=("noop", "left", "right"),  # codes DOOM_NOOP, DOOM_LEFT, DOOM_RIGHT
    held_actions=(("noop", 0.0), ("left", -1.0), ("right", 1.0)),
    dream_trainable=True,
    # OpenAI Gym's "solved" line, quoted by the paper: 750 steps averaged over 100 consecutive episodes.
    solved_return=750.0,
    episode_settings=("doom_skill",),
    settings={
        "doom_skill": setting(4, "ViZDoom difficulty; today's 4 behaves like the original setup's 5", "level 1-5", "docs/design.md section 8"),
        "doom_resolution": setting(
            "RES_160X120", "ViZDoom screen resolution (the smallest is ~4x faster than 320x240)", "vizdoom.ScreenResolution name", "docs/design.md section 8"
        ),
    },
)
