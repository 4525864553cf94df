"""The dark field-of-view border: found where a round lens leaves black corners, filled with the skin colour."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.decode import decode
from preprocess.errors import InvalidTensorError
from preprocess.field import DARK_LEVEL, dark_border, fill_dark_border
from preprocess.prepare import prepare_image, to_work_image
from tests.support.images import encode, outside_circle, synthetic_lesion

SKIN = (205, 160, 140)


def with_lens(rgb: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The image black outside the circle, and that region."""
    region = outside_circle(*rgb.shape[:2], radius)
    out = rgb.copy()
    out[region] = 0
    return out, region


def test_the_black_outside_a_round_field_of_view_is_found_exactly() -> None:
    image, region = with_lens(synthetic_lesion(), 225.0)
    found = dark_border(image)
    assert found is not None
    np.testing.assert_array_equal(found, region)


def test_the_border_is_filled_with_the_skin_colour_and_nothing_else_changes() -> None:
    lesion = synthetic_lesion()
    image, region = with_lens(lesion, 225.0)
    filled = fill_dark_border(image)
    np.testing.assert_array_equal(filled[~region], image[~region])
    colours = np.unique(filled[region], axis=0)
    assert len(colours) == 1
    assert np.abs(colours[0].astype(int) - np.array(SKIN)).max() <= 3  # the median of noisy skin (+-12)
    assert image[region].max() == 0  # the input is not written to


def test_an_image_without_a_border_is_returned_as_it_is() -> None:
    image = synthetic_lesion()
    assert fill_dark_border(image) is image


@pytest.mark.parametrize("case", ["one corner", "under 1%", "almost all dark", "dark but not near-black"])
def test_dark_areas_that_are_no_lens_border_are_left_alone(case: str) -> None:
    image = synthetic_lesion()
    if case == "one corner":  # a very dark lesion running out of the picture at one corner
        image[:200, :250] = 5
    elif case == "under 1%":  # four corners, 0.5% of the image in all
        for ys in (slice(0, 18), slice(-18, None)):
            for xs in (slice(0, 19), slice(-19, None)):
                image[ys, xs] = 0
    elif case == "almost all dark":  # left to the exposure measure
        image, _ = with_lens(image, 60.0)
    else:
        image, region = with_lens(image, 225.0)
        image[region] = DARK_LEVEL  # the brightest channel at the limit is not near-black
    assert dark_border(image) is None
    assert fill_dark_border(image) is image


def test_a_border_found_in_two_corners_is_enough() -> None:
    image = synthetic_lesion()
    image[:, :60] = 0  # a black band down the left side, as when the lens sits off centre
    border = dark_border(image)
    assert border is not None and border[:, :60].all() and not border[:, 60:].any()


def test_only_rgb_uint8_images_are_accepted() -> None:
    with pytest.raises(InvalidTensorError, match="RGB uint8"):
        dark_border(np.zeros((40, 40), np.uint8))
    with pytest.raises(InvalidTensorError, match="RGB uint8"):
        dark_border(np.zeros((40, 40, 3), np.float32))


def test_prepare_fills_the_border_and_leaves_other_images_untouched() -> None:
    plain = encode(synthetic_lesion(), ".png")
    decoded = decode(plain)
    np.testing.assert_array_equal(prepare_image(plain).work_image,
                                  to_work_image(decoded.rgb, decoded.original_size)[0])
    lens, region = with_lens(synthetic_lesion(), 225.0)
    work = prepare_image(encode(lens, ".png")).work_image
    assert work[region].min() > 100  # skin now, not black
    np.testing.assert_array_equal(work[~region], lens[~region])


@pytest.mark.parametrize("level,found", [(39, True), (40, False)])
def test_a_border_is_near_black_up_to_level_39(level: int, found: bool) -> None:
    image, region = with_lens(synthetic_lesion(), 225.0)
    image[region] = level  # the brightest channel 39 is near-black, 40 is not
    border = dark_border(image)
    assert (border is not None) == found
    if border is not None:
        np.testing.assert_array_equal(border, region)


def test_a_level_40_rim_inside_a_black_border_is_not_part_of_it() -> None:
    # black outside radius 225, level 40 between radius 215 and 225: only the black counts, at full resolution too
    image, region = with_lens(synthetic_lesion(), 215.0)
    image[region] = 40
    image[outside_circle(*image.shape[:2], 225.0)] = 0
    border = dark_border(image)
    assert border is not None
    np.testing.assert_array_equal(border, outside_circle(*image.shape[:2], 225.0))


def _band_image(band: int, height: int = 100, width: int = 1000) -> np.ndarray:
    """Flat skin with a black band down the left side (two corners), ``band`` pixels wide."""
    image = np.full((height, width, 3), SKIN, np.uint8)
    image[:, :band] = 0
    return image


def test_the_border_fraction_limits_are_inclusive_one_and_seventy_percent() -> None:
    # 100 x 1000 = 100,000 pixels. At 1/4 size (nearest) the bands keep 3 and 175 of 250 columns (1.2% and 70%), and
    # the extra or missing pixel in row 50 is not sampled there: the full-resolution count decides.
    one_percent = _band_image(10)  # 1,000 pixels = 1%
    assert dark_border(one_percent) is not None
    one_percent[50, 5] = SKIN  # 999 pixels: under 1%
    assert dark_border(one_percent) is None
    seventy_percent = _band_image(700)  # 70,000 pixels = 70%
    assert dark_border(seventy_percent) is not None
    seventy_percent[50, 700] = 0  # 70,001 pixels: over 70%
    assert dark_border(seventy_percent) is None


def _graded_field(height: int, width: int, band: int, step: int) -> np.ndarray:
    """A black band ``band`` wide on the left; field column ``band + k`` at grey level 100 + step x k (up to 250)."""
    image = np.full((height, width, 3), 250, np.uint8)
    image[:, :band] = 0
    for k in range(min(40, width - band)):
        image[:, band + k] = min(250, 100 + step * k)
    return image


def test_the_fill_is_the_median_of_every_7th_pixel_within_2_percent_of_the_long_side() -> None:
    # 100 x 1000: the ring is the 20 columns (0.02 x 1000) next to the band, 2,000 pixels read row by row; every 7th
    # (7j, j = 0..285) is in column 7j mod 20: each column 14 times for j < 280, then columns 0, 7, 14, 1, 8, 15 once
    # more. Sorted, columns 0..8 hold 130 samples and column 9 the next 14, so the 143rd and 144th (the median of 286)
    # both lie in column 9: level 100 + 2 x 9 = 118.
    image = _graded_field(100, 1000, 100, 2)
    filled = fill_dark_border(image)
    assert filled[:, :100].tolist() == np.full((100, 100, 3), 118).tolist()
    np.testing.assert_array_equal(filled[:, 100:], image[:, 100:])


def test_a_small_image_samples_a_ring_of_at_least_2_pixels() -> None:
    # 40 x 100: 0.02 x 100 = 2 columns (the floor of 2 as well); 80 ring pixels, every 7th (12 of them) alternates
    # between column 0 (level 100) and column 1 (level 120): the median of six of each is 110
    filled = fill_dark_border(_graded_field(40, 100, 10, 20))
    assert filled[:, :10].tolist() == np.full((40, 10, 3), 110).tolist()


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_a_band_along_any_side_holds_two_corners_and_is_a_border(side: str) -> None:
    image = np.full((100, 1000, 3), SKIN, np.uint8)
    band = {"left": np.s_[:, :100], "right": np.s_[:, -100:], "top": np.s_[:20, :], "bottom": np.s_[-20:, :]}[side]
    image[band] = 0  # 10,000 or 20,000 of 100,000 pixels, and the two corners at that side
    border = dark_border(image)
    assert border is not None
    expected = np.zeros((100, 1000), bool)
    expected[band] = True
    np.testing.assert_array_equal(border, expected)


def test_dark_areas_joined_to_the_edge_diagonally_or_at_any_side_belong_to_the_border() -> None:
    image = np.full((100, 1000, 3), SKIN, np.uint8)
    image[:, :100] = 0  # the border: a band down the left side (two corners)
    image[49, 100] = 0  # one dark pixel beside it, and a dark square touching that pixel by a corner only
    image[50:60, 101:111] = 0
    image[40:60, -30:] = 0  # a dark patch on the right edge, away from the corners
    image[40:60, 500:530] = 0  # a dark patch inside the picture: not border
    border = dark_border(image)
    assert border is not None
    assert border[:, :100].all() and border[49, 100] and border[50:60, 101:111].all() and border[40:60, -30:].all()
    assert not border[40:60, 500:530].any()
    assert np.count_nonzero(border) == 100 * 100 + 1 + 10 * 10 + 20 * 30
