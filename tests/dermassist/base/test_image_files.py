"""write_image: an image OpenCV writes is read back as written; a file it cannot write is an error naming the file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from dermassist.base.errors import ConfigError, DermAssistError
from dermassist.base.image_files import image_suffix_problem, write_image


def test_rgb_and_grey_images_are_written_as_given(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB: the file must hold it as red, not blue
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert write_image(tmp_path / "c.png", rgb, "colour") == tmp_path / "c.png"
    write_image(tmp_path / "g.png", grey, "grey")
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "c.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, rgb)
    assert np.array_equal(cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_GRAYSCALE), grey)


def test_pixels_in_opencvs_order_are_written_as_read(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order (the image corpus writes what cv2.imread gave it)
    write_image(tmp_path / "b.png", bgr, "corpus image", bgr=True)
    assert np.array_equal(cv2.imread(str(tmp_path / "b.png")), bgr)


def test_a_folder_that_cannot_be_written_raises_the_callers_error_naming_the_file(tmp_path):
    target = tmp_path / "missing" / "deeper" / "x.png"  # OpenCV makes no folders: imwrite answers False
    with pytest.raises(ConfigError, match=r"predicted mask .*x\.png could not be written.*check .*deeper"):
        write_image(target, np.zeros((2, 2), np.uint8), "predicted mask", ConfigError)
    assert not target.exists()


@pytest.mark.parametrize("name", ["grid.txt", "grid", "grid.gif"])
def test_a_name_opencv_has_no_writer_for_is_refused_before_writing(tmp_path, name):
    assert image_suffix_problem(tmp_path / name) is not None
    with pytest.raises(DermAssistError, match="cannot be written: its name"):
        write_image(tmp_path / name, np.zeros((2, 2), np.uint8), "grid")
    assert list(tmp_path.iterdir()) == []


def test_png_and_jpeg_names_in_any_case_are_accepted():
    assert all(image_suffix_problem(p) is None for p in ("a.png", "b.JPG", "c.jpeg"))
