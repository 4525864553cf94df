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
