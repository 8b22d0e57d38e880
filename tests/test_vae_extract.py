"""Series extraction: shapes and values, the first-frame table, resumability, the z-size check."""

import os

import numpy as np
import pytest

from common.errors import ArtifactError
from env.rollouts import read_rollout
from tests.vae_synthetic import write_synthetic_rollouts
from vae.config import VaeConfig
from vae.encode import encode_frames
from vae.extract import check_source, extract_series
from vae.model import build_encoder
from vae.series import INITIAL_Z_NAME, read_initial_z, read_series
from vae.store import load_encoder_decoder, load_part


def quiet(_line):
    pass


@pytest.fixture(scope="module")
def encoder():
    return build_encoder(32)


def test_series_hold_encodings_and_rollout_fields(tmp_path, encoder):
    rollouts = write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=3, num_steps=6)
    summary = extract_series(tmp_path / "rollouts", tmp_path / "series", encoder, action_size=3, batch_size=4, progress=False, log=quiet)
    assert summary == {"episodes": 3, "frames": 6 + 7 + 8, "encoded_now": 3}
    first_frames = []
    for path in rollouts:
        rollout = read_rollout(path)
        series = read_series(tmp_path / "series" / path.name, z_size=32, action_size=3)
        assert series["mu"].dtype == np.float32 and series["mu"].shape == (len(rollout["obs"]), 32)
        assert series["logvar"].shape == series["mu"].shape
        mu, logvar = encode_frames(encoder, rollout["obs"], batch_size=1000)
        np.testing.assert_allclose(series["mu"], mu, rtol=1e-5, atol=1e-6)  # batch size does not change the codes
        np.testing.assert_allclose(series["logvar"], logvar, rtol=1e-5, atol=1e-6)
        for key in ("action", "reward", "done"):
            np.testing.assert_array_equal(series[key], rollout[key])
        first_frames.append(series["mu"][0])
    initial_mu, initial_logvar = read_initial_z(tmp_path / "series", z_size=32)
    assert initial_mu.shape == initial_logvar.shape == (3, 32)
    np.testing.assert_array_equal(initial_mu, np.stack(first_frames))


def test_rerun_encodes_only_missing_episodes(tmp_path, encoder):
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=3, num_steps=5)
    series_dir = tmp_path / "series"
    extract_series(tmp_path / "rollouts", series_dir, encoder, action_size=3, progress=False, log=quiet)
    first_table = read_initial_z(series_dir, 32)
    kept = series_dir / "000000.npz"
    os.utime(kept, ns=(1, 1))  # mark: a rewrite would change the modification time
    (series_dir / "000002.npz").unlink()
    (series_dir / INITIAL_Z_NAME).unlink()
    summary = extract_series(tmp_path / "rollouts", series_dir, encoder, action_size=3, progress=False, log=quiet)
    assert summary["encoded_now"] == 1 and summary["episodes"] == 3
    assert kept.stat().st_mtime_ns == 1
    for rebuilt, first in zip(read_initial_z(series_dir, 32), first_table, strict=True):  # kept and new series in episode order
        np.testing.assert_array_equal(rebuilt, first)


def test_series_of_another_encoder_are_refused(tmp_path):
    check_source(tmp_path / "series", "aaaa", tmp_path)
    write_synthetic_rollouts(tmp_path / "series", num_episodes=1, num_steps=3)  # stands for an existing series file
    with pytest.raises(ArtifactError, match="another V.*--force"):
        check_source(tmp_path / "series", "bbbb", tmp_path)


def test_z_size_mismatch_names_file_sizes_and_fix(tmp_path, encoder):
    vae_dir = tmp_path / "vae"
    vae_dir.mkdir()
    encoder.save_weights(vae_dir / "encoder.weights.h5")
    with pytest.raises(ArtifactError) as error:
        load_part(vae_dir, "encoder", VaeConfig(z_size=64))
    message = str(error.value)
    assert "encoder.weights.h5" in message and "z size 32" in message and "vae.z_size=64" in message
    assert f"python -m scripts.train_vae --run-dir {tmp_path}" in message
    with pytest.raises(ArtifactError, match=r"decoder\.weights\.h5 is missing.*scripts\.train_vae"):
        load_encoder_decoder(vae_dir, VaeConfig(z_size=32))


def test_wrong_action_size_in_rollouts_is_refused(tmp_path, encoder):
    write_synthetic_rollouts(tmp_path / "rollouts", num_episodes=1, num_steps=3, action_size=1)
    with pytest.raises(ArtifactError, match=r"000000\.npz.*'action'.*\(T, 3\)"):
        extract_series(tmp_path / "rollouts", tmp_path / "series", encoder, action_size=3, progress=False, log=quiet)
