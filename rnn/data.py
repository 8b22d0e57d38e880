"""Training windows for M from the series of V's encodings (paper, section 3.2; authors' code).

All series are held in memory as (mu, logvar) per frame (Doom 10,000 episodes of
~300 steps x 64 x 2 floats is ~1.5 GB; the frames themselves are never loaded).
Each batch:
- picks B episodes, each with probability proportional to its number of steps
  (every step equally likely), and one window of `sequence_length` steps inside
  each, starting at a uniform offset in [0, max(0, T - L)]. A window never
  crosses into another episode: shorter episodes are padded and masked, so
  the LSTM state is zero exactly at the start of an episode (and at the start
  of a window drawn later inside a long one, the usual truncation);
- re-samples z = mu + exp(logvar / 2) * eps for every frame of the window
  (the authors' trick against overfitting to one encoding);
- inputs x_t = [z_t, a_t] (+ restart_t, 1 at an episode's first step);
- targets z_{t+1} (z_mask 1 where frame t+1 exists: the last step of an
  episode has no next frame) and, per the authors' Doom code, done_t = did
  a_t end the episode by death (their restart_{t+1}): the rollouts' done[t],
  learnt on every real step including the last one (step_mask), as is the
  reward r_t given for a_t.
A batch is a pure function of (series, seed, step): resuming replays it exactly.
"""

from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from vae.series import list_series, read_series


def series_paths(source: str | Path | list) -> list[Path]:
    """The series files of a folder, or of a list of folders and files, in that order."""
    if isinstance(source, (str, Path)):
        return list_series(source)
    return [path for item in source for path in (list_series(item) if Path(item).is_dir() else [Path(item)])]


class SeriesData:
    """Every episode of DIR/series, concatenated, with the windows sampler."""

    def __init__(self, series_dir: str | Path | list, z_size: int, action_size: int):
        """series_dir: a folder of series files, or a list of folders and files (their series in that order)."""
        paths = series_paths(series_dir)
        if not paths:
            raise ArtifactError(f"{series_dir} holds no series files; run `python -m scripts.extract --run-dir {Path(series_dir).parent}` first")
        self.paths = paths
        episodes = [read_series(path, z_size, action_size) for path in paths]
        self.z_size, self.action_size = z_size, action_size
        self.lengths = np.array([len(episode["mu"]) for episode in episodes], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        for key in ("mu", "action", "reward", "done"):
            setattr(self, key, np.concatenate([episode[key] for episode in episodes]))
        self.sigma = np.exp(np.concatenate([episode["logvar"] for episode in episodes]) / 2.0).astype(np.float32)  # sigma = exp(logvar / 2)
        self.num_episodes = len(paths)
        self.num_steps = int(self.lengths.sum())

    def batch(self, batch_size: int, sequence_length: int, seed: int, step: int, restart_input: bool) -> dict[str, np.ndarray]:
        """Windows for training step `step` (see the module docstring for the keys' meaning)."""
        rng = np.random.default_rng([seed, step])
        episode = rng.choice(self.num_episodes, size=batch_size, p=self.lengths / self.num_steps)
        length = self.lengths[episode]
        offset = rng.integers(0, np.maximum(length - sequence_length, 0) + 1)
        position = offset[:, None] + np.arange(sequence_length + 1)[None, :]  # frames t .. t+L
        exists = position < length[:, None]
        index = self.starts[episode][:, None] + np.minimum(position, length[:, None] - 1)
        noise = rng.standard_normal((batch_size, sequence_length + 1, self.z_size), dtype=np.float32)
        z = (self.mu[index] + self.sigma[index] * noise) * exists[..., None]
        steps = index[:, :-1]
        step_mask = exists[:, :-1].astype(np.float32)
        parts = [z[:, :-1], self.action[steps] * step_mask[..., None]]
        if restart_input:
            parts.append((position[:, :-1] == 0).astype(np.float32)[..., None])
        return {
            "inputs": np.concatenate(parts, axis=-1).astype(np.float32),
            "z_target": z[:, 1:].astype(np.float32),
            "z_mask": exists[:, 1:].astype(np.float32),
            "step_mask": step_mask,
            "done_target": (self.done[steps] & exists[:, :-1]).astype(np.float32),
            "reward_target": (self.reward[steps] * step_mask).astype(np.float32),
        }
