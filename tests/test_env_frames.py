"""Frame preprocessing (docs/design.md section 5, item 1): crop before resize, 64x64x3 uint8."""

import cv2
import numpy as np
import pytest

from env.frames import CARRACING_VIEW_ROWS, preprocess_carracing, preprocess_doom


def test_carracing_frame_is_64x64x3_uint8():
    frame = np.random.default_rng(0).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    out = preprocess_carracing(frame)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_carracing_dashboard_rows_are_gone():
    # View rows dark grey, dashboard rows (84:96) pure white: nothing white may survive.
    frame = np.full((96, 96, 3), 40, dtype=np.uint8)
    frame[CARRACING_VIEW_ROWS:] = 255
    out = preprocess_carracing(frame)
    assert CARRACING_VIEW_ROWS == 84
    assert (out == 40).all()


def test_carracing_is_crop_then_resize_of_the_view():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
    expected = cv2.resize(frame[:84], (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(preprocess_carracing(frame), expected)
    # The view's top and bottom rows map to the output's top and bottom rows.
    frame = np.zeros((96, 96, 3), dtype=np.uint8)
    frame[:42] = 200  # top half of the view
    out = preprocess_carracing(frame)
    assert (out[:31] == 200).all() and (out[33:] == 0).all()


def test_doom_frame_is_64x64x3_uint8_from_any_resolution():
    for height, width in ((120, 160), (240, 320)):
        frame = np.random.default_rng(2).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        out = preprocess_doom(frame)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8


def test_doom_hud_rows_are_cropped_when_shown():
    frame = np.full((120, 160, 3), 70, dtype=np.uint8)
    frame[-20:] = 255  # a status bar at the bottom
    assert (preprocess_doom(frame, hud_rows=20) == 70).all()
    assert (preprocess_doom(frame) == 255).any()  # kept when no HUD is declared


@pytest.mark.parametrize("bad", [np.zeros((96, 96), np.uint8), np.zeros((96, 96, 3), np.float32), np.zeros((96, 96, 4), np.uint8)])
def test_bad_frames_are_refused(bad):
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_carracing(bad)
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_doom(bad)
