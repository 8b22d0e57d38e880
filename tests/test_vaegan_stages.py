"""The VAE/GAN through the stage entry points: everything downstream of V works unchanged."""

import json

import numpy as np
import pytest
from PIL import Image

from scripts import check_vae, extract, generate, pipeline, train_vae
from vae.series import list_series, read_initial_z, read_series


def test_vaegan_generate_train_check_extract_on_doom_smoke(tmp_path):
    run_dir = str(tmp_path / "doom-vaegan")
    generate.main(
        ["--run-dir", run_dir, "--preset", "doom-smoke", "--set", "generate.num_rollouts=2", "--set", "vae.kind=vaegan", "--set", "generate.num_workers=1"]
    )
    train_vae.main(["--run-dir", run_dir, "--set", "vae.max_train_steps=4"])
    check_vae.main(["--run-dir", run_dir])
    extract.main(["--run-dir", run_dir])

    config = json.loads((tmp_path / "doom-vaegan" / "config.json").read_text())
    assert config["vae"]["kind"] == "vaegan"
    assert (tmp_path / "doom-vaegan" / "vae" / "discriminator.weights.h5").exists()
    assert Image.open(tmp_path / "doom-vaegan" / "vae" / "reconstructions.png").size[0] > 0
    series = list_series(tmp_path / "doom-vaegan" / "series")
    assert len(series) == 2
    arrays = read_series(series[0], z_size=64, action_size=1)
    assert np.isfinite(arrays["mu"]).all() and np.isfinite(arrays["logvar"]).all()
    initial_mu, _ = read_initial_z(tmp_path / "doom-vaegan" / "series", z_size=64)
    np.testing.assert_array_equal(initial_mu[0], arrays["mu"][0])


@pytest.mark.slow
def test_vaegan_whole_carracing_smoke_pipeline(tmp_path):
    run_dir = tmp_path / "carracing-vaegan"
    pipeline.main(["--preset", "carracing-smoke", "--run-dir", str(run_dir), "--set", "vae.kind=vaegan"])
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert np.isfinite(summary["mean"])
    assert (run_dir / "dream" / "dream.mp4").stat().st_size > 0
