"""Loading V's final weights for the stages after training (extraction, dreams, the agent).

DIR/vae/encoder.weights.h5 and decoder.weights.h5 (Keras 3 format), written by
vae/train.py. Before loading, the z size stored in each file is compared with
the config's, so a mismatch is a clear ArtifactError, not a Keras shape error.
"""

from pathlib import Path

import h5py

from common.errors import ArtifactError
from vae.model import build_decoder, build_encoder


def stored_z_size(path: Path, part: str) -> int | None:
    """The z size a weights file was built for: the encoder's (1024, Z) dense kernels,
    the decoder's (Z, 1024) first dense kernel. None if the file shows neither."""
    shapes = []
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: shapes.append(item.shape) if isinstance(item, h5py.Dataset) else None)
    for shape in shapes:
        if len(shape) == 2 and part == "encoder" and shape[0] == 1024:
            return int(shape[1])
        if len(shape) == 2 and part == "decoder" and shape[1] == 1024:
            return int(shape[0])
    return None


def _fix_command(vae_dir: Path) -> str:
    return f"python -m scripts.train_vae --run-dir {vae_dir.parent}"


def load_part(vae_dir: str | Path, part: str, z_size: int):
    """Build the encoder or decoder for `z_size` and load DIR/vae/<part>.weights.h5 into it."""
    vae_dir = Path(vae_dir)
    path = vae_dir / f"{part}.weights.h5"
    if not path.exists():
        raise ArtifactError(f"{path} is missing: V has not been trained in this run. Run `{_fix_command(vae_dir)}` first.")
    try:
        file_z = stored_z_size(path, part)
    except OSError as error:
        raise ArtifactError(f"{path}: unreadable weights file ({error}); rerun `{_fix_command(vae_dir)} --force`") from error
    if file_z is not None and file_z != z_size:
        raise ArtifactError(
            f"{path} was trained with z size {file_z}, but the config asks for vae.z_size={z_size}. "
            f"Retrain V with this z size (`{_fix_command(vae_dir)} --force --set vae.z_size={z_size}`), "
            f"or use --set vae.z_size={file_z} (or a new --run-dir)."
        )
    model = build_encoder(z_size) if part == "encoder" else build_decoder(z_size)
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise ArtifactError(f"{path}: does not fit the {part} of V with z size {z_size} ({error}); rerun `{_fix_command(vae_dir)} --force`") from error
    return model


def load_encoder_decoder(vae_dir: str | Path, vae_config):
    """(encoder, decoder) with the trained weights, for vae_config.z_size (either vae.kind)."""
    return load_part(vae_dir, "encoder", vae_config.z_size), load_part(vae_dir, "decoder", vae_config.z_size)
