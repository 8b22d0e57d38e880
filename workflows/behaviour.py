"""What a policy does, summarised from the actions of its episodes: the fidelity report's
"actions" entry on each side (dream, real) of each policy.

A controller that scores far higher in the dream than in the game has usually found actions M
was never shown. Putting its actions next to the data-collection policy's (the only actions M
was trained on) shows which: e.g. a Doom controller that flips between left and right every
other step, where the random policy holds each action for 1-10 steps.

For every action output (over all steps of all episodes):
  mean, std             of the continuous output a in [-1, 1]
  saturated             fraction of steps with |a| >= SATURATED
  mean_abs_change       mean of |a_t - a_{t-1}| over consecutive steps within an episode
Games with discrete actions only (the game's own mapping, its spec's game_actions; TakeCover:
a < -1/3 left, a > 1/3 right, else no-op):
  discrete              fraction of steps with each of the game's actions (noop, left, right)
  switches_per_100_steps  100 x the fraction of consecutive steps whose discrete action differs
"""

import numpy as np

from env.spec import get_spec

SATURATED = 0.9  # |a| at or above this counts as a saturated output (tanh near its limit)


def action_stats(episodes: list[np.ndarray], env_name: str) -> dict:
    """Statistics of the actions of a list of episodes, each (T_i, A) float (the action taken at each step)."""
    if not episodes or any(len(actions) == 0 for actions in episodes):
        raise ValueError(f"action_stats needs at least one episode and at least one step in each, got lengths {[len(a) for a in episodes]}")
    episodes = [np.asarray(actions, np.float64).reshape(len(actions), -1) for actions in episodes]
    if len({actions.shape[1] for actions in episodes}) != 1:
        raise ValueError(f"episodes have different action sizes: {sorted({actions.shape[1] for actions in episodes})}")
    every = np.concatenate(episodes)
    changes = np.concatenate([np.abs(np.diff(actions, axis=0)) for actions in episodes])
    stats = {
        "steps": int(len(every)),
        "mean": every.mean(axis=0).tolist(),
        "std": every.std(axis=0).tolist(),
        "saturated": (np.abs(every) >= SATURATED).mean(axis=0).tolist(),
        # None when every episode is one step long: there is no consecutive pair to compare
        "mean_abs_change": changes.mean(axis=0).tolist() if len(changes) else None,
    }
    spec = get_spec(env_name)
    if spec.is_discrete:
        discrete = [spec.game_actions(actions.astype(np.float32)) for actions in episodes]
        counts = np.bincount(np.concatenate(discrete), minlength=len(spec.action_names))
        switches = np.concatenate([choices[1:] != choices[:-1] for choices in discrete])
        stats["discrete"] = {name: float(counts[code] / len(every)) for code, name in enumerate(spec.action_names)}
        stats["switches_per_100_steps"] = float(100.0 * switches.mean()) if len(switches) else None
    return stats


def describe(stats: dict) -> str:
    """One line for the terminal summary."""
    if "discrete" in stats:
        shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in stats["discrete"].items())
        switches = stats["switches_per_100_steps"]
        return f"{shares}; {'-' if switches is None else f'{switches:.1f}'} switches per 100 steps"
    change = stats["mean_abs_change"]
    outputs = []
    for index, (mean, std) in enumerate(zip(stats["mean"], stats["std"], strict=True)):
        text = f"a{index} {mean:+.2f} ± {std:.2f}"
        if change is not None:
            text += f" (|change| {change[index]:.2f})"
        outputs.append(text)
    return "; ".join(outputs)
