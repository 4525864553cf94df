"""The client reads image files as the server does: the formats it names, BigTIFF, large PNG chunks."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from dermassist_client import InvalidImageError
from dermassist_client.images import encode_image
from dermassist_client.images import other_format as client_other_format
from preprocess.decode import other_format as server_other_format
from tests.support.images import MISTAKEN_FORMATS, pil_bytes, synthetic_lesion

RGB = synthetic_lesion(120, 160)
MISTAKES = MISTAKEN_FORMATS


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_the_client_names_a_format_sent_by_mistake_as_the_server_does(name: str) -> None:
    assert client_other_format(MISTAKES[name]) == server_other_format(MISTAKES[name]) == name
    for plain in (b"", b"hello", pil_bytes(Image.fromarray(RGB), "PNG")):
        assert client_other_format(plain) is None and server_other_format(plain) is None


@pytest.mark.parametrize("name,article", [("PDF", "a"), ("HEIC", "a"), ("AVIF", "an")])
def test_a_file_of_a_refused_format_is_named_before_it_is_sent(tmp_path, name: str, article: str) -> None:
    path = tmp_path / f"letter.{name.lower()}"
    path.write_bytes(MISTAKES[name])
    expected = rf"letter\.{name.lower()} is {article} {name} file, which DermAssist does not accept"
    with pytest.raises(InvalidImageError, match=expected):
        encode_image(path)


def test_a_bigtiff_file_is_read_with_its_size(tmp_path) -> None:
    path = tmp_path / "scan.tif"
    Image.fromarray(RGB).save(path, "TIFF", big_tiff=True)
    encoded = encode_image(path)
    assert encoded.size == (160, 120) and encoded.data[:4] == b"II+\x00"


def test_a_png_with_a_text_chunk_over_pillows_default_limit_is_read(tmp_path) -> None:
    info = PngInfo()
    info.add_text("Comment", "".join(chr(65 + i % 26) for i in range(3 * 2**20)), zip=True)
    path = tmp_path / "annotated.png"
    Image.fromarray(RGB).save(path, "PNG", pnginfo=info)
    assert encode_image(path).size == (160, 120)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")), RGB)


def test_a_tiff_whose_preview_page_comes_first_has_the_full_pages_size(tmp_path) -> None:
    """The server analyses the full-size page; the client's original size (the frame of BBOX) must be that page's."""
    import tifffile

    path = tmp_path / "preview_first.tif"
    tifffile.imwrite(path, RGB[::4, ::4], photometric="rgb", subfiletype=1)
    tifffile.imwrite(path, RGB, photometric="rgb", subfiletype=0, append=True)
    assert encode_image(path).size == (160, 120)


def test_a_tiff_of_floating_point_pixels_is_told_its_pixel_format_not_that_it_is_corrupt(tmp_path) -> None:
    """An intact 32-bit float TIFF was called 'truncated or corrupt': its user re-sent the same file."""
    import tifffile

    path = tmp_path / "float.tif"
    tifffile.imwrite(path, RGB.astype(np.float32) / 255, photometric="rgb")
    with pytest.raises(InvalidImageError, match=r"float.tif is a TIFF file, but its pixels are 32-bit floating point, 3 "
                                                r"samples a pixel, which DermAssist does not read: re-save it as 8- or "
                                                r"16-bit RGB"):
        encode_image(path)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(path.read_bytes()[:6])  # no directory to read
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        encode_image(truncated)


def test_the_client_reads_as_few_tiff_pages_as_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TIFF of 100,000 tiny pages stalled encode_image 49 s before anything was sent (fuzz audit 5): it walked every
    page's directory. Now it reads at most the pages the server reads, and sends the file for the server to refuse."""
    from PIL import TiffImagePlugin

    from dermassist_client.images import MAX_TIFF_PAGES, read_header
    from preprocess.decode import MAX_TIFF_PAGES as SERVER_MAX_TIFF_PAGES
    from tests.preprocess.test_decode import many_page_tiff

    assert MAX_TIFF_PAGES == SERVER_MAX_TIFF_PAGES
    seeks: list[int] = []
    real = TiffImagePlugin.TiffImageFile._seek

    def counted(self, frame: int) -> None:
        seeks.append(frame)
        real(self, frame)

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_seek", counted)
    assert read_header(many_page_tiff(400, thumbnails=True)) == ("TIFF", (8, 8))
    assert max(seeks) < MAX_TIFF_PAGES
