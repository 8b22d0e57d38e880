"""Videos: real frame beside reconstruction, pixels kept crisp, widths H.264 accepts, every frame written."""

import imageio.v3 as iio
import numpy as np

from common.video import side_by_side, to_height, write_video


def test_side_by_side_sizes_and_pixels():
    real = np.zeros((120, 160, 3), np.uint8)
    real[:, :80] = 255  # left half white
    reconstruction = np.full((64, 64, 3), 7, np.uint8)
    (picture,) = side_by_side([real], [reconstruction], height=128)
    assert picture.shape == (128, 304, 3)  # 160x120 -> 171x128, + 128, padded from 299 to 304
    assert (picture[:, :80] == 255).all() and (picture[:, 90:170] == 0).all()
    np.testing.assert_array_equal(picture[:, 171:299], 7)  # nearest-neighbour: no blur
    assert (picture[:, 299:] == 0).all()  # the padding
    (missing,) = side_by_side([None], [reconstruction], height=64)
    assert (missing[:, :64] == 0).all()


def test_to_height_keeps_nearest_pixels():
    frame = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_array_equal(to_height(frame, 8)[::2, ::2], frame)


def test_write_video_writes_every_frame(tmp_path):
    pictures = [np.full((64, 64, 3), value, np.uint8) for value in range(0, 250, 10)]
    write_video(tmp_path / "clip.mp4", pictures)
    assert iio.imread(tmp_path / "clip.mp4").shape[0] == len(pictures)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip.mp4"]  # no temporary left
