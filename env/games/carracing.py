"""gymnasium CarRacing-v3 (paper, section 4): trained in the real environment.

C's 3 outputs are steer, gas and brake (env/actions.py: gas = (a1 + 1) / 2, brake = clip(a2, 0, 1));
V sees the 96x96 top view without its dashboard (env/frames.py). The Brownian random policy
gets a per-episode drive bias (generate.brownian_drive_bias, env/policies.py). The reward
(+1000/N per new tile, -0.1 per step) is not survival, so C cannot be scored in the dream
without M's reward head.
"""

import numpy as np

from common.settings import setting
from env.actions import carracing_actions
from env.frames import preprocess_carracing
from env.policies import brownian_actions, random_actions
from env.spec import EnvSpec

RENDERERS = ("fast", "stock")
# Controller outputs: a0 steer, a1 gas, a2 brake.
GAS, BRAKE = 1, 2


def make(env_config):
    from env.carracing import CarRacingEnv

    return CarRacingEnv(env_config)


def random_driving_actions(generate_config, rng: np.random.Generator, num_steps: int, action_size: int) -> np.ndarray:
    """generate.policy, where 'brownian' adds a drive bias b ~ U[0, brownian_drive_bias], drawn once per
    episode, to the gas output and subtracts it from the brake output (env/policies.py says why)."""
    if generate_config.policy != "brownian":
        return random_actions(generate_config, rng, num_steps, action_size)
    bias = np.zeros(action_size)
    drive = rng.uniform(0.0, generate_config.brownian_drive_bias)
    bias[GAS] = drive
    bias[BRAKE] = -drive
    return brownian_actions(rng, num_steps, action_size, generate_config.brownian_scale, bias)


SPEC = EnvSpec(
    name="carracing",
    title="gymnasium CarRacing-v3",
    make=make,
    action_size=3,
    preprocess=preprocess_carracing,
    game_actions=carracing_actions,
    random_actions=random_driving_actions,
    # OpenAI Gym's "solved" line, quoted by the paper: 900 averaged over 100 consecutive episodes.
    solved_return=900.0,
    renderer_setting="carracing_renderer",
    settings={
        "carracing_renderer": setting(
            "fast",
            "CarRacing-v3 renderer: 'fast' (env/carracing_fast.py, the same frames, rewards and episode ends as gymnasium's, about 2.7x the steps/s) "
            "or 'stock' (gymnasium's own)",
            "",
            "docs/design.md section 8",
            locked=False,
        ),
    },
    setting_choices={"carracing_renderer": RENDERERS},
)
