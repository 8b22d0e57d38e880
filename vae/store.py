"""Loading V's final weights for the stages after training (extraction, dreams, the agent).

DIR/vae/<part>.weights.h5 (Keras 3 format), written by vae/train.py for each of
the model's parts (encoder, decoder; + discriminator for the VAE/GAN). The model
is the one vae.kind names, built by vae/build.py as training builds it. Before
loading, the shapes of the arrays in each file are compared with the part's
variables, so a file of another z size, kind or architecture is a clear
ArtifactError, not a Keras shape error or a silent partial load.
"""

import dataclasses
from collections import Counter
from pathlib import Path

import h5py

from common.errors import ArtifactError
from common.layout import command as stage_command
from common.layout import vae_weights_name
from vae.build import construct


def stored_shapes(path: Path) -> Counter:
    """The shapes of every array a weights file holds, counted (one array per variable)."""
    shapes = Counter()
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: shapes.update([tuple(item.shape)]) if isinstance(item, h5py.Dataset) else None)
    return shapes


def variable_shapes(model) -> Counter:
    """The shapes of a model's variables, counted: what its weights file holds."""
    return Counter(tuple(variable.shape) for variable in model.weights)


def _fix_command(vae_dir: Path) -> str:
    return stage_command("train_vae", vae_dir.parent)


def _stored_z_size(part: str, vae_config, shapes: Counter, expected: Counter) -> int | None:
    """The z size whose `part` of the same kind has exactly the file's shapes; None if none. Candidates: the
    sizes a file-only array has where a variable the file lacks has z_size, all its other dimensions equal."""
    z_size = vae_config.z_size
    sizes = sorted(
        {
            stored[axis]
            for stored in shapes - expected
            for wanted in expected - shapes
            if len(stored) == len(wanted)
            for axis in range(len(stored))
            if wanted[axis] == z_size and stored[:axis] + stored[axis + 1 :] == wanted[:axis] + wanted[axis + 1 :]
        }
    )
    for size in sizes:
        if variable_shapes(construct(dataclasses.replace(vae_config, z_size=size)).parts()[part]) == shapes:
            return size
    return None


def _refuse(path: Path, part: str, vae_config, shapes: Counter, expected: Counter) -> ArtifactError:
    vae_dir = path.parent
    file_z = _stored_z_size(part, vae_config, shapes, expected)
    if file_z is not None:
        return ArtifactError(
            f"{path} was trained with z size {file_z}, but the config asks for vae.z_size={vae_config.z_size}. "
            f"Retrain V with this z size (`{_fix_command(vae_dir)} --force --set vae.z_size={vae_config.z_size}`), "
            f"or use --set vae.z_size={file_z} (or a new --run-dir)."
        )
    only_file, only_model = sorted((shapes - expected).elements()), sorted((expected - shapes).elements())
    return ArtifactError(
        f"{path} does not hold the {part} of V for vae.kind={vae_config.kind}, vae.z_size={vae_config.z_size}: "
        f"it has {sum(shapes.values())} arrays, the {part} {sum(expected.values())} variables "
        f"(arrays only in the file: {only_file[:4]}; variables it lacks: {only_model[:4]}). "
        f"It was saved by another kind or architecture of V: rerun `{_fix_command(vae_dir)} --force`, "
        f"or set the vae.kind and vae.z_size it was trained with (or use a new --run-dir)."
    )


def load_parts(vae_dir: str | Path, vae_config, names: tuple[str, ...] = ("encoder", "decoder")) -> list:
    """The parts of the V that vae.kind names, each with DIR/vae/<name>.weights.h5 loaded into it."""
    vae_dir = Path(vae_dir)
    stored = {}  # every file is checked, in order, before V is built
    for name in names:
        path = vae_dir / vae_weights_name(name)
        if not path.exists():
            raise ArtifactError(f"{path} is missing: V has not been trained in this run. Run `{_fix_command(vae_dir)}` first.")
        try:
            stored[name] = (path, stored_shapes(path))
        except OSError as error:
            raise ArtifactError(f"{path}: unreadable weights file ({error}); rerun `{_fix_command(vae_dir)} --force`") from error
    parts = construct(vae_config).parts()
    unknown = [name for name in names if name not in parts]
    if unknown:
        raise ValueError(f"V of vae.kind={vae_config.kind} has no part {unknown}; its parts are {list(parts)}")
    for name, (path, shapes) in stored.items():
        expected = variable_shapes(parts[name])
        if shapes != expected:
            raise _refuse(path, name, vae_config, shapes, expected)
        try:
            parts[name].load_weights(path)
        except (ValueError, OSError, KeyError) as error:
            raise ArtifactError(
                f"{path}: does not fit the {name} of V (vae.kind={vae_config.kind}, z size {vae_config.z_size}) ({error}); "
                f"rerun `{_fix_command(vae_dir)} --force`"
            ) from error
    return [parts[name] for name in names]


def load_part(vae_dir: str | Path, part: str, vae_config):
    """One part ("encoder", "decoder", ...) of the V that vae.kind names, with its trained weights."""
    return load_parts(vae_dir, vae_config, (part,))[0]


def load_encoder_decoder(vae_dir: str | Path, vae_config):
    """(encoder, decoder) with the trained weights, for the V that vae.kind names."""
    encoder, decoder = load_parts(vae_dir, vae_config)
    return encoder, decoder
