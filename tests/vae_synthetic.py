"""Small synthetic rollouts for the tests of V (no environment needed)."""

from pathlib import Path

import numpy as np

from env.rollouts import episode_path, write_rollout


def synthetic_frames(num_frames: int, seed: int) -> np.ndarray:
    """uint8 frames (N, 64, 64, 3): a coloured background and a square that moves."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 120, size=3)
    frames = np.broadcast_to(background.astype(np.uint8), (num_frames, 64, 64, 3)).copy()
    for index in range(num_frames):
        row, column = (7 * index + seed) % 48, (5 * index + 3 * seed) % 48
        frames[index, row : row + 16, column : column + 16] = (230, 200, 60)
    return frames


def write_synthetic_rollouts(folder: Path, num_episodes: int = 4, num_steps: int = 20, action_size: int = 3, seed: int = 0) -> list[Path]:
    """Write rollouts 000000.npz ... with obs, action, reward, done in the rollout format."""
    paths = []
    rng = np.random.default_rng(seed)
    for episode in range(num_episodes):
        length = num_steps + episode % 3  # episodes of (slightly) different lengths
        done = np.zeros(length, bool)
        done[-1] = episode % 2 == 0
        path = episode_path(folder, episode)
        write_rollout(
            path,
            obs=synthetic_frames(length, seed + episode),
            action=rng.uniform(-1, 1, (length, action_size)),
            reward=rng.normal(size=length),
            done=done,
        )
        paths.append(path)
    return paths
