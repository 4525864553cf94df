"""The prepare step: work geometry, segmenter input and batching of mixed sizes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocess.contract import SEG_SIZE, WORK_MAX_SIDE
from preprocess.errors import InvalidImageError, InvalidTensorError
from preprocess.prepare import (
    PreparedImage,
    prepare_image,
    prepare_images,
    stack_prepared,
    unpad_work_images,
    work_geometry,
)
from tests.support.images import encode, synthetic_lesion


@settings(max_examples=300, deadline=None)
@given(st.integers(32, 12000), st.integers(32, 12000))
def test_work_geometry_keeps_long_side_bounded_and_never_exceeds_the_original(h: int, w: int) -> None:
    wh, ww, scale = work_geometry(h, w)
    assert max(wh, ww) <= WORK_MAX_SIDE and scale >= 1.0
    assert wh * scale <= h + 1e-6 and ww * scale <= w + 1e-6
    assert h - wh * scale < scale + 1e-6 and w - ww * scale < scale + 1e-6
    if max(h, w) <= WORK_MAX_SIDE:
        assert (wh, ww, scale) == (h, w, 1.0)


def test_prepare_image_outputs_follow_the_contract(ham_jpeg: bytes) -> None:
    out = prepare_image(ham_jpeg)
    assert out.seg_input.shape == (SEG_SIZE, SEG_SIZE, 3) and out.seg_input.dtype == np.float32
    assert 0.0 <= out.seg_input.min() and out.seg_input.max() <= 1.0
    assert out.work_image.shape == (450, 600, 3) and out.work_image.dtype == np.uint8
    assert out.scale == 1.0 and out.original_size == (450, 600)


def test_large_image_is_reduced_to_the_work_size() -> None:
    big = synthetic_lesion(2000, 3000)
    jpeg = prepare_image(encode(big, ".jpg"))  # shrink-on-load 1/4: long side 750
    assert jpeg.original_size == (2000, 3000)
    assert jpeg.work_image.shape == (500, 750, 3) and jpeg.scale == 4.0
    png = prepare_image(encode(big, ".png"))  # no shrink-on-load: resized to the work size
    assert png.work_image.shape == (682, WORK_MAX_SIDE, 3) and png.scale == pytest.approx(3000 / 1024)


def test_reduced_decode_within_work_size_keeps_scale_exact() -> None:
    out = prepare_image(encode(synthetic_lesion(1500, 2000), ".jpg"))
    assert out.work_image.shape == (750, 1000, 3) and out.scale == 2.0 and out.original_size == (1500, 2000)


def test_prepare_images_keeps_good_rows_beside_a_bad_one(ham_jpeg: bytes) -> None:
    results = prepare_images([ham_jpeg, b"nope", ham_jpeg])
    assert isinstance(results[1], InvalidImageError)
    assert not isinstance(results[0], Exception) and not isinstance(results[2], Exception)


def test_stack_pads_mixed_sizes_and_records_valid_sizes() -> None:
    a = prepare_image(encode(synthetic_lesion(100, 200), ".png"))
    b = prepare_image(encode(synthetic_lesion(300, 120), ".png"))
    batch = stack_prepared([a, b])
    assert batch.work_image.shape == (2, 300, 200, 3)
    assert batch.work_size.tolist() == [[100, 200], [300, 120]]
    np.testing.assert_array_equal(batch.work_image[0, :100, :200], a.work_image)
    assert not batch.work_image[0, 100:].any() and not batch.work_image[1, :, 120:].any()
    assert batch.scale.shape == (2, 1) and batch.seg_input.shape == (2, SEG_SIZE, SEG_SIZE, 3)


def test_stack_of_nothing_is_an_error() -> None:
    with pytest.raises(InvalidTensorError):
        stack_prepared([])


def _prepared(work: np.ndarray) -> PreparedImage:
    return PreparedImage(np.zeros((SEG_SIZE, SEG_SIZE, 3), np.float32), work, 1.0, work.shape[:2])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_unpad_work_images_gives_back_every_image_stack_prepared_padded(sizes: list[tuple[int, int]], seed: int) -> None:
    """The lesion_crop step's un-padding is the inverse of prepare's padding, whatever the mix of sizes."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in sizes]
    batch = stack_prepared([_prepared(im) for im in images])
    back = unpad_work_images(batch.work_image, batch.work_size)
    assert len(back) == len(images) and all(np.array_equal(a, b) for a, b in zip(back, images))


@pytest.mark.parametrize(("work_shape", "size", "said"), [
    ((2, 30, 40, 3), [[30, 40]], r"batch sizes differ: WORK_IMAGE 2, WORK_SIZE 1; send one \(height, width\)"),
    ((1, 30, 40, 3), [[30, 41]], r"WORK_SIZE \[\[30, 41\]\] exceeds WORK_IMAGE \[30, 40\] or is empty; each row"),
    ((1, 30, 40, 3), [[0, 40]], r"WORK_SIZE \[\[0, 40\]\] exceeds WORK_IMAGE \[30, 40\] or is empty"),
    ((30, 40, 3), [[30, 40]], r"WORK_IMAGE must be \(N, H, W, 3\) and WORK_SIZE \(N, 2\), got \(30, 40, 3\)"),
])
def test_unpad_work_images_refuses_sizes_that_do_not_fit_the_padded_batch(work_shape, size, said) -> None:
    with pytest.raises(InvalidTensorError, match=said):
        unpad_work_images(np.zeros(work_shape, np.uint8), np.array(size, np.int32))
