"""Random data-collection policies (paper, sections 4.1 and 5.1).

V and M are trained on episodes of a random agent. The actions do not depend
on the frames, so a whole episode's actions are drawn up front from the
episode seed: the same seed gives the same actions whatever process runs it.

- 'brownian': each action component is a random walk with increments
  N(0, brownian_scale), clipped to [-1, 1] (smooth actions). For CarRacing
  (env/games/carracing.py) a drive bias b ~ U[0, brownian_drive_bias], drawn once per episode, is
  added to the gas output and subtracted from the brake output: without it
  the car stands still under a random brake half the time; with it some
  episodes crawl along the start of the track and others drive off across
  the map, so the frames show varied road and grass.
- 'hold': a ~ U[-1, 1] held for a number of steps drawn from
  hold_min_steps..hold_max_steps (the authors' Doom policy: 1-10 steps).
"""

from typing import TYPE_CHECKING

import numpy as np

from env.spec import get_spec

if TYPE_CHECKING:  # env/config.py builds EnvConfig from the games, which use this module
    from env.config import GenerateConfig


def brownian_actions(rng: np.random.Generator, num_steps: int, action_size: int, scale: float, bias: np.ndarray | None = None) -> np.ndarray:
    """Clipped random walks w_t = clip(w_{t-1} + N(0, scale), -1, 1), w_0 ~ U[-1, 1]; returns clip(w + bias, -1, 1)."""
    walk = np.empty((num_steps, action_size), dtype=np.float64)
    position = rng.uniform(-1.0, 1.0, size=action_size)
    increments = rng.normal(0.0, scale, size=(num_steps, action_size))
    for step in range(num_steps):
        walk[step] = position
        position = np.clip(position + increments[step], -1.0, 1.0)
    if bias is not None:
        walk = np.clip(walk + bias, -1.0, 1.0)
    return walk.astype(np.float32)


def hold_actions(rng: np.random.Generator, num_steps: int, action_size: int, hold_min_steps: int, hold_max_steps: int) -> np.ndarray:
    """a ~ U[-1, 1]^A, each held for k ~ U{hold_min_steps..hold_max_steps} steps."""
    if not 1 <= hold_min_steps <= hold_max_steps:
        raise ValueError(f"generate.hold_min_steps={hold_min_steps}, hold_max_steps={hold_max_steps}: expected 1 <= min <= max")
    actions = np.empty((num_steps, action_size), dtype=np.float32)
    step = 0
    while step < num_steps:
        hold = int(rng.integers(hold_min_steps, hold_max_steps + 1))
        actions[step : step + hold] = rng.uniform(-1.0, 1.0, size=action_size)
        step += hold
    return actions


def random_actions(generate_config: "GenerateConfig", rng: np.random.Generator, num_steps: int, action_size: int) -> np.ndarray:
    """generate.policy's actions (num_steps, action_size) float32, drawn from rng."""
    if generate_config.policy == "brownian":
        return brownian_actions(rng, num_steps, action_size, generate_config.brownian_scale)
    if generate_config.policy == "hold":
        return hold_actions(rng, num_steps, action_size, generate_config.hold_min_steps, generate_config.hold_max_steps)
    raise ValueError(f"generate.policy={generate_config.policy!r}: expected 'brownian' or 'hold'")


def episode_actions(generate_config: "GenerateConfig", env_name: str, action_size: int, num_steps: int, seed: int) -> np.ndarray:
    """The random policy's actions (num_steps, action_size) float32 for the episode with this seed:
    the game's own (its spec's random_actions, e.g. CarRacing's drive bias) or random_actions."""
    # A stream of its own: the env is seeded with the same number.
    rng = np.random.default_rng([int(seed), 0x5EED])
    policy = get_spec(env_name).random_actions or random_actions
    return policy(generate_config, rng, num_steps, action_size)
