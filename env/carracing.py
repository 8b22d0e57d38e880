"""CarRacing-v3 (gymnasium) behind the project's small environment interface.

Paper, section 4: the car sees a top-down 96x96 view; V gets the 64x64 crop
(env/frames.py), the controller's 3 outputs are mapped by env/actions.py; the
game's spec is env/games/carracing.py.
gymnasium ends an episode (terminated) when 95% of the tiles are visited or
the car leaves the playfield, and truncates at 1000 steps; we also truncate
at env_config.max_steps. Rendering is off-screen pygame: no display needed.
env_config.carracing_renderer picks gymnasium's class or env/carracing_fast.py's
subclass, whose frames, rewards and episode ends are the same, bit for bit.
"""

import dataclasses

import gymnasium as gym
import numpy as np

from env.actions import carracing_action
from env.config import EnvConfig
from env.frames import preprocess_carracing
from env.games.carracing import RENDERERS


def make_gym_carracing(renderer: str = "fast", **kwargs) -> gym.Env:
    """gymnasium's CarRacing-v3 with its usual wrappers (1000-step TimeLimit, order check), drawn by `renderer`;
    kwargs go to the env (render_mode, domain_randomize, ...)."""
    if renderer not in RENDERERS:
        raise ValueError(f"env.carracing_renderer={renderer!r}: expected one of {', '.join(RENDERERS)}")
    spec = gym.spec("CarRacing-v3")
    if renderer == "fast":
        from env.carracing_fast import FastCarRacing

        spec = dataclasses.replace(spec, entry_point=FastCarRacing)
    # The passive checker only warns; skipping it saves a little per step.
    return gym.make(spec, disable_env_checker=True, **kwargs)


class CarRacingEnv:
    """reset(seed) -> frame (64,64,3) uint8; step(a (3,)) -> (frame, reward, terminated, truncated)."""

    action_size = 3

    def __init__(self, env_config: EnvConfig):
        self.max_steps = env_config.max_steps
        self.renderer = env_config.carracing_renderer
        self.gym_env = make_gym_carracing(self.renderer)  # the gymnasium env itself (benchmarks compare against it)
        self.raw_frame: np.ndarray | None = None
        self.steps = 0

    def reset(self, seed: int) -> np.ndarray:
        """Start the episode whose track is drawn from `seed` (same seed, same track)."""
        self.raw_frame, _ = self.gym_env.reset(seed=int(seed))
        self.steps = 0
        return preprocess_carracing(self.raw_frame)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        self.raw_frame, reward, terminated, truncated, _ = self.gym_env.step(carracing_action(action))
        self.steps += 1
        truncated = bool(truncated) or (not terminated and self.steps >= self.max_steps)
        return preprocess_carracing(self.raw_frame), float(reward), bool(terminated), truncated

    def close(self) -> None:
        self.gym_env.close()
