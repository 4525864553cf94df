"""Encoded test images built in memory: every format, bit depth and malformation the decoder meets."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin


def synthetic_lesion(height: int = 450, width: int = 600, seed: int = 0) -> np.ndarray:
    """RGB uint8 skin-toned image with one dark elliptical lesion, for shape-level tests."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = (205, 160, 140)
    noise = rng.integers(-12, 12, size=img.shape)
    img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
    center = (int(width * 0.55), int(height * 0.45))
    axes = (max(2, width // 6), max(2, height // 5))
    cv2.ellipse(img, center, axes, 20, 0, 360, (80, 50, 40), thickness=-1)
    return img


def outside_circle(height: int, width: int, radius: float) -> np.ndarray:
    """Pixels outside the centred circle of this radius: the black border a dermatoscope's round lens leaves."""
    yy, xx = np.mgrid[:height, :width]
    return (yy - height / 2) ** 2 + (xx - width / 2) ** 2 > radius**2


def encode(rgb: np.ndarray, fmt: str = ".jpg", **params: int) -> bytes:
    """Encode an RGB array with OpenCV (".jpg", ".png", ".bmp", ".tiff")."""
    arr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(fmt, arr, [v for kv in params.items() for v in kv])
    if not ok:
        raise ValueError(f"OpenCV could not encode {fmt}")
    return buf.tobytes()


def pil_bytes(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    """Encode a PIL image."""
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def with_orientation(rgb: np.ndarray, orientation: int, fmt: str = "JPEG") -> bytes:
    """An encoded picture (JPEG, PNG or TIFF: ``fmt``) whose EXIF orientation tag is set (pixels stored unrotated)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    quality = {"quality": 95} if fmt == "JPEG" else {}
    return pil_bytes(Image.fromarray(rgb), fmt, exif=exif, **quality)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def lossless_jpeg(width: int, height: int, components: int = 3) -> bytes:
    """A lossless (SOF3) 8-bit JPEG of a flat mid-grey picture: one Huffman code, every difference 0, so the
    first sample predicts 128 and every other its neighbour (what DICOM's lossless transfer syntaxes hold)."""
    frame = bytes([8]) + struct.pack(">HH", height, width) + bytes([components])
    frame += b"".join(bytes([c + 1, 0x11, 0]) for c in range(components))
    table = bytes([0x00]) + bytes([1] + [0] * 15) + bytes([0])  # DC table 0: a 1-bit code for difference class 0
    scan = bytes([components]) + b"".join(bytes([c + 1, 0x00]) for c in range(components)) + bytes([1, 0, 0])
    bits = width * height * components  # one 0 bit per sample; the last byte padded with 1 bits
    coded = bytes(bits // 8) + (bytes([0xFF >> (bits % 8)]) if bits % 8 else b"")
    return (b"\xff\xd8" + _jpeg_segment(0xC3, frame) + _jpeg_segment(0xC4, table) + _jpeg_segment(0xDA, scan) + coded
            + b"\xff\xd9")


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit grayscale PNG of side x side zero pixels: small on disk, huge once decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def raw_profile_png(rgb: np.ndarray, orientation: int) -> bytes:
    """A PNG whose EXIF sits in ImageMagick's "Raw profile type exif" text chunk, not an eXIf chunk."""
    from PIL.PngImagePlugin import PngInfo

    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = exif.tobytes()
    info = PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw):8d}\n{raw.hex()}\n")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", pnginfo=info)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as im:  # PIL reads that orientation: the case the decoder must not follow
        assert im.getexif().get(0x0112) == orientation and "exif" not in im.info
    return data



# Files of the formats clients send by mistake, each as the service names it (WebP and GIF real, the rest by header).
MISTAKEN_FORMATS = {
    "WebP": pil_bytes(Image.fromarray(synthetic_lesion(120, 160)), "WEBP"),
    "GIF": pil_bytes(Image.fromarray(synthetic_lesion(120, 160)), "GIF"),
    "HEIC": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
    "HEIF": b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + bytes(64),
    "AVIF": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64),
    "JPEG 2000": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64),
    "DICOM": bytes(128) + b"DICM" + bytes(64),
    "PDF": b"%PDF-1.4 a scanned referral letter",
}


def tiff_with_a_broken_full_size_page() -> bytes:
    """A two-page TIFF whose first page is a reduced-resolution copy and whose second has lost its ImageWidth tag:
    PIL opens it, then raises TypeError ("Missing dimensions") when the reader moves to the full-size page."""
    reduced = TiffImagePlugin.ImageFileDirectory_v2()
    reduced[254] = 1  # NewSubfileType: a reduced-resolution copy
    out = io.BytesIO()
    Image.new("RGB", (8, 6)).save(out, "TIFF", tiffinfo=reduced, save_all=True, append_images=[Image.new("RGB", (40, 30))])
    data = bytearray(out.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * struct.unpack_from("<H", data, first)[0])[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):
        if struct.unpack_from("<H", data, second + 2 + 12 * i)[0] == 256:  # ImageWidth -> an unknown tag
            struct.pack_into("<H", data, second + 2 + 12 * i, 0xFFF0)
    return bytes(data)


def tiff_whose_second_page_has_an_unknown_compression() -> bytes:
    """A two-page TIFF whose second page says JPEG 2000 (34712), which PIL has no decoder for: counting the pages
    raises KeyError (its table of compressions has no such key)."""
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 120, 120)).save(out, "TIFF", save_all=True, append_images=[Image.new("RGB", (8, 6))])
    data = bytearray(out.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * struct.unpack_from("<H", data, first)[0])[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):
        if struct.unpack_from("<H", data, second + 2 + 12 * i)[0] == 259:  # Compression
            struct.pack_into("<H", data, second + 2 + 12 * i + 8, 34712)
    return bytes(data)
