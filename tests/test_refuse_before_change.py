"""Refuse before touching: a stage given one malformed input stops with exit status 2, naming the
file, and every existing file of the run directory stays byte-identical (done.json included,
also with --force); a refused stage leaves no lock file (nor DIR/.locks) behind either."""

import hashlib
import importlib
from pathlib import Path

import numpy as np
import pytest

from scripts import stage
from vae.series import write_series

SMALL = ["vae.z_size=8", "rnn.hidden_size=16", "rnn.num_mixtures=2"]


def tree(run_dir: Path) -> dict[str, str | None]:
    """Every file (its SHA-256) and folder (None) under the run directory."""
    return {str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None for path in sorted(run_dir.rglob("*"))}


def new_run(run_dir: Path, finished: tuple[str, ...]):
    config = stage.resolve_config(run_dir, "doom-smoke", SMALL)
    for name in finished:
        (run_dir / stage.STAGES[name].folder).mkdir(parents=True, exist_ok=True)
        if stage.STAGES[name].has_done:
            stage.mark_done(run_dir, name, config, summary={"epochs_completed": 1, "steps": 1})
    return config


def put(path: Path, data: bytes = b"\x89HDF\r\n\x1a\n truncated") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def bad_rollout(run_dir):
    put(run_dir / "rollouts" / "000000.npz", b"PK\x03\x04 truncated")
    return run_dir / "rollouts" / "000000.npz"


# stage -> (arguments, prepare(run_dir) -> the malformed file the message must name)
def prepare_generate(run_dir):
    new_run(run_dir, ("generate",))
    return bad_rollout(run_dir)


def prepare_train_vae(run_dir):
    new_run(run_dir, ("generate", "train_vae"))
    put(run_dir / "vae" / "encoder.weights.h5", b"weights of a finished V")
    return bad_rollout(run_dir)


def prepare_check_vae(run_dir):
    new_run(run_dir, ("generate", "train_vae"))
    put(run_dir / "rollouts" / "000000.npz", b"an episode")
    put(run_dir / "vae" / "reconstructions.png", b"the picture of an earlier check")
    put(run_dir / "vae" / "decoder.weights.h5")
    return put(run_dir / "vae" / "encoder.weights.h5")


def prepare_extract(run_dir):
    new_run(run_dir, ("generate", "train_vae", "extract"))
    write_series(run_dir / "series" / "000000.npz", np.zeros((3, 8)), np.zeros((3, 8)), np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool))
    return put(run_dir / "vae" / "encoder.weights.h5")


def prepare_train_rnn(run_dir):
    new_run(run_dir, ("generate", "train_vae", "extract", "train_rnn"))
    put(run_dir / "rnn" / "mdn_rnn.weights.h5", b"weights of a finished M")
    path = run_dir / "series" / "000000.npz"
    write_series(path, np.zeros((3, 5)), np.zeros((3, 5)), np.zeros((3, 1)), np.zeros(3), np.zeros(3, bool))  # z of 5, not 8
    return path


def prepare_train_controller(run_dir):
    # issue 11: a truncated M must not cost the finished controller its done.json
    new_run(run_dir, ("generate", "train_vae", "extract", "train_rnn", "train_controller"))
    put(run_dir / "controller" / "mean.npz", b"a finished controller")
    return put(run_dir / "rnn" / "mdn_rnn.weights.h5")


def prepare_evaluate(run_dir):
    new_run(run_dir, ("generate", "train_vae", "extract", "train_rnn", "train_controller", "evaluate"))
    put(run_dir / "eval" / "returns.json", b'{"episodes": []}')
    config = stage.build_config(run_dir, None, [])
    return put(run_dir / "controller" / f"{config.evaluate.params}.npz", b"PK\x03\x04 truncated")


def prepare_dream(run_dir):
    new_run(run_dir, ("generate", "train_vae", "extract", "train_rnn"))
    put(run_dir / "dream" / "dream.mp4", b"an earlier dream")
    put(run_dir / "dream" / "real.mp4", b"an earlier real episode")
    return put(run_dir / "vae" / "encoder.weights.h5")


CASES = {
    "generate": ([], prepare_generate),
    "train_vae": (["--force"], prepare_train_vae),
    "check_vae": (["--force"], prepare_check_vae),
    "extract": (["--force"], prepare_extract),
    "train_rnn": (["--force"], prepare_train_rnn),
    "train_controller": ([], prepare_train_controller),
    "evaluate": ([], prepare_evaluate),
    "dream": (["--force"], prepare_dream),
}


def assert_refused_unchanged(run_dir: Path, module, arguments: list[str], bad_file: Path, capsys) -> None:
    """The stage exits 2 naming bad_file, and every file of the run is as it was."""
    before = tree(run_dir)
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(module.main, ["--run-dir", str(run_dir), *arguments])
    assert exit_info.value.code == 2
    assert str(bad_file) in capsys.readouterr().err
    assert tree(run_dir) == before
    stage.release_locks()


@pytest.mark.parametrize("name", list(CASES))
def test_a_malformed_input_leaves_every_file_as_it_was(tmp_path, capsys, name):
    arguments, prepare = CASES[name]
    run_dir = tmp_path / "run"
    bad_file = prepare(run_dir)
    assert_refused_unchanged(run_dir, importlib.import_module(f"scripts.{name}"), arguments, bad_file, capsys)


def test_train_vae_refuses_a_damaged_checkpoint_before_clearing_done(tmp_path, capsys):
    """More epochs asked for would clear done.json and resume from the checkpoint: it is checked first."""
    from env.rollouts import write_rollout
    from scripts import train_vae

    config = new_run(tmp_path, ("generate", "train_vae"))
    write_rollout(tmp_path / "rollouts" / "000000.npz", np.zeros((2, 64, 64, 3), np.uint8), np.zeros((2, 1)), np.zeros(2), np.zeros(2, bool))
    checkpoint = put(tmp_path / "vae" / "checkpoints" / "last.npz", b"PK\x03\x04 cut by a full disk")
    assert_refused_unchanged(tmp_path, train_vae, ["--set", f"vae.epochs={config.vae.epochs + 1}"], checkpoint, capsys)


def test_train_rnn_refuses_a_damaged_checkpoint_before_clearing_done(tmp_path, capsys):
    """More epochs asked for would clear done.json and resume from M's checkpoint: it is checked first."""
    from scripts import train_rnn
    from vae.series import write_series

    config = new_run(tmp_path, ("generate", "train_vae", "extract", "train_rnn"))
    mu = np.zeros((5, config.vae.z_size), np.float32)
    write_series(tmp_path / "series" / "000000.npz", mu, mu, np.zeros((5, 1), np.float32), np.zeros(5, np.float32), np.zeros(5, bool))
    put(tmp_path / "rnn" / "mdn_rnn.weights.h5", b"weights")
    checkpoint = put(tmp_path / "rnn" / "checkpoints" / "last.npz", b"PK\x03\x04 cut by a full disk")
    assert_refused_unchanged(tmp_path, train_rnn, ["--set", f"rnn.epochs={config.rnn.epochs + 1}"], checkpoint, capsys)
