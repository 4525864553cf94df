"""Unusable images in a site folder (site audit 6): every one is named in one error with its reason and the fix, not
one per run after the work before it; and a class with too few training images is warned about (audit 13)."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess.contract import CLASS_CODES
from training.classifier.data import SHOWN_BAD_IMAGES, build_crops, check_images, image_problem, warn_classes_too_few
from training.errors import UnreadableImageError
from training.records import Sample

NV, MEL = CLASS_CODES.index("NV"), CLASS_CODES.index("MEL")


def _good(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (7, 7), 0)
    assert cv2.imwrite(str(path), image)
    return path


def _site(folder: Path) -> list[Sample]:
    """A tiny site folder: four good JPEGs and the audit's three bad files (empty, text, a truncated JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [_good(folder / f"P00{i}.jpg", i) for i in range(4)]
    (folder / "P950.jpg").write_bytes(b"")
    (folder / "P951.jpg").write_text("Thumbs and notes, not a picture\n")
    (folder / "P952.jpg").write_bytes(paths[0].read_bytes()[:1500])
    paths[2:2] = [folder / "P950.jpg", folder / "P951.jpg", folder / "P952.jpg"]
    return [Sample(p.stem, p, None, NV if i % 2 else MEL, p.stem) for i, p in enumerate(paths)]


def test_every_unusable_image_of_a_split_is_named_in_one_error_with_its_reason_and_the_fix(tmp_path: Path) -> None:
    samples = _site(tmp_path / "site")
    with pytest.raises(UnreadableImageError) as refused:
        build_crops(samples, split="train", progress=False)
    message = str(refused.value)
    assert message.startswith("3 of the 7 images of the train split cannot be used")
    assert f"(1) {tmp_path / 'site' / 'P950.jpg'}: image is empty (0 bytes)" in message
    assert f"(2) {tmp_path / 'site' / 'P951.jpg'}: input of 32 bytes is not an image (it starts with text)" in message
    assert f"(3) {tmp_path / 'site' / 'P952.jpg'}: JPEG input of 1500 bytes" in message and "truncated" in message
    assert "remove it from the data folder together with its row in the labels CSV" in message
    assert "P000" not in message and "P003" not in message


def test_check_images_decodes_each_image_once_names_a_few_then_counts_and_passes_good_folders(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    samples = _site(tmp_path / "site")
    paths = [s.image_path for s in samples]
    with pytest.raises(UnreadableImageError, match=r"^3 of the 7 images of --data site cannot be used"):
        check_images([*paths, *paths], "--data site")  # a file listed twice is checked (and counted) once
    for i in range(4):
        (tmp_path / "site" / f"P96{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    more = [*paths, *sorted((tmp_path / "site").glob("P96*.png"))]
    with pytest.raises(UnreadableImageError) as refused:
        check_images(more, "--data site")
    message = str(refused.value)
    assert message.startswith("7 of the 11 images of --data site cannot be used")
    assert f"({SHOWN_BAD_IMAGES}) " in message and f"({SHOWN_BAD_IMAGES + 1}) " not in message
    assert f"And {7 - SHOWN_BAD_IMAGES} more." in message
    good = [p for p in paths if image_problem(p) is None]
    assert [p.name for p in good] == ["P000.jpg", "P001.jpg", "P002.jpg", "P003.jpg"]
    with caplog.at_level(logging.INFO, logger="training.classifier.data"):
        assert check_images(good, "--data site") == 4
    assert "checked the 4 images of --data site: each decodes" in caplog.text
    assert image_problem(tmp_path / "absent.jpg") == "the file cannot be read (No such file or directory)"


def test_a_class_with_too_few_training_images_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    labels = [NV] * 20 + [MEL] * 6 + [CLASS_CODES.index("SCC")] + [CLASS_CODES.index("DF")] * 2
    with caplog.at_level(logging.WARNING, logger="training.classifier.data"):
        assert warn_classes_too_few(labels) == {"DF": 2, "SCC": 1}
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("the train split has too few images to learn class(es) DF (2 images), SCC (1 image) "
                           "(expected at least 5 each)")
    caplog.clear()
    good = [s for s in _site(tmp_path / "site") if image_problem(s.image_path) is None]
    with caplog.at_level(logging.WARNING, logger="training.classifier.data"):
        build_crops(good, full_image=True, split="val", progress=False)
        assert "too few images to learn" not in caplog.text  # validation and test are not trained on
        build_crops(good, full_image=True, split="train", progress=False)
    assert "too few images to learn class(es) MEL (2 images), NV (2 images)" in caplog.text
