"""The train_rnn and dream stages on a tiny run directory (doom-smoke sizes shrunk)."""

import numpy as np
import pytest

from scripts import stage
from vae.series import write_initial_z, write_series

Z_SIZE = 4
SETTINGS = ["--set", f"vae.z_size={Z_SIZE}", "--set", "rnn.hidden_size=16", "--set", "rnn.num_steps=4", "--set", "rnn.log_every=2", "--set", "env.max_steps=30"]


@pytest.fixture
def run_dir(tmp_path):
    """A run with V (untrained weights) and series for 3 episodes, 'extract' marked done."""
    from vae.model import build_decoder, build_encoder

    run = tmp_path / "run"
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


def test_train_rnn_then_dream_videos(run_dir):
    from scripts import dream, train_rnn

    train_rnn.main(["--run-dir", str(run_dir)])
    assert (run_dir / "rnn" / "mdn_rnn.weights.h5").exists()
    assert (run_dir / "rnn" / "done.json").exists()
    train_rnn.main(["--run-dir", str(run_dir)])  # finished: a rerun does nothing

    dream.main(["--run-dir", str(run_dir), "--max-steps", "8", "--format", "gif", "--tau", "1.0"])
    import imageio.v2 as imageio

    dream_frames = imageio.mimread(run_dir / "dream" / "dream.gif")
    assert 2 <= len(dream_frames) <= 9 and dream_frames[0].shape[:2] == (256, 256)
    real_frames = imageio.mimread(run_dir / "dream" / "real.gif")
    assert len(real_frames) >= 2 and real_frames[0].shape[:2] == (256, 512)


def test_dream_uses_the_controllers_mean(run_dir, capsys):
    from controller import linear
    from scripts import dream, train_rnn

    train_rnn.main(["--run-dir", str(run_dir)])
    config = stage.resolve_config(run_dir, None, [])
    shape = linear.ControllerShape.from_config(config)
    linear.save_params(run_dir / "controller" / "mean.npz", np.full(shape.num_params, 0.01, np.float32), shape)
    dream.main(["--run-dir", str(run_dir), "--max-steps", "5"])
    output = capsys.readouterr().out
    assert "acted by the controller's mean" in output
    assert (run_dir / "dream" / "dream.mp4").stat().st_size > 0 and (run_dir / "dream" / "real.mp4").stat().st_size > 0


def test_dream_needs_a_trained_m(run_dir):
    from scripts import dream

    with pytest.raises(stage.StageError, match="train_rnn"):
        dream.main(["--run-dir", str(run_dir)])


def test_series_of_another_z_size_are_refused(run_dir):
    from env.files import ArtifactError
    from rnn.data import SeriesData

    with pytest.raises(ArtifactError, match=r"000000\.npz: 'mu' has shape \(30, 4\), expected \(T, 8\)"):
        SeriesData(run_dir / "series", 8, 1)
