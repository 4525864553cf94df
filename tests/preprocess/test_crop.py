"""Mask -> box -> crop maths, with property tests for the box invariants."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocess.contract import CLS_SIZE, IMAGENET_MEAN, IMAGENET_STD, SEG_SIZE
from preprocess.crop import (
    CropParams,
    components,
    crop_batch,
    largest_component,
    lesion_mask,
    mask_box,
    normalise,
    original_extent,
    scale_box,
    square_box,
)
from preprocess.errors import InvalidTensorError, StepSettingsError


@st.composite
def box_in_image(draw: st.DrawFn) -> tuple[tuple[int, int, int, int], int, int]:
    width = draw(st.integers(1, 1500))
    height = draw(st.integers(1, 1500))
    x0 = draw(st.integers(0, width - 1))
    y0 = draw(st.integers(0, height - 1))
    x1 = draw(st.integers(x0 + 1, width))
    y1 = draw(st.integers(y0 + 1, height))
    return (x0, y0, x1, y1), width, height


@settings(max_examples=400, deadline=None)
@given(box_in_image(), st.floats(0.0, 1.0))
def test_square_box_invariants(case: tuple, margin: float) -> None:
    box, width, height = case
    x0, y0, x1, y1 = square_box(box, margin, width, height)
    # inside the image
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    # contains the component's box
    assert x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]
    # square where the image allows: a side only falls short of the other where the image ends
    side = max(x1 - x0, y1 - y0)
    if x1 - x0 < side:
        assert x1 - x0 == width
    if y1 - y0 < side:
        assert y1 - y0 == height
    # the margin was added (up to the image)
    want = int(np.ceil(max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)))
    assert x1 - x0 >= min(want, width) and y1 - y0 >= min(want, height)


@settings(max_examples=200, deadline=None)
@given(box_in_image(), st.floats(0.05, 8.0), st.floats(0.05, 8.0))
def test_scale_box_stays_inside_and_covers_the_scaled_box(case: tuple, sx: float, sy: float) -> None:
    box, width, height = case
    w, h = int(width * sx) + 1, int(height * sy) + 1
    x0, y0, x1, y1 = scale_box(box, sx, sy, w, h)
    assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
    assert x0 <= box[0] * sx + 1e-6 and y0 <= box[1] * sy + 1e-6
    assert x1 >= min(w, box[2] * sx - 1e-6) and y1 >= min(h, box[3] * sy - 1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 250), st.integers(0, 250), st.integers(1, 60), st.integers(1, 60)),
                min_size=1, max_size=4))
def test_largest_component_is_kept_and_contained_in_the_box(rects: list) -> None:
    prob = np.zeros((SEG_SIZE, SEG_SIZE), np.float32)
    for x, y, w, h in rects:
        prob[y : y + h, x : x + w] = 0.9
    mask = lesion_mask(prob, 0.35)
    kept = mask > 0
    assert kept.any()
    count, labels, stats, _ = cv2.connectedComponentsWithStats((prob >= 0.35).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    assert kept.sum() == areas.max()
    assert len(np.unique(labels[kept])) == 1  # one connected component
    box = mask_box(mask)
    ys, xs = np.nonzero(kept)
    assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_the_second_largest_area_is_measured_beside_the_kept_lesion() -> None:
    prob = np.zeros((SEG_SIZE, SEG_SIZE), np.float32)
    prob[10:60, 10:60] = 0.9  # 2500 pixels: kept
    prob[100:130, 100:140] = 0.9  # 1200 pixels: the other lesion-like area
    prob[200:205, 200:205] = 0.9  # 25 pixels: third, not measured
    largest, other = components(prob >= 0.35)
    assert largest.sum() == 2500 and other == pytest.approx(1200 / SEG_SIZE**2)
    assert components(prob[:80, :80] >= 0.35)[1] == 0.0  # one area only
    assert components(np.zeros((8, 8), bool))[1] == 0.0
    out = crop_batch(prob[None], [np.full((450, 600, 3), 128, np.uint8)], np.ones(1, np.float32))
    assert out.other_fraction.shape == (1, 1) and out.other_fraction.dtype == np.float32
    assert out.other_fraction[0, 0] == pytest.approx(1200 / SEG_SIZE**2)
    assert out.lesion_fraction[0, 0] == pytest.approx(2500 / SEG_SIZE**2)


def test_empty_map_gives_no_box() -> None:
    assert mask_box(lesion_mask(np.zeros((SEG_SIZE, SEG_SIZE), np.float32), 0.35)) is None
    assert not largest_component(np.zeros((8, 8), bool)).any()


def test_threshold_is_inclusive_and_applied() -> None:
    prob = np.full((SEG_SIZE, SEG_SIZE), 0.34, np.float32)
    prob[10:20, 10:20] = 0.35
    mask = lesion_mask(prob, 0.35)
    assert set(np.unique(mask)) == {0, 255} and np.count_nonzero(mask) == 100


def test_normalise_matches_imagenet_definition() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    out = normalise(crops)
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32
    expected = (crops[1, 2, 3, 0] / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert out[1, 0, 2, 3] == pytest.approx(expected, abs=1e-6)


def test_normalise_gives_every_value_the_bits_of_the_float32_steps_one_by_one() -> None:
    """Each of the 256 values of each channel: scaled by 1/255, less the mean, times 1/std, each step in float32 (the
    steps the exported classifier was trained and checked with), whatever order normalise moves the pixels in."""
    values = np.arange(256, dtype=np.uint8)
    crops = np.stack([values, values[::-1], np.roll(values, 7)], axis=-1)[None, :, None, :].repeat(3, axis=2)
    out = normalise(crops)
    for c in range(3):
        step = crops[..., c].astype(np.float32) * np.float32(1.0 / 255.0)
        step = (step - np.float32(IMAGENET_MEAN[c])) * np.float32(1.0 / IMAGENET_STD[c])
        np.testing.assert_array_equal(out[:, c], step)
    assert out.flags.c_contiguous and out.shape == (1, 3, 256, 3)


def _work_image(h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 200, np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = (60, 30, 20)
    return img


def test_crop_batch_maps_box_to_original_pixels_and_agrees_with_mask() -> None:
    work = _work_image(682, 1024)
    prob = np.zeros((1, SEG_SIZE, SEG_SIZE, 1), np.float32)
    prob[0, 64:128, 64:128] = 0.9  # the dark quarter in segmenter coordinates
    scale = np.array([[3000 / 1024]], np.float32)
    out = crop_batch(prob, [work], scale)
    assert out.cls_input.shape == (1, 3, CLS_SIZE, CLS_SIZE) and out.cls_input.dtype == np.float32
    assert out.crop.shape == (1, CLS_SIZE, CLS_SIZE, 3) and out.crop.dtype == np.uint8
    assert out.mask.dtype == np.uint8 and out.mask.shape == (1, SEG_SIZE, SEG_SIZE)
    assert out.lesion_fraction[0, 0] == pytest.approx(np.count_nonzero(out.mask[0]) / SEG_SIZE**2)
    x0, y0, x1, y1 = out.bbox[0]
    assert (x0, x1) == (750, 1500)  # 64..128 of 256 over 3000 px
    assert abs(y0 - 500) <= 1 and abs(y1 - 1000) <= 1  # 682 work rows map back to ~1998 px
    assert 0 <= x0 < x1 <= 3000 and 0 <= y0 < y1 <= 2000
    # the crop centres on the lesion: its middle is dark, its rim includes skin from the margin
    assert out.crop[0, 100:124, 100:124].mean() < 80 and out.crop[0, :5].mean() > 150


def test_empty_mask_classifies_the_whole_image_with_fraction_zero() -> None:
    work = _work_image(300, 400)
    out = crop_batch(np.zeros((1, SEG_SIZE, SEG_SIZE, 1), np.float32), [work], np.ones((1, 1), np.float32))
    assert out.lesion_fraction[0, 0] == 0.0 and not out.mask.any()
    assert out.bbox[0].tolist() == [0, 0, 400, 300]
    from preprocess.resize import resize_antialiased

    np.testing.assert_array_equal(out.crop[0], resize_antialiased(work, CLS_SIZE, CLS_SIZE))


def test_crop_batch_rows_are_independent() -> None:
    works = [_work_image(300, 400), _work_image(450, 600)]
    prob = np.zeros((2, SEG_SIZE, SEG_SIZE, 1), np.float32)
    prob[1, 64:128, 64:128] = 0.9
    both = crop_batch(prob, works, np.ones((2, 1), np.float32))
    alone = crop_batch(prob[1:], works[1:], np.ones((1, 1), np.float32))
    np.testing.assert_array_equal(both.cls_input[1], alone.cls_input[0])
    assert both.lesion_fraction[0, 0] == 0.0 and both.lesion_fraction[1, 0] > 0


@pytest.mark.parametrize(
    "threshold,margin,colour", [(0.0, 0.1, 0), (1.0, 0.1, 0), (0.5, -0.1, 0), (0.5, 1.5, 0), (0.5, 0.1, 0.5),
                                (0.5, 0.1, -1), (0.5, 0.1, 17)]
)
def test_crop_params_validate_themselves(threshold: float, margin: float, colour: float) -> None:
    with pytest.raises(StepSettingsError):
        CropParams(threshold, margin, colour)


def _skin_with_lesion(cast: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.normal((180, 130, 110), 8, (450, 600, 3))
    img[150:300, 200:400] = (90, 45, 35)
    img[:60, :120] = (190, 200, 230)  # a bright bluish label in a corner, far outside the crop
    return np.clip(img * np.array(cast), 0, 255).astype(np.uint8)


def test_colour_constancy_balances_the_served_crop_with_the_whole_images_gains() -> None:
    from preprocess.colour import apply_gains, shades_of_grey_gains

    prob = np.zeros((1, SEG_SIZE, SEG_SIZE, 1), np.float32)
    prob[0, 85:171, 85:171] = 0.9  # the lesion, in segmenter coordinates
    one = np.ones((1, 1), np.float32)
    work = _skin_with_lesion()
    plain = crop_batch(prob, [work], one)
    balanced = crop_batch(prob, [work], one, CropParams(colour_constancy=6))
    np.testing.assert_array_equal(balanced.crop[0], apply_gains(plain.crop[0], shades_of_grey_gains(work, 6)))
    np.testing.assert_array_equal(balanced.cls_input, normalise(balanced.crop))
    np.testing.assert_array_equal(balanced.bbox, plain.bbox)  # only the colours change
    # the estimate reads the whole image (the label in its corner too), not the crop alone
    assert np.abs(shades_of_grey_gains(plain.crop[0], 6) - shades_of_grey_gains(work, 6)).max() > 0.05
    # a warmer and a cooler light give the same crop (up to rounding); unbalanced they do not
    for cast in ((1.12, 1.0, 0.88), (0.88, 1.0, 1.12)):
        shifted = _skin_with_lesion(cast)
        again = crop_batch(prob, [shifted], one, CropParams(colour_constancy=6)).crop[0]
        level = np.exp(np.log(cast).mean())  # a white-balance change of gains c keeps their geometric mean
        assert np.abs(again.astype(int) - balanced.crop[0] * level).max() <= 3, cast
        assert np.abs(crop_batch(prob, [shifted], one).crop[0].astype(int) - plain.crop[0]).max() > 10


def test_crop_params_as_dict_round_trips() -> None:
    params = CropParams(0.3, 0.1, 6.0)
    assert CropParams(**params.as_dict()) == params


def test_crop_batch_rejects_wrong_shapes_with_a_message() -> None:
    with pytest.raises(InvalidTensorError, match="SEG_PROB must be"):
        crop_batch(np.zeros((1, 10, 10, 1), np.float32), [_work_image(40, 40)], np.ones(1))
    with pytest.raises(InvalidTensorError, match="batch sizes differ"):
        crop_batch(np.zeros((2, SEG_SIZE, SEG_SIZE), np.float32), [_work_image(40, 40)], np.ones(2))
    with pytest.raises(InvalidTensorError, match="SCALE must be positive"):
        crop_batch(np.zeros((1, SEG_SIZE, SEG_SIZE), np.float32), [_work_image(40, 40)], np.zeros(1))


def test_square_box_adds_the_margin_and_centres_rounding_down() -> None:
    # 51 x 40 box, margin 0.1: side ceil(51 x 1.2) = ceil(61.2) = 62. x: (100 + 151 - 62) / 2 = 94.5 -> 94, to 156;
    # y: (100 + 140 - 62) / 2 = 89, to 151
    assert square_box((100, 100, 151, 140), 0.1, 1000, 1000) == (94, 89, 156, 151)
    # margin 0: side 11 (the taller side); x: (10 + 20 - 11) / 2 = 9.5 -> 9, to 20
    assert square_box((10, 10, 20, 21), 0.0, 100, 100) == (9, 10, 20, 21)


def test_scale_box_maps_each_edge_by_its_own_factor() -> None:
    # x by 2, y by 1.5: 64 -> 128, 128 -> 256; 64 -> 96, 128 -> 192 (exact: no rounding outward)
    assert scale_box((64, 64, 128, 128), 2.0, 1.5, 1000, 1000) == (128, 96, 256, 192)
    # 1/3: 10 -> 3.33 floors to 3, 20 -> 6.67 ceils to 7
    assert scale_box((10, 10, 20, 20), 1 / 3, 1 / 3, 1000, 1000) == (3, 3, 7, 7)


def test_the_original_extent_floors_the_scaled_work_size() -> None:
    # 682 x 1024 work pixels at 3000 / 1024 = 2.9296875: 682 x 2.9296875 = 1998.05 -> 1998, 1024 x it = 3000
    assert original_extent(682, 1024, 3000 / 1024) == (1998, 3000)
    out = crop_batch(np.zeros((1, SEG_SIZE, SEG_SIZE), np.float32), [_work_image(682, 1024)],
                     np.array([[3000 / 1024]], np.float32))
    assert out.bbox[0].tolist() == [0, 0, 3000, 1998]  # no lesion: the whole original


def test_areas_touching_at_a_corner_are_one_lesion() -> None:
    prob = np.zeros((SEG_SIZE, SEG_SIZE), np.float32)
    prob[10:20, 10:20] = 0.9
    prob[20:30, 20:30] = 0.9  # joined to the first square by its top-left pixel's corner only
    prob[100:112, 100:112] = 0.9  # 144 pixels: smaller than the two squares together (200)
    largest, other = components(prob >= 0.35)
    assert largest.sum() == 200 and other == pytest.approx(144 / SEG_SIZE**2)


def test_crop_params_accept_their_bounds() -> None:
    for margin, colour in ((0.0, 0.0), (1.0, 1.0), (0.1, 16.0)):
        assert CropParams(0.5, margin, colour).as_dict() == {"threshold": 0.5, "margin": margin, "colour_constancy": colour}


def test_crop_batch_counts_a_probability_at_the_threshold_as_lesion() -> None:
    prob = np.full((1, SEG_SIZE, SEG_SIZE), 0.34, np.float32)
    prob[0, 10:20, 10:20] = 0.35  # exactly the default threshold: 100 lesion pixels
    out = crop_batch(prob, [_work_image(256, 256)], np.ones(1, np.float32))
    assert out.lesion_fraction[0, 0] == pytest.approx(100 / SEG_SIZE**2)
    assert out.bbox[0].tolist() == [10, 10, 20, 20]


def test_with_the_original_size_a_box_reaches_the_originals_edges() -> None:
    """1500 x 1100 works at 1024 x 750 (1100 / 1.46484375 = 750.9, floored): the scale alone gives back 1098 rows."""
    work, scale = _work_image(750, 1024), np.array([[1500 / 1024]], np.float32)
    nothing = np.zeros((1, SEG_SIZE, SEG_SIZE), np.float32)
    assert crop_batch(nothing, [work], scale).bbox[0].tolist() == [0, 0, 1500, 1098]  # without it: two rows short
    original = np.array([[1100, 1500]], np.int32)
    assert crop_batch(nothing, [work], scale, CropParams(), original).bbox[0].tolist() == [0, 0, 1500, 1100]
    corner = np.zeros((1, SEG_SIZE, SEG_SIZE), np.float32)
    corner[0, 128:, 192:] = 0.9  # a lesion filling the bottom-right quarter of the grid and touching both edges
    assert crop_batch(corner, [work], scale, CropParams(), original).bbox[0].tolist() == [1125, 550, 1500, 1100]


def test_an_original_size_that_is_not_one_positive_pair_per_row_is_refused() -> None:
    nothing, work, one = np.zeros((1, SEG_SIZE, SEG_SIZE), np.float32), [_work_image(40, 40)], np.ones(1, np.float32)
    for bad in (np.array([[40, 40], [40, 40]], np.int32), np.array([[0, 40]], np.int32), np.array([[40.0, 40.0]])):
        with pytest.raises(InvalidTensorError, match="ORIGINAL_SIZE must be 1 rows of positive integer"):
            crop_batch(nothing, work, one, CropParams(), bad)
