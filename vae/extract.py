"""Series extraction: every rollout encoded by V into the inputs of M (paper, section 3.2 / 4.1).

For rollout DIR/rollouts/<NNNNNN>.npz, DIR/series/<NNNNNN>.npz holds mu and
logvar of every frame (M is trained on z sampled from them each batch) with the
episode's actions, rewards and dones (vae/series.py). DIR/series/initial_z.npz
holds the first frame's (mu, logvar) of every episode: dreams start from real
first frames (docs/design.md section 5 item 7).

Resumable: a series file that exists was written atomically and is complete,
so a rerun encodes only the missing ones; initial_z is rebuilt at the end from
every episode's first frame (each rollout is read once, a series file made by an
earlier run is read for its first row). series/source.json records a fingerprint of the encoder's
weights, so series made by another V are not silently mixed in.
"""

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.errors import ArtifactError
from common.files import read_json, write_json
from common.layout import SERIES_SOURCE_NAME as SOURCE_NAME
from common.layout import RunLayout
from common.layout import command as stage_command
from env.rollouts import list_episodes, read_rollout
from vae.encode import encode_frames
from vae.series import list_series, read_series, write_initial_z, write_series


def weights_fingerprint(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_source(series_dir: Path, fingerprint: str, run_dir: Path, record: bool = True) -> None:
    """Refuse to add to series made by another encoder; record the encoder otherwise (record=False: only check)."""
    source = series_dir / SOURCE_NAME
    if source.exists():
        recorded = read_json(source).get("encoder_sha256")
        if recorded != fingerprint and list_series(series_dir):
            raise ArtifactError(
                f"{series_dir} holds series made by another V (encoder fingerprint in {source} differs from "
                f"{RunLayout(run_dir).vae_weights('encoder')}). Rerun `{stage_command('extract', run_dir, '--force')}`."
            )
    if record:
        write_json(source, {"encoder_sha256": fingerprint})


SERIES_STEP_BYTES = 4 + 1  # reward (float32) and done (bool) per frame


def series_bytes(num_frames: int, z_size: int, action_size: int) -> int:
    """Uncompressed bytes of the series of `num_frames` frames (mu, logvar, action, reward, done):
    an upper bound of the file size, float arrays barely compress."""
    return num_frames * (4 * (2 * z_size + action_size) + SERIES_STEP_BYTES) + 1024


def extract_series(
    rollouts_dir: str | Path,
    series_dir: str | Path,
    encoder,
    action_size: int,
    batch_size: int = 1000,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Encode every rollout not yet encoded, then rebuild initial_z from all series."""
    rollouts_dir, series_dir = Path(rollouts_dir), Path(series_dir)
    rollouts = list_episodes(rollouts_dir)
    if not rollouts:
        raise ArtifactError(f"{rollouts_dir} holds no rollout files; run `{stage_command('generate', rollouts_dir.parent)}`")
    z_size = encoder.output[0].shape[-1]
    missing = [path for path in rollouts if not (series_dir / path.name).exists()]
    first_frames = {}  # rollout path -> (mu[0], logvar[0], number of frames)
    for path in tqdm(missing, desc="extract", unit="episode", disable=not progress):
        rollout = read_rollout(path, action_size)
        mu, logvar = encode_frames(encoder, rollout["obs"], batch_size)
        write_series(series_dir / path.name, mu, logvar, rollout["action"], rollout["reward"], rollout["done"])
        first_frames[path] = (mu[0], logvar[0], len(mu))
    encoded_frames = sum(length for _, _, length in first_frames.values())

    # initial_z: the first frame of every rollout's series, in episode order; only series made
    # by an earlier run are read (those encoded now are in memory).
    for path in rollouts:
        if path not in first_frames:
            series = read_series(series_dir / path.name, z_size, action_size)
            first_frames[path] = (series["mu"][0], series["logvar"][0], len(series["mu"]))
    initial_mu, initial_logvar, lengths = zip(*(first_frames[path] for path in rollouts), strict=True)
    total_frames = sum(lengths)
    write_initial_z(series_dir, np.stack(initial_mu), np.stack(initial_logvar))
    log(f"extract: {len(missing)} episodes encoded now ({encoded_frames} frames), {len(rollouts)} series in {series_dir} ({total_frames} frames)")
    return {"episodes": len(rollouts), "frames": total_frames, "encoded_now": len(missing)}
