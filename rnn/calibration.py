"""M's done head calibrated against real deaths: DIR/rnn/calibration.json, and the dream's done rule from it.

The done loss weighs deaths by w = rnn.done_weight, so the logit x that minimises it is
log(w p / (1 - p)) (rnn/fidelity.py): sigmoid(x) over-states the death probability p about w-fold
where p is small, and the authors' rule (death when x > 0) ends a dream episode once M believes
p > 1 / (1 + w). Calibration removes the known log w, then fits, by maximum likelihood on real
episodes M did not train on (a logit per step from M teacher-forced over them, against the real
done), the death probability

    p = sigmoid(scale (x - log w) + offset)

with scale fixed at 1 (the offset alone), and with both. The scale is kept only when it helps:
when it raises the log-likelihood by more than the one nat its extra parameter costs (Akaike's
criterion); otherwise scale = 1. The dream's sampled rule (rnn/dream.py, DoneRule) draws death
with this p.

calibration.json: the fitted values, the data they were fit on (which series, or which played
episodes), the log-loss and Brier score of the raw sigmoid(x), of the w-corrected sigmoid(x - log w)
and of the calibrated p, the death rate each predicts against the observed one (and the share of
steps where the threshold rule fires), in all and for each group of episodes (each series folder:
the random policy's and each iterate round's; or each policy that played), the calibration curve
(bins of equal predicted deaths, ordered by the logit), and the SHA-256 of the M weights it was
made for (a file made for other weights is refused). `train_rnn` writes it when it finishes; `python -m scripts.calibrate` remakes it.
"""

from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import read_json, write_json
from common.layout import CALIBRATION_NAME
from common.layout import command as stage_command
from rnn.dream import DoneRule
from rnn.fidelity import TeacherForcing, read_episodes
from rnn.store import WEIGHTS_NAME
from vae.extract import weights_fingerprint

VERSION = 1
NOISE_SEED = 0  # z = mu + sigma * eps, as in training, eps of episode i from default_rng([0, i])
NUM_BINS = 10  # calibration-curve bins, equal numbers of steps by increasing logit
SCALE_COST = 1.0  # nats: the scale is kept when it raises the log-likelihood by more (AIC)
MAX_ITERATIONS = 100
MAX_SCALE = 100.0  # a larger fitted scale means the deaths are separated by the logit: no finite fit
FORM = "p = sigmoid(scale * (done_logit - log(done_weight)) + offset)"
# Every field calibration_record writes; a file without one of them is refused (remade, not guessed at).
FIELDS = (
    "version", "form", "done_weight", "log_done_weight", "offset", "scale", "uses_scale", "scale_verdict", "log_likelihood_gain_of_scale",
    "fits", "data", "scores", "death_rate", "death_rate_by_group", "bins", "m_sha256",
)  # fmt: skip


class NothingToFit(ValueError):
    """The episodes hold no death (or nothing but deaths): no probability can be fitted."""


def command(run_dir: Path) -> str:
    return stage_command("calibrate", run_dir)


# --- the fit ---------------------------------------------------------------------------------------


def log_likelihood(calibrated_logit: np.ndarray, died: np.ndarray) -> float:
    """sum_t y_t log p_t + (1 - y_t) log(1 - p_t), p = sigmoid(logit), with log p = -log(1 + e^-logit)."""
    return -float(np.sum(np.where(died, np.logaddexp(0.0, -calibrated_logit), np.logaddexp(0.0, calibrated_logit))))


def fit_logistic(corrected_logit: np.ndarray, died: np.ndarray, with_scale: bool) -> dict:
    """Maximum likelihood of p = sigmoid(scale u + offset), u = x - log w (scale fixed at 1 unless
    with_scale), by Newton's method with step halving (the log-likelihood is concave).

    Returns offset, scale, log_likelihood, iterations and converged (False when the step does not
    settle within MAX_ITERATIONS or the scale runs past MAX_SCALE: deaths separated by the logit)."""
    u = np.asarray(corrected_logit, np.float64)
    died = np.asarray(died, bool)
    features = np.stack([np.ones_like(u), u], axis=1) if with_scale else np.ones((len(u), 1))
    params = np.array([0.0, 1.0]) if with_scale else np.array([0.0])

    def calibrated(values):
        return values[0] + (values[1] * u if with_scale else u)

    current = log_likelihood(calibrated(params), died)
    converged = False
    iterations = 0
    while iterations < MAX_ITERATIONS:
        iterations += 1
        probability = _sigmoid(calibrated(params))
        gradient = features.T @ (died - probability)
        hessian = (features * (probability * (1.0 - probability))[:, None]).T @ features
        try:
            delta = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        if np.max(np.abs(delta)) < 1e-8 * (1.0 + np.max(np.abs(params))):
            converged = True  # Newton's step has vanished: the maximum (none exists for separated data, whose steps stay large)
            break
        step = 1.0
        while step > 1e-10:
            candidate = params + step * delta
            value = log_likelihood(calibrated(candidate), died)
            if value >= current:
                break
            step /= 2.0
        else:
            break  # no step along Newton's direction improves: float precision, not a vanished step
        params, current = candidate, value
        if with_scale and abs(params[1]) > MAX_SCALE:
            break
    return {
        "offset": float(params[0]),
        "scale": float(params[1]) if with_scale else 1.0,
        "log_likelihood": current,
        "iterations": iterations,
        "converged": bool(converged and (not with_scale or abs(params[1]) <= MAX_SCALE)),
    }


def fit(done_logit: np.ndarray, died: np.ndarray, done_weight: float) -> dict:
    """Both fits and the choice between them (module docstring): offset, scale, uses_scale and each fit."""
    logits = np.asarray(done_logit, np.float64)
    died = np.asarray(died, bool)
    if logits.shape != died.shape or logits.ndim != 1:
        raise ValueError(f"{logits.shape} done logits for {died.shape} done flags: expected two equal 1-D shapes")
    if not died.any() or died.all():
        raise NothingToFit(f"{int(died.sum())} deaths in {len(died)} steps: the fit needs at least one death and one step without")
    if not done_weight > 0:
        raise ValueError(f"done_weight={done_weight}: expected > 0")
    corrected = logits - np.log(done_weight)
    offset_only = fit_logistic(corrected, died, with_scale=False)
    with_scale = fit_logistic(corrected, died, with_scale=True)
    gain = with_scale["log_likelihood"] - offset_only["log_likelihood"]
    if not with_scale["converged"]:
        verdict = "no finite maximum (the held-out deaths are separated by the logit): offset only"
    elif with_scale["scale"] <= 0:
        verdict = "the fitted scale is not positive (death less likely as the logit rises): offset only"
    elif gain <= SCALE_COST:
        verdict = f"the scale raises the log-likelihood by {gain:.3f} nats, not more than the {SCALE_COST} it costs (AIC): offset only"
    else:
        verdict = f"the scale raises the log-likelihood by {gain:.3f} nats, more than the {SCALE_COST} it costs (AIC): offset and scale"
    uses_scale = verdict.endswith("offset and scale")
    chosen = with_scale if uses_scale else offset_only
    return {
        "offset": chosen["offset"],
        "scale": chosen["scale"],
        "uses_scale": uses_scale,
        "scale_verdict": verdict,
        "log_likelihood_gain_of_scale": gain,
        "fits": {"offset": offset_only, "offset_and_scale": with_scale},
    }


# --- the record -------------------------------------------------------------------------------------


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, np.float64)))


def _scores(calibrated_logit: np.ndarray, died: np.ndarray) -> dict:
    """Per step: log-loss (the negative mean log-likelihood), Brier score and the mean predicted p."""
    probability = _sigmoid(calibrated_logit)
    return {
        "log_loss": -log_likelihood(calibrated_logit, died) / len(died),
        "brier": float(np.mean((probability - died) ** 2)),
        "mean_p": float(probability.mean()),
    }


def curve_bins(logits: np.ndarray, died: np.ndarray, done_weight: float, offset: float, scale: float, num_bins: int = NUM_BINS) -> list[dict]:
    """The calibration curve: steps ordered by logit, cut into num_bins bins that each hold (nearly) the
    same predicted deaths (the calibrated p summed), so the few risky steps where deaths happen get bins
    of their own, not one bin in ten among a mass of safe steps; each bin's logit range, steps, deaths,
    observed frequency and mean p of each predictor (raw sigmoid(x), w-corrected sigmoid(x - log w), calibrated)."""
    order = np.argsort(logits, kind="stable")
    corrected = logits - np.log(done_weight)
    expected = np.cumsum(_sigmoid(scale * corrected[order] + offset))
    # cut after the step where the running sum of p first reaches k / num_bins of the total
    cuts = np.searchsorted(expected, expected[-1] * np.arange(1, num_bins) / num_bins) + 1
    bins = []
    for indices in np.split(order, np.unique(np.clip(cuts, 1, len(order) - 1))):
        if not len(indices):
            continue
        count = len(indices)
        deaths = int(died[indices].sum())
        bins.append(
            {
                "logit_low": float(logits[indices[0]]),
                "logit_high": float(logits[indices[-1]]),
                "count": count,
                "deaths": deaths,
                "observed_frequency": deaths / count,
                "raw": float(_sigmoid(logits[indices]).mean()),
                "weight_corrected": float(_sigmoid(corrected[indices]).mean()),
                "calibrated": float(_sigmoid(scale * corrected[indices] + offset).mean()),
            }
        )
    return bins


def _death_rates(logits: np.ndarray, corrected: np.ndarray, calibrated: np.ndarray, died: np.ndarray) -> dict:
    """The observed death rate per step and what each predictor makes of it (the threshold rule: the share of steps it fires)."""
    return {
        "observed": float(died.mean()),
        "threshold_rule_fires": float((logits > 0).mean()),
        "raw_mean_p": float(_sigmoid(logits).mean()),
        "weight_corrected_mean_p": float(_sigmoid(corrected).mean()),
        "calibrated_mean_p": float(_sigmoid(calibrated).mean()),
    }


def calibration_record(
    done_logits: list[np.ndarray], dones: list[np.ndarray], done_weight: float, data: dict, m_sha256: str, groups: list[str] | None = None
) -> dict:
    """calibration.json's content from M's per-step logits on real episodes and their done flags.

    data: where the episodes come from (recorded as given, with the episode, step and death counts added).
    groups: a label per episode (its series folder, or the policy that played it): the death rates of each group too."""
    logits = np.concatenate([np.asarray(logit, np.float64) for logit in done_logits]) if done_logits else np.zeros(0)
    died = np.concatenate([np.asarray(done, bool) for done in dones]) if dones else np.zeros(0, bool)
    fitted = fit(logits, died, done_weight)
    corrected = logits - np.log(done_weight)
    calibrated = fitted["scale"] * corrected + fitted["offset"]
    by_group = {}
    if groups is not None:
        step_groups = np.repeat(np.asarray(groups), [len(done) for done in dones])
        for group in dict.fromkeys(groups):
            mask = step_groups == group
            counts = {"episodes": groups.count(group), "steps": int(mask.sum()), "deaths": int(died[mask].sum())}
            by_group[group] = counts | _death_rates(logits[mask], corrected[mask], calibrated[mask], died[mask])
    return {
        "version": VERSION,
        "form": FORM,
        "done_weight": float(done_weight),
        "log_done_weight": float(np.log(done_weight)),
        **fitted,
        "data": {**data, "episodes": len(dones), "steps": int(len(died)), "deaths": int(died.sum()), "z": f"mu + sigma * eps, eps seed {NOISE_SEED}"},
        "scores": {"raw": _scores(logits, died), "weight_corrected": _scores(corrected, died), "calibrated": _scores(calibrated, died)},
        "death_rate": _death_rates(logits, corrected, calibrated, died),
        "death_rate_by_group": by_group,
        "bins": curve_bins(logits, died, done_weight, fitted["offset"], fitted["scale"]),
        "m_sha256": m_sha256,
    }


def calibrate_episodes(model, episodes: list[dict], data: dict, m_sha256: str, groups: list[str] | None = None) -> dict:
    """M teacher-forced over real episodes (series dicts: mu, logvar, action, done), z resampled
    as in training, then the record (calibration_record)."""
    outputs = TeacherForcing(model).run(episodes, noise_seed=NOISE_SEED)
    logits = [output["done_logit"] for output in outputs]
    return calibration_record(logits, [episode["done"] for episode in episodes], model.rnn_config.done_weight, data, m_sha256, groups)


def calibrate_series(model, paths: list[Path], rnn_dir: Path) -> dict:
    """The record for the held-out series files `paths` (M's own validation split), named relative
    to the run directory of rnn_dir, with M's weights file of rnn_dir."""
    paths = [Path(path) for path in paths]
    base = Path(rnn_dir).parent
    folders: dict[str, list[str]] = {}
    for path in paths:
        folders.setdefault(_relative(path.parent, base), []).append(path.name)
    data = {"source": "heldout", "note": "series episodes held out of M's training (rnn.validation_fraction, rnn.seed)", "series": folders}
    episodes = read_episodes(paths, model.z_size, model.action_size)
    groups = [_relative(path.parent, base) for path in paths]
    return calibrate_episodes(model, episodes, data, weights_fingerprint(Path(rnn_dir) / WEIGHTS_NAME), groups)


def _relative(folder: Path, base: Path) -> str:
    import os

    return os.path.relpath(folder.resolve(), base.resolve())


def summary(record: dict) -> str:
    """One line: the data, the death rates each predictor gives, the log-loss before and after, the fit."""
    data, rate, scores = record["data"], record["death_rate"], record["scores"]
    return (
        f"{data['source']}, {data['episodes']} episodes, {data['deaths']} deaths in {data['steps']} steps: death rate {rate['observed']:.4f}; "
        f"threshold rule fires {rate['threshold_rule_fires']:.4f}; mean p raw {rate['raw_mean_p']:.4f}, w-corrected {rate['weight_corrected_mean_p']:.4f}, "
        f"calibrated {rate['calibrated_mean_p']:.4f}; log-loss {scores['raw']['log_loss']:.4f} -> {scores['calibrated']['log_loss']:.4f}; "
        f"offset {record['offset']:.4f}, scale {record['scale']:.4f}"
    )


# --- the file ---------------------------------------------------------------------------------------


def write_calibration(rnn_dir: str | Path, record: dict) -> Path:
    path = Path(rnn_dir) / CALIBRATION_NAME
    write_json(path, record)  # atomic (common/files.py)
    return path


def read_calibration(rnn_dir: str | Path, done_weight: float) -> dict:
    """DIR/rnn/calibration.json checked against M's weights file beside it and the config's
    rnn.done_weight; ArtifactError naming the file and the command that makes it."""
    rnn_dir = Path(rnn_dir)
    path = rnn_dir / CALIBRATION_NAME
    remake = f"`{command(rnn_dir.parent)}`"
    if not path.exists():
        raise ArtifactError(
            f"{path} is missing: controller.done_rule=sampled draws dream deaths from M's calibrated done probability, which this file holds. "
            f"Make it with {remake} (train_rnn writes it when it finishes), or use controller.done_rule=threshold."
        )
    record = read_json(path)
    values = [record.get(key) for key in ("offset", "scale", "log_done_weight", "done_weight")]
    missing = [key for key in FIELDS if key not in record]
    if record.get("version") != VERSION or missing or not all(isinstance(value, (int, float)) and np.isfinite(value) for value in values):
        raise ArtifactError(
            f"{path}: not a calibration of version {VERSION} with every field ({', '.join(missing) or 'all there'} missing) and finite offset, "
            f"scale, done_weight and log_done_weight; remake it with {remake}"
        )
    if record["done_weight"] != done_weight:
        raise ArtifactError(f"{path} was fit for rnn.done_weight={record['done_weight']}, the config has {done_weight}; remake it with {remake}")
    weights = rnn_dir / WEIGHTS_NAME
    if weights.exists() and record.get("m_sha256") != weights_fingerprint(weights):
        raise ArtifactError(f"{path} was made for other M weights than {weights} (SHA-256 differs); remake it with {remake}")
    return record


def done_rule(config, rnn_dir: str | Path, kind: str | None = None) -> DoneRule:
    """The dream's done rule: kind (default config.controller.done_rule) 'threshold', or 'sampled'
    with the calibration in rnn_dir (read_calibration: an ArtifactError if it is missing or stale)."""
    kind = config.controller.done_rule if kind is None else kind
    if kind == "threshold":
        return DoneRule()
    if kind != "sampled":
        raise ValueError(f"done rule {kind!r}: expected 'threshold' or 'sampled'")
    record = read_calibration(rnn_dir, config.rnn.done_weight)
    return DoneRule("sampled", record["log_done_weight"], record["offset"], record["scale"])
