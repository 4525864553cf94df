"""The table conversion of matrix-shaper profiles: tone curves by hand, agreement with LittleCMS, and its fallback."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from preprocess import colour_profile
from preprocess.matrix_shaper import MatrixShaper, srgb_encode, tone_curve
from tests.support import icc
from tests.support.images import synthetic_lesion

CODES = np.arange(256) / 255.0


def test_srgb_encode_by_hand() -> None:
    out = srgb_encode(np.array([0.0, 0.0031308, 0.5, 1.0, 1.5, -0.1]))
    np.testing.assert_allclose(out, [0.0, 255 * 0.04045, 255 * (1.055 * 0.5 ** (1 / 2.4) - 0.055), 255.0, 255.0, 0.0],
                               atol=1e-3)


def test_curve_types_by_hand() -> None:
    np.testing.assert_allclose(tone_curve(icc.curve_tag(table=np.array([]))), CODES)  # no entries: identity
    np.testing.assert_allclose(tone_curve(icc.curve_tag(gamma=563 / 256)), CODES ** (563 / 256))
    three = tone_curve(icc.curve_tag(table=np.array([0.0, 0.25, 1.0])))  # 0 -> 0, 0.5 -> 0.25, 1 -> 1, linear between
    assert three is not None and three[0] == 0 and three[255] == 1
    np.testing.assert_allclose(three[51], 0.5 * 0.2, atol=1e-4)  # 51/255 = 0.2: 40% of the way to the middle point
    np.testing.assert_allclose(tone_curve(icc.curve_tag(parametric=icc.SRGB_CURVE)), icc.srgb_decode(np.arange(256)),
                               atol=2e-4)  # the parameters are stored to 1/65536
    np.testing.assert_allclose(tone_curve(icc.curve_tag(parametric=(2.0,), function=0)), CODES ** 2, atol=1e-6)
    # type 1: (a x + b)^g from x = -b/a, else 0: g=2, a=1, b=-0.5
    np.testing.assert_allclose(tone_curve(icc.curve_tag(parametric=(2.0, 1.0, -0.5), function=1)),
                               np.where(CODES >= 0.5, (CODES - 0.5) ** 2, 0.0), atol=1e-5)
    # type 2: (a x + b)^g + c: g=1, a=0.5, b=0, c=0.1
    np.testing.assert_allclose(tone_curve(icc.curve_tag(parametric=(1.0, 0.5, 0.0, 0.1), function=2)),
                               0.5 * CODES + 0.1, atol=1e-5)
    # type 4: (a x + b)^g + e from x = d, else c x + f: g=1, a=0.5, b=0, c=0.2, d=0.5, e=0.3, f=0.05
    np.testing.assert_allclose(tone_curve(icc.curve_tag(parametric=(1.0, 0.5, 0.0, 0.2, 0.5, 0.3, 0.05), function=4)),
                               np.where(CODES >= 0.5, 0.5 * CODES + 0.3, 0.2 * CODES + 0.05), atol=1e-5)


@pytest.mark.parametrize("tag", [b"curv\0\0\0\0\0\0\0\x09\0\x01", b"para\0\0\0\0\0\x07\0\0" + bytes(28),
                                 b"mft2" + bytes(40), b"para\0\0", icc.curve_tag(parametric=(2.0, 0.0, 0.5), function=1)],
                         ids=["short table", "function 7", "LUT", "cut", "type 1 with a = 0"])
def test_a_curve_it_cannot_read_is_none(tag: bytes) -> None:
    assert tone_curve(tag) is None


@pytest.mark.parametrize("profile", [icc.display_p3(), icc.adobe_rgb(),
                                     icc.matrix_trc_profile("P3, tabulated curve", icc.DISPLAY_P3_PRIMARIES,
                                                            curve=icc.curve_tag(table=icc.srgb_decode(
                                                                np.linspace(0, 255, 1024))))],
                         ids=["Display P3", "Adobe RGB", "P3 with a 1024-entry curve"])
def test_camera_profiles_convert_by_tables_as_littlecms_does(profile: bytes) -> None:
    colour_profile._converter.cache_clear()
    convert = colour_profile.srgb_converter(profile, "test")
    assert isinstance(convert, MatrixShaper)
    lcms = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"),
                                   "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    image = np.concatenate([synthetic_lesion(120, 160), np.random.default_rng(1).integers(0, 256, (120, 160, 3),
                                                                                           dtype=np.uint8)])
    expected = np.asarray(ImageCms.applyTransform(Image.fromarray(image), lcms)).astype(int)
    assert np.abs(convert(image).astype(int) - expected).max() <= 1


def test_tables_that_disagree_with_littlecms_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = MatrixShaper(np.repeat(CODES.astype(np.float32)[:, None, None], 3, axis=2), np.eye(3, dtype=np.float32))
    monkeypatch.setattr(colour_profile, "matrix_shaper", lambda *args: identity)
    colour_profile._converter.cache_clear()
    try:
        convert = colour_profile.srgb_converter(icc.display_p3(), "test")
        assert convert is not None and not isinstance(convert, MatrixShaper)
        p3 = icc.srgb_to_display_p3(synthetic_lesion(60, 80))
        assert np.abs(convert(p3).astype(int) - p3).max() > 5  # LittleCMS's conversion, not the identity tables
    finally:
        colour_profile._converter.cache_clear()
