"""rnn/calibration.py: the fit recovers a known death probability behind synthetic logits (with the
done weight's known log w offset), satisfies the likelihood equations, keeps the scale only when it
helps, refuses data without deaths; the record's rates, scores and bins recount; calibration.json
round-trips and a missing, stale or mismatched file is refused by name with the command that remakes it."""

import dataclasses

import numpy as np
import pytest

from common.errors import ArtifactError
from rnn import calibration
from rnn.dream import DoneRule

WEIGHT = 10.0


def _synthetic(scale: float, offset: float, steps: int = 150_000, seed: int = 0):
    """Logits of an M trained with weight w, and deaths drawn with p = sigmoid(scale (x - log w) + offset)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(-1.0, 1.5, steps)
    probability = 1.0 / (1.0 + np.exp(-(scale * (logits - np.log(WEIGHT)) + offset)))
    return logits, rng.random(steps) < probability


def _sigmoid(values):
    return 1.0 / (1.0 + np.exp(-values))


@pytest.mark.parametrize(("scale", "offset"), [(1.0, -2.5), (0.6, -3.0), (1.4, -1.0)])
def test_the_fit_recovers_a_known_death_probability(scale, offset):
    logits, died = _synthetic(scale, offset)
    result = calibration.fit(logits, died, WEIGHT)
    both = result["fits"]["offset_and_scale"]
    # about 1/sqrt(deaths) ~ 0.04 standard error on ~600-3,000 deaths: within 4 of them
    assert both["converged"] and both["offset"] == pytest.approx(offset, abs=0.15) and both["scale"] == pytest.approx(scale, abs=0.1)
    corrected = logits - np.log(WEIGHT)
    # maximum likelihood: the score equations hold at the fitted values
    p_both = _sigmoid(both["scale"] * corrected + both["offset"])
    assert abs(np.sum(died - p_both)) < 1e-6 * died.sum() and abs(np.sum((died - p_both) * corrected)) < 1e-6 * died.sum()
    p_offset = _sigmoid(corrected + result["fits"]["offset"]["offset"])
    assert abs(np.sum(died - p_offset)) < 1e-6 * died.sum()
    gain = both["log_likelihood"] - result["fits"]["offset"]["log_likelihood"]
    assert gain >= 0 and result["log_likelihood_gain_of_scale"] == pytest.approx(gain)
    assert result["uses_scale"] == (gain > calibration.SCALE_COST)
    chosen = both if result["uses_scale"] else result["fits"]["offset"]
    assert (result["offset"], result["scale"]) == (chosen["offset"], chosen["scale"])
    if scale != 1.0:
        assert result["uses_scale"] and result["scale"] == pytest.approx(scale, abs=0.1)  # hundreds of nats: it helps
    else:
        assert result["fits"]["offset"]["offset"] == pytest.approx(offset, abs=0.15)


def test_the_log_weight_offset_alone_calibrates_an_m_that_learnt_the_weighted_optimum():
    """An M that learnt the weighted loss's optimum x = log(w p / (1 - p)) needs offset 0, scale 1."""
    rng = np.random.default_rng(4)
    probability = _sigmoid(rng.normal(-5.0, 1.0, 200_000))
    died = rng.random(len(probability)) < probability
    logits = np.log(WEIGHT * probability / (1.0 - probability))
    result = calibration.fit(logits, died, WEIGHT)
    assert result["fits"]["offset"]["offset"] == pytest.approx(0.0, abs=0.12)
    assert result["fits"]["offset_and_scale"]["scale"] == pytest.approx(1.0, abs=0.1)


def test_separated_deaths_and_no_deaths():
    # the only death has the largest logit: the scale grows without bound; the offset alone still fits
    logits = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0])
    died = np.array([False, False, False, False, False, True])
    result = calibration.fit(logits, died, WEIGHT)
    assert not result["fits"]["offset_and_scale"]["converged"] and not result["uses_scale"] and result["scale"] == 1.0
    assert "no finite maximum" in result["scale_verdict"]
    p = _sigmoid(logits - np.log(WEIGHT) + result["offset"])
    assert p.sum() == pytest.approx(1.0, abs=1e-8)  # offset only: predicted deaths = observed deaths
    with pytest.raises(calibration.NothingToFit, match="0 deaths in 6 steps"):
        calibration.fit(logits, np.zeros(6, bool), WEIGHT)
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        calibration.fit(logits, died[:5], WEIGHT)


def test_the_record_recounts():
    logits, died = _synthetic(0.8, -2.0, steps=40_000, seed=2)
    cuts = [0, 10_000, 25_000, 40_000]
    episodes = [(logits[a:b], died[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    groups = ["a", "b", "a"]
    record = calibration.calibration_record([e[0] for e in episodes], [e[1] for e in episodes], WEIGHT, {"source": "test"}, "abc", groups)
    assert record["data"] == {**record["data"], "source": "test", "episodes": 3, "steps": 40_000, "deaths": int(died.sum())}
    corrected = logits - np.log(WEIGHT)
    calibrated = record["scale"] * corrected + record["offset"]
    rate = record["death_rate"]
    assert rate["observed"] == died.mean() and rate["threshold_rule_fires"] == (logits > 0).mean()
    assert rate["raw_mean_p"] == pytest.approx(_sigmoid(logits).mean()) and rate["calibrated_mean_p"] == pytest.approx(_sigmoid(calibrated).mean())
    assert rate["weight_corrected_mean_p"] == pytest.approx(_sigmoid(corrected).mean())
    assert rate["calibrated_mean_p"] == pytest.approx(rate["observed"], rel=1e-6)  # the likelihood equation for the offset
    in_a = np.r_[np.ones(10_000, bool), np.zeros(15_000, bool), np.ones(15_000, bool)]
    for group, mask in (("a", in_a), ("b", ~in_a)):
        values = record["death_rate_by_group"][group]
        assert (values["episodes"], values["steps"], values["deaths"]) == (groups.count(group), mask.sum(), died[mask].sum())
        assert values["observed"] == died[mask].mean() and values["threshold_rule_fires"] == (logits[mask] > 0).mean()
        assert values["calibrated_mean_p"] == pytest.approx(_sigmoid(calibrated[mask]).mean())
    scores = record["scores"]
    for name, values in (("raw", logits), ("weight_corrected", corrected), ("calibrated", calibrated)):
        p = _sigmoid(values)
        assert scores[name]["log_loss"] == pytest.approx(-np.mean(died * np.log(p) + (~died) * np.log(1 - p)))
        assert scores[name]["brier"] == pytest.approx(np.mean((p - died) ** 2))
    assert scores["calibrated"]["log_loss"] < scores["weight_corrected"]["log_loss"] < scores["raw"]["log_loss"]
    bins = record["bins"]
    assert len(bins) == calibration.NUM_BINS and sum(b["count"] for b in bins) == 40_000 and sum(b["deaths"] for b in bins) == died.sum()
    order = np.sort(logits)
    assert bins[0]["logit_low"] == order[0] and bins[-1]["logit_high"] == order[-1]
    assert all(a["logit_high"] <= b["logit_low"] for a, b in zip(bins[:-1], bins[1:], strict=True))
    inside = (logits >= bins[4]["logit_low"]) & (logits <= bins[4]["logit_high"])
    assert bins[4]["count"] == inside.sum() and bins[4]["observed_frequency"] == pytest.approx(died[inside].mean())
    assert bins[4]["calibrated"] == pytest.approx(_sigmoid(calibrated[inside]).mean())
    predicted = [entry["calibrated"] * entry["count"] for entry in bins]  # each bin holds a tenth of the predicted deaths
    assert np.allclose(predicted, _sigmoid(calibrated).sum() / 10, atol=_sigmoid(calibrated).max())
    assert bins[0]["count"] > 10 * bins[-1]["count"]  # the safe steps share the first bins, the risky ones the last
    # the calibrated curve follows the observed one: the highest bin is far closer than the raw head's
    assert abs(bins[-1]["calibrated"] - bins[-1]["observed_frequency"]) < abs(bins[-1]["raw"] - bins[-1]["observed_frequency"]) / 5


@pytest.fixture
def rnn_dir(tmp_path):
    folder = tmp_path / "run" / "rnn"
    folder.mkdir(parents=True)
    (folder / "mdn_rnn.weights.h5").write_bytes(b"weights of M")
    return folder


def _config(done_rule="sampled", done_weight=WEIGHT):
    from scripts import config as config_module

    config = config_module.build("doom-smoke")
    return dataclasses.replace(
        config, controller=dataclasses.replace(config.controller, done_rule=done_rule), rnn=dataclasses.replace(config.rnn, done_weight=done_weight)
    )


def test_calibration_file_round_trip_and_the_dream_rule(rnn_dir):
    from vae.extract import weights_fingerprint

    logits, died = _synthetic(0.9, -2.0, steps=20_000, seed=3)
    record = calibration.calibration_record([logits], [died], WEIGHT, {"source": "test"}, weights_fingerprint(rnn_dir / "mdn_rnn.weights.h5"))
    path = calibration.write_calibration(rnn_dir, record)
    assert path == rnn_dir / "calibration.json" and not list(rnn_dir.glob(".*.tmp*"))
    assert calibration.read_calibration(rnn_dir, WEIGHT) == record and set(record) == set(calibration.FIELDS)
    rule = calibration.done_rule(_config(), rnn_dir)
    assert rule == DoneRule("sampled", np.log(WEIGHT), record["offset"], record["scale"])
    assert calibration.done_rule(_config("threshold"), rnn_dir) == DoneRule()
    assert calibration.done_rule(_config("threshold"), rnn_dir, kind="sampled") == rule

    with pytest.raises(ArtifactError, match=r"fit for rnn.done_weight=10.0, the config has 5.0"):
        calibration.done_rule(_config(done_weight=5.0), rnn_dir)
    (rnn_dir / "mdn_rnn.weights.h5").write_bytes(b"other weights")
    with pytest.raises(ArtifactError, match="made for other M weights") as error:
        calibration.done_rule(_config(), rnn_dir)
    assert f"python -m scripts.calibrate --run-dir {rnn_dir.parent}" in str(error.value)
    import json

    (rnn_dir / "calibration.json").write_text(json.dumps({key: value for key, value in record.items() if key != "bins"}))
    with pytest.raises(ArtifactError, match=r"not a calibration of version 1 with every field \(bins missing\)"):
        calibration.done_rule(_config(), rnn_dir)
    (rnn_dir / "calibration.json").write_text(json.dumps({**record, "offset": None}))
    with pytest.raises(ArtifactError, match="not a calibration of version 1 .* finite offset"):
        calibration.done_rule(_config(), rnn_dir)


def test_a_missing_calibration_names_the_file_and_the_command(rnn_dir):
    assert calibration.done_rule(_config("threshold"), rnn_dir) == DoneRule()  # the threshold needs no file
    with pytest.raises(ArtifactError) as error:
        calibration.done_rule(_config(), rnn_dir)
    message = str(error.value)
    assert f"{rnn_dir / 'calibration.json'} is missing" in message and f"`python -m scripts.calibrate --run-dir {rnn_dir.parent}`" in message
    assert "controller.done_rule=threshold" in message


def test_training_in_the_dream_uses_the_sampled_rule_and_needs_its_file(tmp_path):
    """train_controller with controller.done_rule=sampled stops before writing anything when
    rnn/calibration.json is missing; with it, the dream scorer is the DreamScorer with that rule."""
    from controller.dream_scoring import DreamScorer
    from controller.train import dream_scorer
    from rnn.store import load_mdn_rnn
    from scripts import train_controller
    from tests.controller_fixtures import TINY_DOOM, make_run
    from vae.extract import weights_fingerprint
    from vae.series import read_initial_z

    run_dir = tmp_path / "run"
    config = make_run(run_dir, "doom-smoke", [*TINY_DOOM, "controller.done_rule=sampled"])
    with pytest.raises(ArtifactError, match="calibration.json is missing") as error:
        train_controller.main(["--run-dir", str(run_dir)])
    assert f"python -m scripts.calibrate --run-dir {run_dir}" in str(error.value)
    assert not (run_dir / "controller").exists()

    logits, died = _synthetic(1.0, 3.0, steps=5_000, seed=5)  # offset ~3: M's logit ~ -2 (make_run) dies with p ~ 0.2 a step
    weights_file = run_dir / "rnn" / "mdn_rnn.weights.h5"
    record = calibration.calibration_record([logits], [died], WEIGHT, {"source": "test"}, weights_fingerprint(weights_file))
    calibration.write_calibration(run_dir / "rnn", record)
    scorer = dream_scorer(config, run_dir)
    model = load_mdn_rnn(run_dir / "rnn", config)
    initial_mu, initial_logvar = read_initial_z(run_dir / "series")
    settings = config.controller
    rule = DoneRule("sampled", np.log(WEIGHT), record["offset"], record["scale"])
    sampled = DreamScorer.from_config(config, model, initial_mu, initial_logvar, rule)
    threshold = DreamScorer.from_config(config, model, initial_mu, initial_logvar)
    controllers = np.random.default_rng(0).normal(scale=0.3, size=(12, sampled.controller.num_params)).astype(np.float32)
    seeds = np.arange(12, dtype=np.int64) + 2**31
    returns = scorer(controllers, seeds)
    np.testing.assert_array_equal(returns, sampled.run(controllers, seeds))
    assert returns.min() < settings.max_dream_steps and not np.array_equal(returns, threshold.run(controllers, seeds))
