"""M's own fidelity checks: how well M imitates the game it will stand in for (paper, section 5).

- `dream_lengths_under_actions`: dream episodes driven by given action sequences
  (the random data-collection policy acts without looking, so its actions are
  drawn up front), for a batch of rows at once, like the batched dream.
- `teacher_forced`: M run over real held-out episodes from a zero state, fed the
  real z and actions: the done logit of every step and the z loss of every step.
- `done_calibration`: M's death probability sigmoid(done_logit) against the
  observed death frequency, and how often the dream's done rule (logit > 0)
  fires just before real deaths versus elsewhere.
- `heldout_series`: which series files M did not train on.

done_t is 1 when a_t ended the episode by death (rnn/data.py), and the dream ends
an episode when done_logit_t > 0. The done loss weighs deaths by done_weight w,
so the logit that minimises it is log(w p / (1 - p)): a calibrated M would give
sigmoid(logit) = w p / (w p + 1 - p), above the true p. The report shows the raw
sigmoid, since that is what decides when a dream episode ends.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from common.errors import ArtifactError
from common.layout import command as stage_command
from rnn import mdn
from rnn.data import split_series_paths
from rnn.dream import BatchedDream
from vae.series import list_series, read_series

DEFAULT_HELDOUT_FRACTION = 0.1  # for an M trained on every episode (rnn.validation_fraction 0): then not truly held out
STEPS_PER_CHUNK = 16384  # teacher forcing runs episodes in chunks of about this many (padded) steps


def heldout_series(series_dir: str | Path, validation_fraction: float, seed: int) -> list[Path]:
    """The series files held out from M's training: M's own split (rnn.data.split_series_paths) of DIR/series."""
    paths = list_series(series_dir)
    if not paths:
        raise ArtifactError(f"{series_dir} holds no series files; run `{stage_command('extract', Path(series_dir).parent)}` first")
    _, validation = split_series_paths(paths, validation_fraction, seed)
    if not validation:
        raise ArtifactError(
            f"{series_dir}: no series file is held out ({len(paths)} files, validation fraction {validation_fraction}): "
            "the checks on held-out episodes need at least 2 series files and a fraction > 0"
        )
    return validation


# --- the dream under given actions --------------------------------------------------------------


def dream_lengths_under_actions(dream: BatchedDream, actions: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Lengths (B,) int64 of dream episodes where row b takes actions[b, t] at step t.

    actions (B, T >= dream.max_steps, A) float32; seeds (B,) int64 pick each row's real first frame
    and its samples exactly as in the batched dream, so a row's episode depends only on its seed
    and its actions. An episode ends when M's done logit > 0, or at the dream's step cap.
    """
    actions = np.asarray(actions, np.float32)
    seeds = np.asarray(seeds, np.int64)
    num_rows = len(seeds)
    if actions.ndim != 3 or actions.shape[0] != num_rows or actions.shape[1] < dream.max_steps or actions.shape[2] != dream.core.action_size:
        raise ValueError(f"actions have shape {actions.shape}, expected ({num_rows}, >= {dream.max_steps}, {dream.core.action_size})")
    lengths = np.zeros(num_rows, np.int64)
    if num_rows == 0:
        return lengths
    dream.reset(seeds)
    while not dream.finished:
        transition = dream.step(actions[dream.rows, dream.step_count])
        lengths[transition.rows] += 1
    return lengths


# --- M teacher-forced on real episodes ----------------------------------------------------------


def read_episodes(paths: list[Path], z_size: int, action_size: int) -> list[dict[str, np.ndarray]]:
    return [read_series(path, z_size, action_size) for path in paths]


class TeacherForcing:
    """M over whole real episodes from a zero state, compiled once (any batch size and length)."""

    def __init__(self, model):
        self.model = model
        self.z_size = model.z_size
        self._run = tf.function(
            self._graph,
            input_signature=[tf.TensorSpec([None, None, model.input_size], tf.float32), tf.TensorSpec([None, None, model.z_size], tf.float32)],
        )

    def _graph(self, inputs, z_target):
        """Per step: the done logit (zeros without a done head) and the z loss of mdn.z_loss before
        its mean over steps, -mean_dims log sum_k pi_k N(z_{t+1} | mu_k, sigma_k)."""
        head_output, _, _ = self.model(inputs, training=False)
        parts = self.model.split(head_output)
        negative_log_likelihood = -mdn.mixture(parts["logits"], parts["means"], parts["log_sigmas"]).log_prob(z_target)
        done_logit = parts["done_logit"] if self.model.predict_done else tf.zeros(tf.shape(inputs)[:2])
        return done_logit, tf.reduce_mean(negative_log_likelihood, axis=-1)

    def run(self, episodes: list[dict[str, np.ndarray]], noise_seed: int | None = None) -> list[dict[str, np.ndarray]]:
        """For each episode: done_logit (T,) float32 and z_nll (T-1,) float32 (the last step has no next frame).

        z = mu (noise_seed None), or z = mu + exp(logvar / 2) * eps as in training, eps of
        episode i from np.random.default_rng([noise_seed, i]).standard_normal((T, Z), float32).
        restart = 1 at the first step (when M takes it).
        """
        results: list[dict | None] = [None] * len(episodes)
        order = np.argsort([len(episode["mu"]) for episode in episodes], kind="stable")  # similar lengths share a chunk
        start = 0
        while start < len(order):
            longest = len(episodes[order[start]]["mu"])
            chunk = [order[start]]
            while start + len(chunk) < len(order):
                candidate = order[start + len(chunk)]
                if (len(chunk) + 1) * max(longest, len(episodes[candidate]["mu"])) > STEPS_PER_CHUNK:
                    break
                longest = max(longest, len(episodes[candidate]["mu"]))
                chunk.append(candidate)
            self._run_chunk(episodes, chunk, longest, noise_seed, results)
            start += len(chunk)
        return results

    def _run_chunk(self, episodes, chunk, longest, noise_seed, results) -> None:
        inputs = np.zeros((len(chunk), longest, self.model.input_size), np.float32)
        z_target = np.zeros((len(chunk), longest, self.z_size), np.float32)
        for row, index in enumerate(chunk):
            episode = episodes[index]
            steps = len(episode["mu"])
            z = episode["mu"].astype(np.float32)
            if noise_seed is not None:
                eps = np.random.default_rng([noise_seed, int(index)]).standard_normal((steps, self.z_size), dtype=np.float32)
                z = z + np.exp(episode["logvar"] / 2.0).astype(np.float32) * eps
            inputs[row, :steps, : self.z_size] = z
            inputs[row, :steps, self.z_size : self.z_size + self.model.action_size] = episode["action"]
            if self.model.rnn_config.restart_input:
                inputs[row, 0, -1] = 1.0
            z_target[row, : steps - 1] = z[1:]
        done_logit, z_nll = self._run(tf.constant(inputs), tf.constant(z_target))
        done_logit, z_nll = done_logit.numpy(), z_nll.numpy()
        for row, index in enumerate(chunk):
            steps = len(episodes[index]["mu"])
            results[index] = {"done_logit": done_logit[row, :steps].copy(), "z_nll": z_nll[row, : steps - 1].copy()}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, np.float64)))  # = 1 / (1 + e^-x), without overflow


def done_calibration(done_logits: list[np.ndarray], dones: list[np.ndarray], num_bins: int, last_steps: int) -> dict:
    """Calibration of p = sigmoid(done_logit) against the deaths of real episodes, and the firing
    of the dream's done rule (logit > 0) in the last `last_steps` steps before a death versus elsewhere.

    Bins: [i / num_bins, (i + 1) / num_bins), the last one closed at 1. Each bin: its edges, count of
    steps, deaths, mean predicted p and the observed death frequency deaths / count (None if empty).
    """
    if num_bins < 1 or last_steps < 1:
        raise ValueError(f"num_bins={num_bins}, last_steps={last_steps}: expected both >= 1")
    logits = np.concatenate(done_logits).astype(np.float64)
    died = np.concatenate([np.asarray(done, bool) for done in dones])
    if logits.shape != died.shape:
        raise ValueError(f"{logits.shape[0]} done logits for {died.shape[0]} done flags")
    probability = sigmoid(logits)
    edges = np.round(np.linspace(0.0, 1.0, num_bins + 1), 12)
    index = np.minimum((probability * num_bins).astype(np.int64), num_bins - 1)
    counts = np.bincount(index, minlength=num_bins)
    deaths = np.bincount(index, weights=died, minlength=num_bins)
    predicted = np.bincount(index, weights=probability, minlength=num_bins)
    bins = [
        {
            "low": float(edges[i]),
            "high": float(edges[i + 1]),
            "count": int(counts[i]),
            "deaths": int(deaths[i]),
            "mean_predicted": float(predicted[i] / counts[i]) if counts[i] else None,
            "observed_frequency": float(deaths[i] / counts[i]) if counts[i] else None,
        }
        for i in range(num_bins)
    ]
    # Steps within last_steps of a death: the last last_steps steps of each episode that ended by dying.
    near_death = np.concatenate([_near_death_mask(np.asarray(done, bool), last_steps) for done in dones])
    fires = logits > 0.0
    died_episodes = [index for index, done in enumerate(dones) if len(done) and bool(done[-1])]
    detected = sum(bool((np.asarray(done_logits[index][-last_steps:]) > 0).any()) for index in died_episodes)
    return {
        "steps": int(len(logits)),
        "episodes": len(dones),
        "deaths": int(died.sum()),
        "bins": bins,
        "mean_predicted": float(probability.mean()),
        "observed_frequency": float(died.mean()),
        "fires": {
            "last_steps": int(last_steps),
            "near_death": _rate(fires[near_death]),
            "elsewhere": _rate(fires[~near_death]),
            "death_step": _rate(fires[died]),
            "deaths_with_a_fire_in_last_steps": {
                "deaths": len(died_episodes),
                "detected": int(detected),
                "rate": detected / len(died_episodes) if died_episodes else None,
            },
        },
    }


def _near_death_mask(done: np.ndarray, last_steps: int) -> np.ndarray:
    mask = np.zeros(len(done), bool)
    if len(done) and done[-1]:
        mask[-last_steps:] = True
    return mask


def _rate(fired: np.ndarray) -> dict:
    return {"steps": int(len(fired)), "fires": int(fired.sum()), "rate": float(fired.mean()) if len(fired) else None}


def mean_z_nll(per_step: list[np.ndarray]) -> float:
    """The z loss over every step with a next frame of every episode (mdn.z_loss's masked mean)."""
    values = np.concatenate([np.asarray(nll, np.float64) for nll in per_step])
    return float(values.mean()) if len(values) else float("nan")
