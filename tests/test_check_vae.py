"""The V stages end to end through their entry points: train_vae -> check_vae -> extract."""

import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from common.errors import ArtifactError
from common.files import read_json
from env.rollouts import read_rollout
from scripts import check_vae, extract, stage, train_vae
from tests.vae_synthetic import write_synthetic_rollouts
from vae.encode import reconstruct
from vae.model import build_decoder, build_encoder
from vae.reconstruction import figure_size_pixels, per_image_error, scan_episodes
from vae.series import list_series, read_initial_z

FAST = ["--set", "vae.batch_size=8", "--set", "vae.max_train_steps=3", "--set", "vae.shuffle_buffer=32"]


@pytest.fixture
def generated_run(tmp_path):
    """A run directory as `scripts.generate --preset carracing-smoke` leaves it (synthetic frames)."""
    run_dir = tmp_path / "run"
    config = stage.resolve_config(run_dir, "carracing-smoke", [])
    write_synthetic_rollouts(run_dir / "rollouts", num_episodes=5, num_steps=8)
    stage.mark_done(run_dir, "generate", config)
    return run_dir


def test_stages_end_to_end_and_picture_size(generated_run, capsys):
    run_dir = generated_run
    with pytest.raises(stage.StageError, match="train_vae"):
        check_vae.main(["--run-dir", str(run_dir)])
    train_vae.main(["--run-dir", str(run_dir), *FAST])
    assert read_json(run_dir / "vae" / "done.json")["summary"]["steps"] == 3

    check_vae.main(["--run-dir", str(run_dir), "--num-frames", "6"])
    output = capsys.readouterr().out
    assert "mean held-out reconstruction error" in output
    picture = plt.imread(run_dir / "vae" / "reconstructions.png")
    width, height = figure_size_pixels(6)
    assert picture.shape[:2] == (height, width)
    assert width >= 6 * 64 * 3 and height >= 3 * 64 * 3  # frames shown at 3x

    extract.main(["--run-dir", str(run_dir)])
    assert len(list_series(run_dir / "series")) == 5
    assert read_initial_z(run_dir / "series", 32)[0].shape == (5, 32)
    assert read_json(run_dir / "series" / "done.json")["summary"]["episodes"] == 5

    # The same command again: nothing trained, nothing rewritten.
    checkpoint = run_dir / "vae" / "checkpoints" / "last.npz"
    before = checkpoint.stat().st_mtime_ns
    capsys.readouterr()
    train_vae.main(["--run-dir", str(run_dir), *FAST])
    assert "already finished" in capsys.readouterr().out
    assert checkpoint.stat().st_mtime_ns == before

    # Asking for more steps continues training from its checkpoint; series of the old V are then refused.
    train_vae.main(["--run-dir", str(run_dir), *FAST, "--set", "vae.max_train_steps=4"])
    assert read_json(run_dir / "vae" / "done.json")["summary"]["steps"] == 4
    with pytest.raises(ArtifactError, match="another V"):
        extract.main(["--run-dir", str(run_dir)])
    extract.main(["--run-dir", str(run_dir), "--force"])

    # Another z size contradicts the finished training: refused before anything runs.
    with pytest.raises(stage.StageError, match="vae.z_size"):
        extract.main(["--run-dir", str(run_dir), "--set", "vae.z_size=64"])


def test_scan_picks_frames_round_robin_and_averages_the_error_over_every_frame(tmp_path):
    paths = write_synthetic_rollouts(tmp_path, num_episodes=3, num_steps=7)  # 7, 8 and 9 frames
    encoder, decoder = build_encoder(8), build_decoder(8)
    frames, mean_error, num_frames = scan_episodes(encoder, decoder, paths, num_frames=5, batch_size=4)
    episodes = [read_rollout(path)["obs"] for path in paths]
    # 2, 2 and 1 frames, evenly spaced inside each episode, neighbouring columns from different episodes
    expected = [episodes[0][2], episodes[1][2], episodes[2][4], episodes[0][4], episodes[1][5]]
    np.testing.assert_array_equal(frames, np.stack(expected))
    every_frame = np.concatenate(episodes)
    errors = per_image_error(every_frame.astype(np.float32) / 255.0, reconstruct(encoder, decoder, every_frame))
    assert num_frames == 24
    np.testing.assert_allclose(mean_error, errors.mean(), rtol=1e-5)


def test_a_run_without_rollouts_is_checked_on_freshly_played_episodes(tmp_path, monkeypatch, capsys):
    """No rollouts (an exported agent ships none): check_vae plays --episodes new episodes of the
    run's random policy on seeds --seed + k with generate's code, in a temporary folder it removes,
    and reports V on exactly those frames."""
    import dataclasses
    import tempfile

    from env.collect import collect_rollouts
    from env.rollouts import list_episodes

    run_dir = tmp_path / "run"
    config = stage.resolve_config(run_dir, "carracing-smoke", ["vae.z_size=8"])
    encoder, decoder = build_encoder(8), build_decoder(8)
    (run_dir / "vae").mkdir()
    encoder.save_weights(run_dir / "vae" / "encoder.weights.h5")
    decoder.save_weights(run_dir / "vae" / "decoder.weights.h5")
    stage.mark_done(run_dir, "train_vae", config)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    out = tmp_path / "pictures" / "fresh.png"
    check_vae.main(["--run-dir", str(run_dir), "--episodes", "2", "--seed", "123", "--num-frames", "3", "--out", str(out)])
    output = capsys.readouterr().out
    # the same episodes, played here by generate's collection code
    reference = tmp_path / "reference"
    collect_rollouts(reference, config.env, dataclasses.replace(config.generate, num_rollouts=2, base_seed=123))
    _, mean_error, num_frames = scan_episodes(encoder, decoder, list_episodes(reference), 3, config.vae.extract_batch_size)
    assert num_frames == 2 * config.env.max_steps  # carracing-smoke: no episode ends before its cap
    assert "holds no rollouts (none on disk): playing 2 fresh episodes of the random data-collection policy ('brownian') on seeds 123 + k" in output
    assert f"mean reconstruction error {mean_error:.2f} (summed squared error per image) over {num_frames} freshly played frames" in output
    assert "seeds 123, 124); picture: " + str(out) in output
    picture = plt.imread(out)
    width, height = figure_size_pixels(3)
    assert picture.shape[:2] == (height, width)
    assert not (run_dir / "rollouts").exists() and not (run_dir / "vae" / "reconstructions.png").exists()
    assert list(scratch.iterdir()) == []  # the temporary episodes are gone

    with pytest.raises(stage.StageError, match=r"--episodes 0: expected at least 1"):
        check_vae.main(["--run-dir", str(run_dir), "--episodes", "0"])
    with pytest.raises(stage.StageError, match=r"--seed 536870912: expected 0 <= seed < 2\^29"):
        check_vae.main(["--run-dir", str(run_dir), "--seed", str(2**29)])
    stage.release_locks()


PRETRAINED_DOOM = Path(__file__).resolve().parents[1] / "pretrained" / "doom"


@pytest.mark.skipif(not (PRETRAINED_DOOM / "EXPORTED.json").is_file(), reason="no committed Doom agent in this checkout")
def test_the_committed_doom_agent_is_checked_on_fresh_frames_without_dirtying_the_repository(tmp_path, capsys):
    """On a copy of pretrained/doom: fresh frames, a picture in vae/reconstructions.png (a path git
    ignores under pretrained/), every committed file untouched, and no advice to generate there."""
    agent = tmp_path / "doom"
    shutil.copytree(PRETRAINED_DOOM, agent, ignore=shutil.ignore_patterns(".locks", "eval*", "dream", "fidelity", "reconstructions.png"))
    committed = {path: path.read_bytes() for path in agent.rglob("*") if path.is_file()}
    check_vae.main(["--run-dir", str(agent), "--episodes", "1", "--num-frames", "2"])
    stage.release_locks()
    output = capsys.readouterr().out
    assert "holds no rollouts (an exported agent ships none)" in output and "freshly played frames" in output
    assert "scripts.generate" not in output
    assert {path: path.read_bytes() for path in committed} == committed
    assert sorted(str(path.relative_to(agent)) for path in agent.rglob("*") if path.is_file() and path not in committed) == [
        ".locks/vae.lock",
        "vae/reconstructions.png",
    ]
    assert plt.imread(agent / "vae" / "reconstructions.png").shape[:2] == figure_size_pixels(2)[::-1]
    ignored = subprocess.run(
        ["git", "check-ignore", "pretrained/doom/vae/reconstructions.png", "pretrained/doom/.locks/vae.lock"],
        cwd=PRETRAINED_DOOM.parents[1],
        capture_output=True,
        text=True,
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.stdout.split() == ["pretrained/doom/vae/reconstructions.png", "pretrained/doom/.locks/vae.lock"]


def test_the_picture_says_what_v_was_trained_on_and_calls_a_smoke_v_a_smoke_v(tmp_path, monkeypatch):
    """The caption comes from DIR/vae/done.json; a smoke preset's V is named as such, so its blur
    is not taken for what V learns."""
    smoke_dir, full_dir = tmp_path / "smoke", tmp_path / "full"
    summary = {"training_frames": 814, "epochs_completed": 8, "steps": 208}
    stage.mark_done(smoke_dir, "train_vae", stage.resolve_config(smoke_dir, "doom-smoke", []), summary=summary)
    caption = check_vae.training_caption(stage.resolve_config(smoke_dir, None, []), smoke_dir)
    assert caption == (
        "smoke V (preset doom-smoke), trained on 814 frames, 8 epochs, 208 steps: expect blur; a V trained by the full preset draws the scene (docs/results.md)"
    )
    full = {"training_frames": 3083104, "epochs_completed": 1, "steps": 30832}
    stage.mark_done(full_dir, "train_vae", stage.resolve_config(full_dir, "doom", []), summary=full)
    assert check_vae.training_caption(stage.resolve_config(full_dir, None, []), full_dir) == (
        "V (preset doom), trained on 3,083,104 frames, 1 epoch, 30,832 steps"
    )

    # check_vae puts it under the picture's title
    import vae.reconstruction

    titles = []
    monkeypatch.setattr(vae.reconstruction, "reconstruction_figure", lambda *arguments, **keywords: titles.append(arguments[4]))
    run_dir = tmp_path / "run"
    config = stage.resolve_config(run_dir, "carracing-smoke", ["vae.z_size=8"])
    write_synthetic_rollouts(run_dir / "rollouts", num_episodes=5, num_steps=8)
    stage.mark_done(run_dir, "generate", config)
    (run_dir / "vae").mkdir()
    build_encoder(8).save_weights(run_dir / "vae" / "encoder.weights.h5")
    build_decoder(8).save_weights(run_dir / "vae" / "decoder.weights.h5")
    stage.mark_done(run_dir, "train_vae", config, summary=summary)
    check_vae.main(["--run-dir", str(run_dir), "--num-frames", "2"])
    stage.release_locks()
    (title,) = titles
    assert title.endswith(
        "\nsmoke V (preset carracing-smoke), trained on 814 frames, 8 epochs, 208 steps: expect blur; a V trained by the full preset draws the scene (docs/results.md)"
    )
