"""make_env: the one constructor for the real environments (CarRacing-v3, ViZDoom TakeCover).

Every environment has the same small interface:
  reset(seed) -> frame uint8 (64, 64, 3)
  step(action float32 (A,)) -> (frame, reward: float, terminated: bool, truncated: bool)
  raw_frame: the last full-resolution RGB frame (for videos)
  action_size: A (3 CarRacing, 1 Doom); close().
truncated is True when the step cap env_config.max_steps ends the episode.
"""

from env.config import EnvConfig


def make_env(env_config: EnvConfig):
    """The environment named by env_config.name (imported lazily: each pulls in its own engine)."""
    if env_config.name == "carracing":
        from env.carracing import CarRacingEnv

        return CarRacingEnv(env_config)
    if env_config.name == "doom":
        from env.doom import DoomTakeCoverEnv

        return DoomTakeCoverEnv(env_config)
    raise ValueError(f"env.name={env_config.name!r}: expected 'carracing' or 'doom'")
