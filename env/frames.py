"""Frame preprocessing: full-resolution RGB game frames -> 64x64x3 uint8 for V.

Paper, section 3 / appendix A.1: V sees 64x64 RGB frames. The same functions
are used when collecting rollouts and when the controller acts, so V never
sees a frame prepared differently from its training data (docs/design.md
section 5, item 1: crop before resizing, same resize everywhere).
"""

import cv2
import numpy as np

# What V sees (height, width, RGB): every frame the envs give, every rollout's obs, V's input.
FRAME_SHAPE = (64, 64, 3)

# CarRacing-v3 draws its dashboard (speed, ABS, steering, gyro bars) in the
# bottom 12 rows of the 96x96 frame; rows 0:84 are the road view.
CARRACING_VIEW_ROWS = 84

# OpenCV interpolation. CarRacing: INTER_AREA averages the pixels each output
# pixel covers (no aliasing), ~40 us per frame, nothing next to a ~6 ms env
# step. Doom: the engine steps in ~170 us, so the ~4x cheaper INTER_LINEAR
# keeps collection close to env speed (docs/design.md section 8).
CARRACING_INTERPOLATION = cv2.INTER_AREA
DOOM_INTERPOLATION = cv2.INTER_LINEAR


def _check_rgb(frame: np.ndarray, name: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{name}: expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
    return frame


def resize_frame(frame: np.ndarray, interpolation: int) -> np.ndarray:
    """(H, W, 3) uint8 -> FRAME_SHAPE uint8."""
    height, width, _ = FRAME_SHAPE
    return cv2.resize(frame, (width, height), interpolation=interpolation)


def preprocess_carracing(frame: np.ndarray) -> np.ndarray:
    """CarRacing-v3 frame (96, 96, 3) uint8 -> (64, 64, 3) uint8: crop rows 0:84 (drop the dashboard), then resize."""
    frame = _check_rgb(frame, "preprocess_carracing")
    return resize_frame(frame[:CARRACING_VIEW_ROWS], CARRACING_INTERPOLATION)


def preprocess_doom(frame: np.ndarray, hud_rows: int = 0) -> np.ndarray:
    """ViZDoom frame (H, W, 3) uint8 -> (64, 64, 3) uint8.

    env/doom.py turns the HUD off (render_hud false in take_cover.cfg, and
    set_render_hud(False)), so by default the whole frame is the view; a HUD
    shown by another set-up is cropped by passing its height as hud_rows
    (the status bar is drawn at the bottom).
    """
    frame = _check_rgb(frame, "preprocess_doom")
    if hud_rows:
        frame = frame[: frame.shape[0] - hud_rows]
    return resize_frame(frame, DOOM_INTERPOLATION)
