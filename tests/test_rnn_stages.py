"""The train_rnn and dream stages on a tiny run directory (doom-smoke sizes shrunk)."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.files import read_json
from scripts import stage
from vae.series import write_initial_z, write_series

Z_SIZE = 4
SETTINGS = ["--set", f"vae.z_size={Z_SIZE}", "--set", "rnn.hidden_size=16", "--set", "rnn.epochs=1", "--set", "rnn.log_every=2", "--set", "env.max_steps=30"]


def make_run(run):
    """A run with V (untrained weights) and series for 3 episodes, 'extract' marked done."""
    from vae.model import build_decoder, build_encoder

    config = stage.resolve_config(run, "doom-smoke", SETTINGS[1::2])
    (run / "vae").mkdir(parents=True)
    build_encoder(Z_SIZE).save_weights(run / "vae" / "encoder.weights.h5")
    build_decoder(Z_SIZE).save_weights(run / "vae" / "decoder.weights.h5")
    rng = np.random.default_rng(0)
    series = run / "series"
    series.mkdir()
    for index, length in enumerate((30, 45, 25)):
        done = np.zeros(length, bool)
        done[-1] = True
        mu = rng.normal(size=(length, Z_SIZE))
        write_series(series / f"{index:06d}.npz", mu, np.full_like(mu, -3.0), rng.uniform(-1, 1, (length, 1)), np.ones(length), done)
    write_initial_z(series, rng.normal(size=(3, Z_SIZE)), np.full((3, Z_SIZE), -3.0))
    stage.mark_done(run, "extract", config)
    return run


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """make_run's run after `python -m scripts.train_rnn`, made once: tests that need a trained M copy it."""
    from scripts import train_rnn

    run = make_run(tmp_path_factory.mktemp("rnn_stages") / "run")
    train_rnn.main(["--run-dir", str(run)])
    stage.release_locks()
    return run


@pytest.fixture
def trained_run(trained_once, tmp_path):
    return Path(shutil.copytree(trained_once, tmp_path / "run"))


def test_train_rnn_then_dream_videos(run_dir, capsys):
    from scripts import dream, train_rnn

    train_rnn.main(["--run-dir", str(run_dir)])
    assert (run_dir / "rnn" / "mdn_rnn.weights.h5").exists()
    assert (run_dir / "rnn" / "done.json").exists()
    weights_time = (run_dir / "rnn" / "mdn_rnn.weights.h5").stat().st_mtime_ns
    train_rnn.main(["--run-dir", str(run_dir)])  # finished: a rerun does nothing
    assert "already finished" in capsys.readouterr().out
    assert (run_dir / "rnn" / "mdn_rnn.weights.h5").stat().st_mtime_ns == weights_time
    one_epoch = read_json(run_dir / "rnn" / "done.json")["summary"]
    train_rnn.main(["--run-dir", str(run_dir), "--set", "rnn.epochs=2"])  # more epochs asked for: it continues
    two_epochs = read_json(run_dir / "rnn" / "done.json")["summary"]
    assert two_epochs["epochs"] == 2 and two_epochs["steps"] == 2 * one_epoch["steps"]

    dream.main(["--run-dir", str(run_dir), "--max-steps", "8", "--format", "gif", "--tau", "1.0"])
    output = capsys.readouterr().out
    import imageio.v2 as imageio

    dream_steps, dream_return = re.search(r"dream at tau 1.0, (\d+) steps, return ([\d.]+)", output).groups()
    dream_frames = imageio.mimread(run_dir / "dream" / "dream.gif")
    assert 1 <= int(dream_steps) <= 8 and float(dream_return) == int(dream_steps)  # +1 per dream step
    # the start frame, then one per step (a GIF writer may merge identical neighbours: at most that many)
    assert 2 <= len(dream_frames) <= int(dream_steps) + 1 and dream_frames[0].shape[:2] == (256, 256)
    real_count = int(re.search(r"real episode \((\d+) frames", output).group(1))
    real_frames = imageio.mimread(run_dir / "dream" / "real.gif")
    assert (
        real_count == 30 and 2 <= len(real_frames) <= real_count and real_frames[0].shape[:2] == (256, 608)
    )  # env.max_steps=30; 160x120 kept at 341x256 + 256, padded to 16


@pytest.mark.parametrize(("arguments", "message"), [(["--tau", "0"], r"tau=0.0 .*expected a number > 0"), (["--max-steps", "0"], r"cap 0 .*at least 1")])
def test_dream_refuses_bad_arguments(trained_run, arguments, message):
    from scripts import dream

    with pytest.raises(stage.StageError, match=message):
        dream.main(["--run-dir", str(trained_run), *arguments])
    assert not (trained_run / "dream").exists()


def test_dream_uses_the_controllers_mean(trained_run, capsys):
    from controller import store
    from controller.policy import controller_from_config
    from scripts import dream

    run_dir = trained_run
    config = stage.resolve_config(run_dir, None, [])
    controller = controller_from_config(config)
    store.save_params(run_dir / "controller" / "mean.npz", np.full(controller.num_params, 0.01, np.float32), controller)
    dream.main(["--run-dir", str(run_dir), "--max-steps", "5"])
    output = capsys.readouterr().out
    assert "acted by the saved controller controller/mean.npz" in output
    import imageio.v2 as imageio

    dream_steps = int(re.search(r"dream at tau [\d.]+, (\d+) steps", output).group(1))
    assert len(imageio.mimread(run_dir / "dream" / "dream.mp4")) == dream_steps + 1  # the start frame, then one per step
    real_count = int(re.search(r"real episode \((\d+) frames", output).group(1))
    assert real_count == 30 and len(imageio.mimread(run_dir / "dream" / "real.mp4")) == real_count  # env.max_steps=30: truncated


def test_dream_needs_a_trained_m(run_dir):
    from scripts import dream

    with pytest.raises(stage.StageError, match="train_rnn"):
        dream.main(["--run-dir", str(run_dir)])


def test_series_of_another_z_size_are_refused(run_dir):
    from common.errors import ArtifactError
    from rnn.data import SeriesData

    with pytest.raises(ArtifactError, match=r"000000\.npz: 'mu' has shape \(30, 4\), expected \(T, 8\)"):
        SeriesData(run_dir / "series", 8, 1)


def test_train_rnn_writes_the_calibration_and_calibrate_remakes_it(run_dir, capsys):
    """train_rnn fits M's done head on its held-out episode into rnn/calibration.json; scripts.calibrate
    makes the same file again; the dream with controller.done_rule=sampled reads it, and without it stops
    naming the file and the command that makes it."""
    from common.errors import ArtifactError
    from rnn.data import split_series_paths
    from rnn.fidelity import TeacherForcing
    from rnn.store import load_mdn_rnn
    from scripts import calibrate, dream, train_rnn
    from vae.extract import weights_fingerprint
    from vae.series import read_series

    train_rnn.main(["--run-dir", str(run_dir)])
    path = run_dir / "rnn" / "calibration.json"
    record = read_json(path)
    _, heldout = split_series_paths(sorted((run_dir / "series").glob("0*.npz")), 0.02, 0)  # rnn.validation_fraction, rnn.seed
    episode = read_series(heldout[0])
    assert record["data"]["source"] == "heldout" and record["data"]["series"] == {"series": [heldout[0].name]}
    assert (record["data"]["episodes"], record["data"]["steps"], record["data"]["deaths"]) == (1, len(episode["done"]), 1)
    assert record["m_sha256"] == weights_fingerprint(run_dir / "rnn" / "mdn_rnn.weights.h5") and record["done_weight"] == 10.0
    summary = read_json(run_dir / "rnn" / "done.json")["summary"]["calibration"]
    assert (summary["offset"], summary["scale"]) == (record["offset"], record["scale"])
    # the logits it was fit on: M over the held-out episode, z resampled as in training (noise seed 0)
    config = stage.resolve_config(run_dir, None, [])
    logits = TeacherForcing(load_mdn_rnn(run_dir / "rnn", config)).run([episode], noise_seed=0)[0]["done_logit"].astype(np.float64)
    assert record["death_rate"]["threshold_rule_fires"] == (logits > 0).mean()
    calibrated = record["scale"] * (logits - np.log(10.0)) + record["offset"]
    assert record["death_rate"]["calibrated_mean_p"] == pytest.approx((1 / (1 + np.exp(-calibrated))).mean())
    assert "M's done head calibrated: heldout, 1 episodes, 1 deaths" in capsys.readouterr().out

    before = path.read_bytes()
    path.unlink()
    calibrate.main(["--run-dir", str(run_dir)])
    assert path.read_bytes() == before, "the same held-out episodes and M make the same file"
    assert "calibrate: heldout, 1 episodes, 1 deaths" in capsys.readouterr().out

    dream.main(["--run-dir", str(run_dir), "--max-steps", "8", "--format", "gif", "--set", "controller.done_rule=sampled"])
    sign = "-" if record["offset"] < 0 else "+"
    described = f"done rule sampled, p = sigmoid({record['scale']:.4g} (done logit - 2.303) {sign} {abs(record['offset']):.4g})"
    assert described in capsys.readouterr().out
    path.unlink()
    shutil.rmtree(run_dir / "dream")
    with pytest.raises(ArtifactError) as error:
        dream.main(["--run-dir", str(run_dir)])
    assert f"{path} is missing" in str(error.value) and f"python -m scripts.calibrate --run-dir {run_dir}" in str(error.value)
    assert not (run_dir / "dream").exists()
