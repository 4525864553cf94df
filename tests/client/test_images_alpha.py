"""The thin client sends an image with transparency as shown over black, exactly as the server decodes the file."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from dermassist_client.errors import InvalidImageError
from dermassist_client.images import as_srgb, encode_image, flatten_alpha
from dermassist_client.images import composite_on_black as client_composite
from preprocess.decode import composite_on_black as server_composite
from preprocess.decode import decode_image
from tests.support import icc
from tests.support.images import pil_bytes, synthetic_lesion

RGB = synthetic_lesion(120, 160)
GREY = RGB[..., 1].copy()
ALPHA = np.full(RGB.shape[:2], 255, np.uint8)
ALPHA[:, 60:100] = 128
ALPHA[:, 100:] = 0  # the right part fully transparent, its colours kept underneath


def sent(image: Image.Image) -> np.ndarray:
    """The pixels of the PNG the client sends for ``image``."""
    return np.asarray(Image.open(io.BytesIO(encode_image(image).data)).convert("RGB"))


def test_a_pil_rgba_image_is_sent_black_where_transparent() -> None:
    out = sent(Image.fromarray(np.dstack([RGB, ALPHA])))
    assert (out[:, 100:] == 0).all()
    np.testing.assert_array_equal(out[:, :60], RGB[:, :60])
    assert out[10, 70].tolist() == [round(int(v) * 128 / 255) for v in RGB[10, 70]]  # blended, by hand


def test_the_client_and_the_server_composite_every_value_and_alpha_alike() -> None:
    values, alphas = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgb = np.repeat(values[..., None], 3, axis=2).astype(np.uint8)
    np.testing.assert_array_equal(client_composite(rgb, alphas.astype(np.uint8)),
                                  server_composite(rgb, alphas.astype(np.uint8)))


def _palette() -> Image.Image:
    indexed = Image.fromarray(RGB).quantize(16)
    indexed.info["transparency"] = bytes([255] * 8 + [0] * 4 + [128] * 4)
    return indexed


def _keyed(mode: str) -> Image.Image:
    image = Image.fromarray(RGB if mode == "RGB" else GREY)
    image.info["transparency"] = tuple(int(v) for v in RGB[60, 40]) if mode == "RGB" else int(GREY[60, 40])
    return image


PICTURES = {
    "RGBA": lambda: Image.fromarray(np.dstack([RGB, ALPHA])),
    "LA": lambda: Image.fromarray(np.dstack([GREY, ALPHA])),
    "P with tRNS": _palette,
    "RGB with tRNS": lambda: _keyed("RGB"),
    "L with tRNS": lambda: _keyed("L"),
    "RGBA with a colour profile": lambda: _with_profile(Image.fromarray(np.dstack([RGB, ALPHA]))),
}


def _with_profile(image: Image.Image) -> Image.Image:
    image.info["icc_profile"] = icc.display_p3()
    return image


@pytest.mark.parametrize("kind", list(PICTURES))
def test_the_client_flattens_a_pil_image_to_the_pixels_the_server_decodes_from_its_png(kind: str) -> None:
    """Parity: the server decoding the picture saved as PNG (alpha kept) and the client's flattened PNG agree."""
    image = PICTURES[kind]()
    original = pil_bytes(image, "PNG", **({"transparency": image.info["transparency"]} if "tRNS" in kind else {}))
    from_server = decode_image(original)
    from_client = decode_image(encode_image(image).data)
    assert (from_server == 0).all(axis=-1).any()  # the transparent part shows black on both
    np.testing.assert_array_equal(from_client, from_server)


def test_a_16_bit_grey_pil_image_with_a_transparent_level_stays_16_bit_with_that_level_black() -> None:
    levels = GREY.astype(np.uint16) * 257 + 3
    image = Image.fromarray(levels)
    image.info["transparency"] = int(levels[60, 40])
    with Image.open(io.BytesIO(encode_image(image).data)) as png:
        stored = np.asarray(png)
        assert png.mode.startswith("I") and "transparency" not in png.info
    np.testing.assert_array_equal(stored, np.where(levels == levels[60, 40], 0, levels))


def test_premultiplied_pil_images_send_their_stored_colours() -> None:
    premultiplied = Image.fromarray(np.dstack([RGB, ALPHA])).convert("RGBa")
    np.testing.assert_array_equal(sent(premultiplied), np.asarray(premultiplied)[..., :3])


def test_an_opaque_rgba_pil_image_is_sent_as_its_rgb() -> None:
    opaque = Image.fromarray(np.dstack([RGB, np.full_like(ALPHA, 255)]))
    assert encode_image(opaque).data == encode_image(Image.fromarray(RGB)).data


def test_an_image_without_transparency_is_left_as_it_is() -> None:
    image = Image.fromarray(RGB)
    assert flatten_alpha(image) is image


def test_an_hxwx4_array_is_taken_as_rgba_and_flattened_as_a_pil_image_is() -> None:
    rgba = np.dstack([RGB, ALPHA])
    assert encode_image(rgba).data == encode_image(Image.fromarray(rgba)).data
    assert (sent(Image.fromarray(rgba))[:, 100:] == 0).all()


def test_flattening_keeps_the_colour_profile() -> None:
    image = _with_profile(Image.fromarray(np.dstack([RGB, ALPHA])))
    with Image.open(io.BytesIO(encode_image(image).data)) as png:
        assert png.info.get("icc_profile") == icc.display_p3()


def test_the_transparency_turns_with_the_exif_orientation() -> None:
    image = Image.fromarray(np.dstack([RGB, ALPHA]))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = Image.open(io.BytesIO(pil_bytes(image, "PNG", exif=exif)))
    out = sent(image)
    assert out.shape == (160, 120, 3)
    np.testing.assert_array_equal(out, sent(ImageOps.exif_transpose(image)))
    assert (out[100:] == 0).all()  # the transparent right part is at the bottom once turned


def test_the_display_copy_shows_the_transparency_over_black_as_analysed() -> None:
    shown = np.asarray(as_srgb(Image.fromarray(np.dstack([RGB, ALPHA]))))
    assert (shown[:, 100:] == 0).all()
    np.testing.assert_array_equal(shown, sent(Image.fromarray(np.dstack([RGB, ALPHA]))))


def test_a_pil_image_of_a_16_bit_picture_with_a_transparent_colour_is_refused_not_guessed() -> None:
    """PIL holds a 16-bit RGB PNG's pixels at 8 bits and its tRNS colour at 16: the client cannot tell which pixels
    the server will show black, so it says to send the file itself."""
    image = Image.new("RGB", (64, 48), (3, 7, 0))
    image.info["transparency"] = (1000, 2000, 0)
    with pytest.raises(InvalidImageError, match=r"16-bit picture whose transparent colour is \(1000, 2000, 0\).*send the "
                                                 r"file's path or bytes instead"):
        encode_image(image)
    image.info["transparency"] = (3, 7, 0)  # an 8-bit key is read as the server reads it
    assert encode_image(image).size == (64, 48)
