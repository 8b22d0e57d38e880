"""Videos of what V sees: frames enlarged with nearest-neighbour pixels, a real frame beside
V's reconstruction of it, written atomically as MP4 (or GIF by the file's suffix)."""

from pathlib import Path

import numpy as np

VIDEO_FPS = 30
VIDEO_HEIGHT = 256  # 64x64 frames shown at 256x256


def to_height(frame: np.ndarray, height: int = VIDEO_HEIGHT) -> np.ndarray:
    """An RGB frame resized to `height` rows (aspect kept), nearest-neighbour so pixels stay crisp."""
    import cv2

    width = int(round(frame.shape[1] * height / frame.shape[0]))
    return cv2.resize(np.ascontiguousarray(frame[..., :3]), (width, height), interpolation=cv2.INTER_NEAREST)


def side_by_side(real_frames, reconstructions, height: int = VIDEO_HEIGHT) -> list[np.ndarray]:
    """Each real frame (any size; None for a missing one) beside V's reconstruction, padded to a
    width that is a multiple of 16 (H.264 wants that)."""
    pictures = []
    for real, reconstruction in zip(real_frames, reconstructions, strict=True):
        real = np.zeros_like(reconstruction) if real is None else np.asarray(real)
        picture = np.concatenate([to_height(real, height), to_height(reconstruction, height)], axis=1)
        pictures.append(np.pad(picture, ((0, 0), (0, -picture.shape[1] % 16), (0, 0))))
    return pictures


def write_video(path: str | Path, pictures: list[np.ndarray], fps: int = VIDEO_FPS) -> None:
    """pictures (each H x W x 3 uint8) as an MP4, or a looping GIF if path ends in .gif."""
    import imageio.v2 as imageio

    from common.files import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as temporary:
        if path.suffix == ".gif":
            imageio.mimwrite(temporary, pictures, duration=1000 / fps, loop=0)
        else:
            imageio.mimwrite(temporary, pictures, fps=fps, macro_block_size=16)
