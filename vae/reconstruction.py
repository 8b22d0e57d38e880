"""The reconstruction check of V: a picture a user can judge at a glance.

Row 1: held-out frames; row 2: their reconstructions (decoded from mu), with
the summed squared error of each under it (the reconstruction term of the
loss, paper appendix A.1); row 3: frames decoded from z ~ N(0, I), what V
imagines with no input (the dream's raw material). Pixels are enlarged with
nearest-neighbour so they stay sharp.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.files import atomic_path  # noqa: E402
from env.frames import FRAME_SHAPE  # noqa: E402
from env.rollouts import read_rollout  # noqa: E402
from vae.encode import decode_z, encode_frames, reconstruct  # noqa: E402

UPSCALE = 3  # each frame shown at 192x192 pixels
DPI = 100
FRAME_INCHES = (FRAME_SHAPE[1] * UPSCALE / DPI, FRAME_SHAPE[0] * UPSCALE / DPI)  # (width, height) of a shown frame
CELL_INCHES = max(FRAME_INCHES) + 0.3  # frame plus a margin for the error text
LABEL_INCHES = 1.4
TITLE_INCHES = 0.5


def figure_size_pixels(num_columns: int, num_rows: int = 3) -> tuple[int, int]:
    """(width, height) of the PNG in pixels for this many frames per row."""
    width = LABEL_INCHES + num_columns * CELL_INCHES
    height = TITLE_INCHES + num_rows * (CELL_INCHES + 0.25)
    return round(width * DPI), round(height * DPI)


def scan_episodes(encoder, decoder, paths: list[Path], num_frames: int, batch_size: int = 1000) -> tuple[np.ndarray, float, int]:
    """One pass over the episodes, each file read once: (num_frames uint8 frames for the picture,
    taken round-robin from the episodes and evenly spaced within each; the mean summed squared error
    per image over every frame; the number of frames)."""
    per_episode = [len(range(index, num_frames, len(paths))) for index in range(len(paths))]
    picked, total, count = [], 0.0, 0
    for path, num_picked in zip(paths, per_episode, strict=True):
        episode = read_rollout(path)["obs"]
        total += float(per_image_error(episode.astype(np.float32) / 255.0, reconstruct(encoder, decoder, episode, batch_size)).sum())
        count += len(episode)
        if num_picked:
            positions = np.linspace(0, len(episode) - 1, num_picked + 2)[1:-1].round().astype(int)
            picked.append(episode[positions])
    # Interleave so neighbouring columns come from different episodes.
    order = np.argsort([position * len(paths) + index for index, num in enumerate(per_episode) for position in range(num)], kind="stable")
    return np.concatenate(picked)[order], total / max(count, 1), count


def per_image_error(frames: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Summed squared error per image, frames in [0, 1] (same units as the training loss)."""
    return np.sum(np.square(frames.astype(np.float32) - reconstructions), axis=(1, 2, 3))


def enlarge(frame: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(frame, UPSCALE, axis=0), UPSCALE, axis=1)


def reconstruction_figure(encoder, decoder, frames: np.ndarray, output: str | Path, title: str, seed: int = 0, frames_label: str = "held-out\nframes") -> dict:
    """Write the three-row grid to `output` (`frames_label` names the first row); returns the per-image and mean errors."""
    mu, _ = encode_frames(encoder, frames)
    reconstructions = decode_z(decoder, mu)
    originals = frames.astype(np.float32) / 255.0
    errors = per_image_error(originals, reconstructions)
    samples = decode_z(decoder, np.random.default_rng(seed).standard_normal(mu.shape).astype(np.float32))

    num_columns = len(frames)
    width, height = figure_size_pixels(num_columns)
    figure = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    figure.suptitle(f"{title}  |  error = summed squared error per image (pixels in [0, 1]), the loss's reconstruction term", fontsize=11)
    rows = (
        (frames_label, originals, None),
        ("reconstructions\n(decoded mu)", reconstructions, errors),
        ("samples\nz ~ N(0, I)", samples, None),
    )
    row_height = (height / DPI - TITLE_INCHES) / len(rows)
    for row_index, (label, images, row_errors) in enumerate(rows):
        bottom = 1 - (TITLE_INCHES + (row_index + 1) * row_height) / (height / DPI)
        figure.text(0.1 / (width / DPI), bottom + 0.5 * row_height / (height / DPI), label, fontsize=11, va="center", ha="left", weight="bold")
        for column in range(num_columns):
            left = (LABEL_INCHES + column * CELL_INCHES + 0.15) / (width / DPI)
            axes = figure.add_axes((left, bottom + 0.3 / (height / DPI), FRAME_INCHES[0] / (width / DPI), FRAME_INCHES[1] / (height / DPI)))
            axes.imshow(enlarge(np.clip(images[column], 0, 1)), interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row_errors is not None:
                axes.set_xlabel(f"error {row_errors[column]:.1f}", fontsize=10)
    with atomic_path(output, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=DPI)
    plt.close(figure)
    return {"mean_error": float(errors.mean()), "errors": [float(error) for error in errors]}
