"""Picture fingerprints: hand-worked bits, and the same picture resized and re-encoded stays within the limit."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocess.errors import InvalidTensorError
from preprocess.fingerprint import (
    SAME_PICTURE_BITS,
    bits_apart,
    file_fingerprint,
    fingerprint_bits,
    fingerprint_rows,
    picture_fingerprint,
)


def test_a_left_to_right_ramp_sets_every_bit_and_its_mirror_none() -> None:
    """Each of the 16x16 comparisons asks "brighter than the pixel to its left?": yes everywhere on a ramp rising to
    the right (all 256 bits: 64 hex f), no on its mirror; the two differ in all 256 bits."""
    ramp = np.repeat(np.repeat(np.arange(17, dtype=np.uint8)[None, :, None] * 15, 16, axis=0), 3, axis=2)
    assert picture_fingerprint(ramp) == "f" * 64
    assert picture_fingerprint(ramp[:, ::-1].copy()) == "0" * 64
    assert fingerprint_bits("f" * 64, "0" * 64) == 256 and fingerprint_bits("f0" * 32, "f0" * 32) == 0
    assert fingerprint_bits("0" * 63 + "3", "0" * 64) == 2


def test_the_same_picture_resized_and_saved_again_is_within_the_limit_and_another_is_not(ham_jpeg: bytes) -> None:
    from preprocess.decode import decode_image

    picture = decode_image(ham_jpeg)
    bigger = cv2.resize(picture, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)
    ok, again = cv2.imencode(".jpg", cv2.cvtColor(bigger, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert fingerprint_bits(picture_fingerprint(picture), picture_fingerprint(decode_image(again.tobytes()))) <= 5
    turned = np.ascontiguousarray(np.rot90(picture))  # another picture as far as the fingerprint goes
    assert fingerprint_bits(picture_fingerprint(picture), picture_fingerprint(turned)) > SAME_PICTURE_BITS


def test_a_picture_that_is_not_rgb_uint8_is_refused() -> None:
    with pytest.raises(InvalidTensorError, match="RGB uint8 picture"):
        picture_fingerprint(np.zeros((4, 4), np.uint8))


def test_each_row_is_as_many_bits_apart_as_two_fingerprints_are_by_hand() -> None:
    rows = fingerprint_rows(["f" * 64, "0" * 64, "0" * 63 + "3"])
    assert rows.shape == (3, 32) and rows.dtype == np.uint8
    assert bits_apart(rows, "0" * 64).tolist() == [256, 0, 2]
    assert bits_apart(rows, "f" * 64).tolist() == [fingerprint_bits("f" * 64, f) for f in ("f" * 64, "0" * 64, "0" * 63 + "3")]


def test_a_files_fingerprint_is_its_decoded_pictures(tmp_path, ham_jpeg: bytes) -> None:
    from preprocess.decode import decode_image
    from preprocess.errors import PreprocessError

    (tmp_path / "p.jpg").write_bytes(ham_jpeg)
    assert file_fingerprint(tmp_path / "p.jpg") == picture_fingerprint(decode_image(ham_jpeg))
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(PreprocessError):
        file_fingerprint(tmp_path / "text.jpg")
    with pytest.raises(OSError):
        file_fingerprint(tmp_path / "absent.jpg")
