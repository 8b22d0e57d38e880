"""Loading M's final weights from a run directory, checked against the config."""

from pathlib import Path

from common.errors import ArtifactError
from common.layout import RNN_WEIGHTS_NAME as WEIGHTS_NAME
from common.layout import command as stage_command
from rnn.model import MdnRnn, build_mdn_rnn


def _stored_shapes(path: Path) -> list[tuple[str, tuple]]:
    import h5py

    shapes = []
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: shapes.append((name, tuple(item.shape))) if isinstance(item, h5py.Dataset) else None)
    return shapes


def load_mdn_rnn(rnn_dir: str | Path, config) -> MdnRnn:
    """M built from config (config.rnn, config.vae.z_size, config.env.action_size) with the
    weights of rnn_dir/mdn_rnn.weights.h5; ArtifactError naming the file if it is missing or
    was made for other sizes (z, action, LSTM, mixtures, heads)."""
    path = Path(rnn_dir) / WEIGHTS_NAME
    command = stage_command("train_rnn", Path(rnn_dir).parent)
    if not path.exists():
        raise ArtifactError(f"{path} is missing; run `{command}`")
    fix = f"rerun `{command} --force`"
    model = build_mdn_rnn(config.rnn, config.vae.z_size, config.env.action_size)
    expected = [tuple(weight.shape) for weight in model.weights]
    try:
        stored = _stored_shapes(path)
    except OSError as error:
        raise ArtifactError(f"{path}: unreadable ({error}); {fix}") from error
    if sorted(shape for _, shape in stored) != sorted(expected):
        raise ArtifactError(
            f"{path}: weight shapes {[shape for _, shape in stored]} do not match this config's M "
            f"(z_size={config.vae.z_size}, action_size={config.env.action_size}, hidden_size={config.rnn.hidden_size}, "
            f"num_mixtures={config.rnn.num_mixtures}, restart_input={config.rnn.restart_input}, "
            f"predict_done={config.rnn.predict_done}, predict_reward={config.rnn.predict_reward}: expected {expected}); {fix}"
        )
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise ArtifactError(f"{path}: cannot be loaded into this config's M ({error}); {fix}") from error
    return model
