"""Real episodes to calibrate M's done head on (rnn/calibration.py) when a run has no held-out series
(an exported agent ships only series/initial_z.npz): the random data-collection policy and the
controller's mean, played fresh in the real game, every frame encoded by V.

Episode k of either policy uses seed first_seed + k: the random policy takes the actions generate
draws for that seed (env/policies.py), the controller is played by the agent evaluation uses
(controller/agent.py, no action noise). So the episodes, and the calibration fit on them, are a
pure function of the seeds, V, M and C. Every episode is kept, also the short ones generate drops.
"""

from collections.abc import Callable

import numpy as np

from env.policies import episode_actions
from vae.encode import encode_frames

DEFAULT_FIRST_SEED = 600_000_000  # apart from generate's, evaluate's (1e6 + k), fidelity's (5e8 + k) and iterate's [2^30, 2^31)
LAST_SEED = 2**30  # iterate's collection seeds start here


def check_seeds(first_seed: int, episodes: int) -> None:
    if episodes < 1 or first_seed < 0 or first_seed + episodes > LAST_SEED:
        raise ValueError(f"calibration seeds {first_seed}..{first_seed + episodes - 1}: expected at least one episode and seeds in [0, 2^30)")


def to_series(encoder, episode: dict, batch_size: int) -> dict:
    """A rollout-format episode (obs, action, reward, done) as a series episode: V's (mu, logvar) of each frame."""
    mu, logvar = encode_frames(encoder, episode["obs"], batch_size)
    return {"mu": mu, "logvar": logvar, "action": np.asarray(episode["action"], np.float32), "reward": episode["reward"], "done": episode["done"]}


def random_policy_series(encoder, env_config, generate_config, seeds: np.ndarray, batch_size: int, progress: Callable[[int], None] | None = None) -> list[dict]:
    """One series episode per seed with the data-collection policy, played one after the other in one env."""
    from env.collect import collect_episode
    from env.make import make_env

    env = make_env(env_config)
    episodes = []
    try:
        for seed in seeds:
            actions = episode_actions(generate_config, env_config.name, env_config.action_size, env_config.max_steps, int(seed))
            episodes.append(to_series(encoder, collect_episode(env, actions, int(seed)), batch_size))
            if progress is not None:
                progress(1)
    finally:
        env.close()
    return episodes


def controller_series(
    agent, env_config, params: np.ndarray, seeds: np.ndarray, num_envs: int, batch_size: int, progress: Callable[[int], None] | None = None
) -> list[dict]:
    """One series episode per seed with controller `params` (no action noise), num_envs environments in
    lockstep; each episode is encoded as it ends, so no more than num_envs episodes of frames are held."""
    from env.batch import BatchEnv

    rows = np.repeat(np.asarray(params, np.float32)[None], len(seeds), axis=0)
    episodes: list[dict | None] = [None] * len(seeds)

    def keep(job: int, episode: dict) -> None:
        episodes[job] = to_series(agent.encoder, episode, batch_size)

    batch_env = BatchEnv(env_config, max(1, min(num_envs, len(seeds))))
    try:
        agent.run_episodes(batch_env, rows, seeds, progress=progress, on_episode=keep)
    finally:
        batch_env.close()
    return episodes
