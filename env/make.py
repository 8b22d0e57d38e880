"""make_env: the one constructor for the real environments, whichever game env.name names.

Every environment has the same small interface:
  reset(seed) -> frame uint8 (64, 64, 3)
  step(action float32 (A,)) -> (frame, reward: float, terminated: bool, truncated: bool)
  raw_frame: the last full-resolution RGB frame (for videos)
  action_size: A (the game's spec); close().
truncated is True when the step cap env_config.max_steps ends the episode.
"""

from env.config import EnvConfig


def make_env(env_config: EnvConfig):
    """The environment of the game env_config.name (its spec's make imports the game's engine)."""
    return env_config.spec.make(env_config)
