"""The fidelity report's episodes (workflows/fidelity.py), on both sides with the same seeds:
in the real game (num_envs environments in lockstep) and in M's dream (every episode in one batch,
at the controller's tau and dream cap), for the data-collection policy, one controller and any
scripted actions (the held actions). Each returns the episode lengths, and the actions taken where
the report shows what the policy did.
"""

from collections.abc import Callable

import numpy as np

# --- the real game --------------------------------------------------------------------------------


def random_policy_actions(generate_config, env_config, seeds: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The actions the data-collection policy took in each episode: generate's draws for its seed, cut to its length."""
    from env.policies import episode_actions

    return [
        episode_actions(generate_config, env_config.name, env_config.action_size, int(length), int(seed)) for seed, length in zip(seeds, lengths, strict=True)
    ]


def real_scripted_lengths(env_config, seeds: np.ndarray, actions_for: Callable[[int], np.ndarray], num_envs: int, progress=None) -> np.ndarray:
    """Real episode lengths when seed s's episode takes actions_for(s)[t] at step t (env.collect.scripted_episodes),
    num_envs environments in lockstep."""
    from env.batch import BatchEnv
    from env.collect import scripted_episodes

    batch_env = BatchEnv(env_config, max(1, min(num_envs, len(seeds))))
    try:
        return scripted_episodes(batch_env, env_config, seeds, actions_for, progress)[1]
    finally:
        batch_env.close()


def real_random_policy_episodes(
    env_config, generate_config, seeds: np.ndarray, num_envs: int, progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Real episode lengths and actions with the data-collection policy (exactly what generate plays
    for each seed), num_envs environments in lockstep."""
    from env.collect import random_policy_script

    lengths = real_scripted_lengths(env_config, seeds, random_policy_script(env_config, generate_config), num_envs, progress)
    return lengths, random_policy_actions(generate_config, env_config, seeds, lengths)


def real_controller_episodes(agent, env_config, params: np.ndarray, seeds: np.ndarray, num_envs: int, progress=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Real episode lengths and actions with one controller (its parameters (N,)), played by the
    agent that evaluation uses (controller/agent.py), num_envs environments in lockstep."""
    from env.batch import BatchEnv

    count = len(seeds)
    actions: list[np.ndarray | None] = [None] * count

    def keep(job: int, episode: dict) -> None:
        actions[job] = episode["action"]

    batch_env = BatchEnv(env_config, max(1, min(num_envs, count)))
    try:
        result = agent.run_episodes(batch_env, np.repeat(params[None], count, axis=0), seeds, progress=progress, on_episode=keep, episode_obs=False)
    finally:
        batch_env.close()
    return result["lengths"], actions


# --- the dream ------------------------------------------------------------------------------------


def dream_random_policy_episodes(
    model, initial_mu, initial_logvar, controller_config, generate_config, env_config, seeds: np.ndarray, done_rule=None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dream episode lengths and actions with the data-collection policy at the controller's tau and
    dream cap: row k starts from seed k's first frame and takes the actions generate draws for seed k."""
    from env.policies import episode_actions

    max_steps = controller_config.max_dream_steps
    actions = np.stack([episode_actions(generate_config, env_config.name, env_config.action_size, max_steps, int(seed)) for seed in seeds])
    lengths = dream_scripted_lengths(model, initial_mu, initial_logvar, controller_config, actions, seeds, done_rule)
    return lengths, [row[:length] for row, length in zip(actions, lengths, strict=True)]


def dream_scripted_lengths(model, initial_mu, initial_logvar, controller_config, actions: np.ndarray, seeds: np.ndarray, done_rule=None) -> np.ndarray:
    """Dream episode lengths at the controller's tau and dream cap, row k taking actions[k, t] (K, max_dream_steps, A) at step t;
    done_rule: rnn/dream.py's DoneRule (None: the threshold)."""
    from rnn.dream import BatchedDream
    from rnn.fidelity import dream_lengths_under_actions

    dream = BatchedDream(model, initial_mu, initial_logvar, controller_config.temperature, controller_config.max_dream_steps, done_rule=done_rule)
    return dream_lengths_under_actions(dream, actions, seeds)


def dream_controller_episodes(
    model, initial_mu, initial_logvar, config, params: np.ndarray, seeds: np.ndarray, done_rule=None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dream episode lengths and actions with one controller (its parameters (N,)): the batched dream
    that scores candidates in training, at the controller's tau and dream cap, every episode in one batch."""
    from controller.dream_scoring import DreamScorer

    scorer = DreamScorer.from_config(config, model, initial_mu, initial_logvar, done_rule)
    count = len(seeds)
    # every row starts at step 0, so a row's step number is the dream's
    taken = np.zeros((count, scorer.dream.max_steps, scorer.action_size), np.float32)

    def keep(step, rows, z_next, action, done) -> None:
        taken[rows, step] = action

    _, lengths = scorer.run(np.repeat(params[None], count, axis=0), seeds, return_lengths=True, on_step=keep)
    return lengths, [row[:length] for row, length in zip(taken, lengths, strict=True)]
