"""A PIL image and the demo's overlay give what the server makes of the file itself (QA consistency audit, findings
1-3): a camera JPEG's EXIF-declared Adobe RGB (DCF R03) is read in its colours, a PNG turns by its eXIf chunk only
(not by XMP nor ImageMagick's text chunk), and an overlay that does not fit its picture is refused, not stretched.

No server runs: what the client sends is decoded by the server's own decoder (``preprocess.decode``) and compared
with that decoder's reading of the original file. The tests may import preprocess; the thin client never does.
"""
from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from dermassist_client import ResultError
from dermassist_client.colour_profile import adobe_rgb as client_adobe_rgb
from dermassist_client.colour_profile import declared_profile as client_declared_profile
from dermassist_client.images import as_srgb, encode_image, exif_orientation, read_header
from dermassist_client.overlay import draw_overlay
from dermassist_client.result import build_result
from preprocess.colour_profile import declared_profile as server_declared_profile
from preprocess.decode import decode, decode_image, parse_header
from preprocess.icc_profiles import adobe_rgb as server_adobe_rgb
from tests.support import icc
from tests.support.images import pil_bytes, raw_profile_png, synthetic_lesion

RGB = synthetic_lesion(120, 160)  # 160 wide, 120 high; a dark lesion in the middle
_ORIENTATION = 0x0112


def dcf_exif(colour_space: int | None = 0xFFFF, interop: str | None = "R03", orientation: int | None = None) -> Image.Exif:
    """EXIF as a camera set to Adobe RGB writes it: ColorSpace uncalibrated and DCF's interoperability index R03."""
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    if colour_space is not None:
        ifd[0xA001] = colour_space
    if interop is not None:
        ifd[0xA005] = {1: interop}
    if orientation is not None:
        exif[_ORIENTATION] = orientation
    return exif


def adobe_pixels(rgb: np.ndarray) -> np.ndarray:
    """sRGB pixels as a camera set to Adobe RGB stores them."""
    to_adobe = ImageCms.buildTransform(ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(server_adobe_rgb())),
                                       "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(rgb), to_adobe))


def r03_jpeg(**exif: int) -> bytes:
    """A camera JPEG in Adobe RGB that declares it only in its EXIF (no ICC profile)."""
    return pil_bytes(Image.fromarray(adobe_pixels(RGB)), "JPEG", quality=95, exif=dcf_exif(**exif).tobytes())


def server_sees_sent(image: Image.Image) -> np.ndarray:
    """What the server's decoder makes of what the client sends for a PIL image."""
    return decode_image(encode_image(image).data)


# ---- parity: the client's copies of the server's colour-space reading ----

def test_the_clients_adobe_rgb_profile_is_the_one_preprocess_uses() -> None:
    assert client_adobe_rgb() == server_adobe_rgb()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(client_adobe_rgb()))).strip() == (
        "Adobe RGB (1998)")


@pytest.mark.parametrize("exif", [
    dcf_exif(), dcf_exif(interop="R03\0"), dcf_exif(interop="R98"), dcf_exif(colour_space=1),
    dcf_exif(interop=None), dcf_exif(colour_space=None), Image.Exif(),
], ids=["R03", "R03 NUL-padded", "R98 (sRGB)", "ColorSpace sRGB", "no interop IFD", "no ColorSpace", "no EXIF"])
def test_the_client_reads_an_exif_colour_space_declaration_as_preprocess_does(exif: Image.Exif) -> None:
    """Parity: the client's copy of ``declared_profile`` says what the server's says, EXIF by EXIF."""
    reread = Image.Exif()
    reread.load(exif.tobytes())  # as a file carries it
    assert client_declared_profile(reread) == server_declared_profile(reread)


# ---- finding 1: the PIL route keeps an EXIF-declared Adobe RGB ----

def test_a_pil_image_of_a_jpeg_declaring_adobe_rgb_in_exif_is_sent_in_the_colours_the_server_reads_its_file_in() -> None:
    jpeg = r03_jpeg()
    from_file = decode_image(jpeg)
    with Image.open(io.BytesIO(jpeg)) as opened:
        assert "icc_profile" not in opened.info
        np.testing.assert_array_equal(server_sees_sent(opened), from_file)
        untagged = decode_image(pil_bytes(opened, "PNG"))  # the numbers read as sRGB: what was sent before
    srgb_file = decode_image(pil_bytes(Image.fromarray(RGB), "JPEG", quality=95))  # the same picture saved in sRGB
    # the server reads the declaration: the picture's colours, not duller ones
    assert np.abs(untagged.astype(int) - srgb_file).mean() > 2 * np.abs(from_file.astype(int) - srgb_file).mean()


def test_a_changed_pil_image_of_such_a_jpeg_keeps_its_colour_space() -> None:
    """A picture made in memory from the JPEG (converted, copied, resized) keeps its EXIF in its info; its numbers
    are still Adobe RGB, so they are sent as that."""
    jpeg = r03_jpeg()
    with Image.open(io.BytesIO(jpeg)) as opened:
        for changed in (opened.convert("RGB"), opened.copy()):
            assert changed.format is None
            np.testing.assert_array_equal(server_sees_sent(changed), decode_image(jpeg))
        smaller = opened.resize((80, 60))
    tagged = pil_bytes(smaller, "PNG", icc_profile=server_adobe_rgb())  # the same pixels, the profile embedded
    np.testing.assert_array_equal(server_sees_sent(smaller), decode_image(tagged))


def test_an_embedded_profile_wins_over_the_exif_declaration_and_a_png_declares_nothing_by_exif() -> None:
    """As the server: the declaration counts only for a JPEG without an embedded profile."""
    p3 = icc.srgb_to_display_p3(RGB)
    tagged = pil_bytes(Image.fromarray(p3), "JPEG", quality=95, exif=dcf_exif().tobytes(), icc_profile=icc.display_p3())
    png = pil_bytes(Image.fromarray(adobe_pixels(RGB)), "PNG", exif=dcf_exif().tobytes())
    for data in (tagged, png):
        with Image.open(io.BytesIO(data)) as opened:
            np.testing.assert_array_equal(server_sees_sent(opened), decode_image(data))


# ---- finding 3: the picture shown is in the colours analysed ----

def test_the_display_copy_of_a_jpeg_declaring_adobe_rgb_shows_the_colours_the_server_analyses() -> None:
    jpeg = r03_jpeg()
    analysed = decode_image(jpeg).astype(int)
    with Image.open(io.BytesIO(jpeg)) as opened:
        shown = np.asarray(as_srgb(opened)).astype(int)
        assert np.abs(np.asarray(opened).astype(int) - analysed).max() >= 10  # shown as stored it would be duller
        no_lesion = replace(build_result(_outputs(), 0, opened.size, "dermassist", "1"), lesion_fraction=0.0,
                            mask=np.zeros((256, 256), np.uint8))
        drawn = np.asarray(draw_overlay(opened, no_lesion)).astype(int)
    assert np.abs(shown - analysed).max() <= 1  # LittleCMS here, the server's tables there: within one level
    np.testing.assert_array_equal(drawn, shown)


# ---- finding 2: one orientation rule, the server's ----

XMP_ORIENTATION_6 = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
    "</rdf:RDF></x:xmpmeta>"
)


def _png_with_xmp(rgb: np.ndarray, exif: Image.Exif | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP_ORIENTATION_6)
    return pil_bytes(Image.fromarray(rgb), "PNG", pnginfo=info, **({"exif": exif.tobytes()} if exif is not None else {}))


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    return exif


STORED = np.ascontiguousarray(np.rot90(RGB))  # stored sideways: 120 wide, 160 high
FILES = {  # name: (file, whether the server turns it)
    "PNG, orientation in XMP": (_png_with_xmp(STORED), False),
    "PNG, orientation in ImageMagick's text chunk": (raw_profile_png(STORED, 6), False),
    "PNG, an eXIf chunk without orientation and XMP": (_png_with_xmp(STORED, Image.Exif()), False),
    "PNG, orientation in its eXIf chunk": (pil_bytes(Image.fromarray(STORED), "PNG", exif=_exif(6)), True),
    "JPEG, orientation in XMP": (pil_bytes(Image.fromarray(STORED), "JPEG", quality=95,
                                           xmp=XMP_ORIENTATION_6.encode()), True),
    "JPEG, orientation in EXIF": (pil_bytes(Image.fromarray(STORED), "JPEG", quality=95, exif=_exif(6)), True),
    "TIFF, orientation tag": (pil_bytes(Image.fromarray(STORED), "TIFF", exif=_exif(6)), True),
}


@pytest.mark.parametrize("name", list(FILES))
def test_a_pil_image_is_sent_in_the_frame_the_server_reads_its_file_in(name: str) -> None:
    data, turns = FILES[name]
    server = decode(data)
    height, width = server.original_size
    assert (width, height) == ((160, 120) if turns else (120, 160))
    assert read_header(data) is not None and read_header(data)[1] == (width, height) == parse_header(
        data, read_header(data)[0].replace("MPO", "JPEG")).size
    assert encode_image(data).size == (width, height)  # bytes: the header reader
    with Image.open(io.BytesIO(data)) as opened:
        sent = encode_image(opened)
        assert sent.size == (width, height)
        np.testing.assert_array_equal(decode_image(sent.data), server.rgb)
        changed = opened.convert("RGB")  # made in memory: no format, the file's info kept
        assert changed.format is None and exif_orientation(changed) == exif_orientation(opened)
        np.testing.assert_array_equal(server_sees_sent(changed), server.rgb)


def _outputs() -> dict[str, np.ndarray]:
    """One answer whose mask and box cover the middle of the picture."""
    mask = np.zeros((1, 256, 256), np.uint8)
    mask[:, 96:160, 96:160] = 255
    return {"PROBABILITIES": np.full((1, 8), 0.125, np.float32), "MASK": mask,
            "BBOX": np.array([[40, 40, 80, 80]], np.int32), "LESION_FRACTION": np.array([[0.0625]], np.float32)}


@pytest.mark.parametrize("name", list(FILES))
def test_the_overlay_is_drawn_in_the_frame_the_server_analysed(name: str) -> None:
    data, _ = FILES[name]
    height, width = decode(data).original_size
    result = build_result(_outputs(), 0, (width, height), "dermassist", "1")
    with Image.open(io.BytesIO(data)) as opened:
        out = draw_overlay(opened, result)
    assert out.size == (width, height)
    with Image.open(io.BytesIO(data)) as opened, pytest.raises(ResultError) as refused:
        draw_overlay(opened, replace(result, original_size=(height, width)))  # the other frame: never stretched
    message = str(refused.value)
    assert f"{height}x{width}" in message and f"{width}x{height}" in message and "original_size" in message


def test_an_overlay_whose_result_is_of_another_size_is_refused_naming_both() -> None:
    result = build_result(_outputs(), 0, (600, 450), "dermassist", "1")
    with pytest.raises(ResultError, match=r"expected a picture of 600x450 pixels .* got one of 300x225"):
        draw_overlay(Image.new("RGB", (300, 225), (200, 180, 170)), result)
    with pytest.raises(ResultError, match="original_size is unknown"):
        draw_overlay(Image.new("RGB", (300, 225), (200, 180, 170)), replace(result, original_size=None))


def test_the_demo_draws_the_servers_answer_on_a_png_turned_only_by_xmp_in_the_servers_frame(tmp_path: Path) -> None:
    """The demo analyses the path and draws on the file it opens: both in the frame the server analysed."""
    from dermassist_client.demo import analyze_file

    path = tmp_path / "sideways_by_xmp.png"
    path.write_bytes(FILES["PNG, orientation in XMP"][0])

    class ServerFrameClient:
        """Answers in the frame the server's decoder reads the file in (no server runs)."""

        config = SimpleNamespace(url="stub:0")

        def analyze(self, image: str, with_crop: bool = False) -> object:
            height, width = decode(Path(image).read_bytes()).original_size
            return build_result(_outputs(), 0, (width, height), "dermassist", "1")

    shown = analyze_file(ServerFrameClient(), str(path))  # type: ignore[arg-type]
    assert shown.overlay is not None and shown.overlay.size == (120, 160)  # as stored: the server does not turn it
