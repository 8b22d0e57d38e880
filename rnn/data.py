"""Training windows for M from the series of V's encodings (paper, section 3.2; authors' code).

All series are held in memory as (mu, sigma) per frame (Doom 10,000 episodes of
~300 steps x 64 x 2 floats is ~1.5 GB; the frames themselves are never loaded).

Every epoch sees every step of every episode exactly once, as the data holds
it (docs/design.md section 5, item 11), the authors' scheme:
- the episodes, in an order shuffled per epoch, are concatenated into one
  stream, cut into B contiguous sub-streams (one per batch row) at the episode
  start nearest to each n/B of it, so every row begins an episode;
- each row is cut into windows of `sequence_length` steps: row i of batch k+1
  continues row i of batch k, so M carries its LSTM state from one window to
  the next and zeroes it where `restart` is 1 (an episode's first step, also
  mid-window). The state is zero exactly at episode starts, as in the game and
  the dream; rows that end earlier than the longest are padded and masked;
- z = mu + sigma * eps is re-sampled for every frame (the authors' trick against
  overfitting to one encoding), eps a pure function of (seed, epoch, window);
  the frame that ends a window and starts the next gets the same eps in both.
Batch keys, (B, L, ...) each:
- inputs x_t = [z_t, a_t] (+ restart_t for Doom), restart (B, L) 1 at an
  episode's first step (drives the state reset even when it is not an input);
- z_target z_{t+1}, z_mask 1 where frame t+1 exists in the episode (the last
  step of an episode has no next frame);
- done_target: did a_t end the episode by death (the authors' restart_{t+1}):
  the rollouts' done[t], and reward_target r_t given for a_t, both learnt on
  every real step (step_mask), including an episode's last.
A batch is a pure function of (series, seed, epoch, index in the epoch).
"""

from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.layout import command as stage_command
from vae.data import split_episodes
from vae.series import list_series, read_series

# Tags keep the random streams made for different purposes independent.
_ORDER_STREAM = 0
_NOISE_STREAM = 1


def split_series_paths(paths: list[Path], validation_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(training, validation) series files, split by episode, deterministic in (files, fraction, seed):
    the validation episodes are never trained on (rnn.validation_fraction, rnn.seed).

    Each folder is split on its own, folders in the order they first appear: adding a folder
    (an iterate round's new episodes) leaves the split of the others as it was, so an episode
    held out from one round's M is never trained on by the next."""
    folders: dict[Path, list[Path]] = {}
    for path in paths:
        folders.setdefault(Path(path).parent, []).append(Path(path))
    training, validation = [], []
    for folder_paths in folders.values():
        folder_training, folder_validation = split_episodes(folder_paths, validation_fraction, seed)
        training += folder_training
        validation += folder_validation
    return training, validation


class SeriesData:
    """Every episode of a set of series files, concatenated in file order."""

    def __init__(self, source: str | Path | list[Path], z_size: int, action_size: int):
        if isinstance(source, (str, Path)):
            paths = list_series(source)
            if not paths:
                raise ArtifactError(f"{source} holds no series files; run `{stage_command('extract', Path(source).parent)}` first")
        else:
            paths = [Path(path) for path in source]
            if not paths:
                raise ArtifactError("no series files given: an empty training or validation split (lower rnn.validation_fraction, or extract more episodes)")
        episodes = [read_series(path, z_size, action_size) for path in paths]
        self.paths = paths
        self.z_size, self.action_size = z_size, action_size
        self.lengths = np.array([len(episode["mu"]) for episode in episodes], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        for key in ("mu", "action", "reward", "done"):
            setattr(self, key, np.concatenate([episode[key] for episode in episodes]))
        self.sigma = np.exp(np.concatenate([episode["logvar"] for episode in episodes]) / 2.0).astype(np.float32)  # sigma = exp(logvar / 2)
        self.num_episodes = len(paths)
        self.num_steps = int(self.lengths.sum())


class WindowStream:
    """The epochs of windows over one SeriesData (see the module docstring)."""

    def __init__(self, data: SeriesData, batch_size: int, sequence_length: int, seed: int, restart_input: bool):
        if batch_size < 1 or sequence_length < 1:
            raise ValueError(f"batch_size={batch_size}, sequence_length={sequence_length}: both must be at least 1")
        self.data = data
        self.batch_size, self.sequence_length = batch_size, sequence_length
        self.seed, self.restart_input = seed, restart_input
        self._cached_epoch = None

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, _ORDER_STREAM]).permutation(self.data.num_episodes)

    def _rows(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Episode order, each episode's start in the stream (E + 1 values, the last N), row starts and ends."""
        order = self._order(epoch)
        stream_starts = np.concatenate([[0], np.cumsum(self.data.lengths[order])]).astype(np.int64)
        total = stream_starts[-1]
        targets = total * np.arange(1, self.batch_size, dtype=np.float64) / self.batch_size
        after = np.clip(np.searchsorted(stream_starts, targets), 1, len(stream_starts) - 1)
        before = after - 1
        nearest = np.where(targets - stream_starts[before] <= stream_starts[after] - targets, before, after)
        cuts = stream_starts[nearest]
        return order, stream_starts, np.concatenate([[0], cuts]), np.concatenate([cuts, [total]])

    def num_windows(self, epoch: int) -> int:
        """Batches in this epoch: the longest row's steps / L, rounded up."""
        _, _, row_starts, row_ends = self._rows(epoch)
        return max(1, -(-int((row_ends - row_starts).max()) // self.sequence_length))

    def episodes_in_window(self, epoch: int, index: int) -> list[int]:
        """The episodes (indices into the SeriesData's files) that window `index` of `epoch` holds."""
        order, stream_starts, row_starts, row_ends = self._rows(epoch)
        positions = row_starts[:, None] + index * self.sequence_length + np.arange(self.sequence_length)[None, :]
        positions = positions[positions < row_ends[:, None]]
        return sorted(set(order[np.searchsorted(stream_starts, positions, side="right") - 1].tolist()))

    def padding_fraction(self, epoch: int) -> float:
        """Share of the epoch's B x L x windows slots that are padding (masked)."""
        return 1.0 - self.data.num_steps / (self.num_windows(epoch) * self.batch_size * self.sequence_length)

    def _layout(self, epoch: int) -> dict:
        if self._cached_epoch != epoch:
            order, stream_starts, row_starts, row_ends = self._rows(epoch)
            lengths = self.data.lengths[order]
            # stream position -> index of that frame in the concatenated arrays
            frame = np.repeat(self.data.starts[order] - stream_starts[:-1], lengths) + np.arange(stream_starts[-1])
            first = np.zeros(stream_starts[-1], bool)
            first[stream_starts[:-1]] = True
            last = np.zeros(stream_starts[-1], bool)
            last[stream_starts[1:] - 1] = True
            self._layout_value = {"frame": frame, "first": first, "has_next": ~last, "row_starts": row_starts, "row_ends": row_ends}
            self._cached_epoch = epoch
        return self._layout_value

    def _noise(self, epoch: int, index: int, num_frames: int) -> np.ndarray:
        """eps (B, num_frames, Z) of window `index`: drawn frame-major, so the first frame of a
        window is a prefix of the draws and the previous window can take it as its target."""
        rng = np.random.default_rng([self.seed, epoch, _NOISE_STREAM, index])
        return rng.standard_normal((num_frames, self.batch_size, self.data.z_size), dtype=np.float32).transpose(1, 0, 2)

    def batch(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        """Window `index` of every row in `epoch` (see the module docstring for the keys)."""
        layout = self._layout(epoch)
        length = self.sequence_length
        positions = layout["row_starts"][:, None] + index * length + np.arange(length + 1)[None, :]  # frames t .. t+L
        exists = positions < layout["row_ends"][:, None]
        positions = np.minimum(positions, max(self.data.num_steps - 1, 0))
        frame = layout["frame"][positions]
        noise = np.concatenate([self._noise(epoch, index, length), self._noise(epoch, index + 1, 1)], axis=1)
        z = (self.data.mu[frame] + self.data.sigma[frame] * noise) * exists[..., None]
        step_mask = exists[:, :-1]
        steps = frame[:, :-1]
        z_mask = step_mask & layout["has_next"][positions[:, :-1]]
        restart = (layout["first"][positions[:, :-1]] & step_mask).astype(np.float32)
        parts = [z[:, :-1], self.data.action[steps] * step_mask[..., None]]
        if self.restart_input:
            parts.append(restart[..., None])
        return {
            "inputs": np.concatenate(parts, axis=-1).astype(np.float32),
            "restart": restart,
            "z_target": (z[:, 1:] * z_mask[..., None]).astype(np.float32),
            "z_mask": z_mask.astype(np.float32),
            "step_mask": step_mask.astype(np.float32),
            "done_target": (self.data.done[steps] & step_mask).astype(np.float32),
            "reward_target": (self.data.reward[steps] * step_mask).astype(np.float32),
        }
