"""The image corpus shared by the load test and the benchmark.

Real HAM10000 JPEGs (600x450) are used as they are and upscaled with OpenCV to the sizes clinics
upload (up to 3000x2000; an upscale is smoother than a camera's picture of that size, so it compresses and decodes
more easily); generated files are cached in a git-ignored folder, never committed.
The bad inputs are what a careless client sends; the server must reject each with INVALID_ARGUMENT.

The default source is the HAM10000 sample beside the project (../shared/data); a checkout without it (a load
machine) falls back to the real HAM10000 examples the client package bundles (CC BY-NC-SA 4.0, with their
attribution in ``dermassist_client/samples/ATTRIBUTION.md``). A source folder given explicitly is used as it is.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from .errors import ImageCorpusError
from .image_files import write_image
from .paths import HAM_SAMPLE_IMAGES, PROJECT_ROOT

logger = logging.getLogger(__name__)


def bundled_samples_dir() -> Path:
    """The client package's real HAM10000 examples (installed, or in this checkout), found without importing it."""
    spec = importlib.util.find_spec("dermassist_client")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "samples"
    return PROJECT_ROOT / "client" / "dermassist_client" / "samples"


def default_source_dir(shared: Path = HAM_SAMPLE_IMAGES, bundled: Path | None = None) -> Path:
    """The shared HAM10000 sample when this machine has it, else the client package's bundled examples."""
    return shared if shared.is_dir() else (bundled_samples_dir() if bundled is None else bundled)


DEFAULT_SOURCE_DIR = default_source_dir()
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "images"
# (width, height) of the corpus images; the first is the HAM10000 original size (kept as is).
SIZES: tuple[tuple[int, int], ...] = ((600, 450), (1200, 900), (2000, 1500), (3000, 2000))
JPEG_QUALITY = 90
# The sizes setting that sends a site's own files as they are (no sizes: nothing resized, every source file once).
AS_IS = "as-is"


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``"600x450,1200x900"`` -> ((600, 450), (1200, 900)); :data:`AS_IS` -> () (the source files as they are)."""
    if text.strip().lower() == AS_IS:
        return ()
    sizes = []
    for part in text.split(","):
        width, sep, height = part.strip().lower().partition("x")
        if not (sep and width.isdigit() and height.isdigit()):
            raise ImageCorpusError(f"corpus sizes {text!r}: {part.strip()!r} is not WIDTHxHEIGHT; expected e.g. "
                                   f"{format_sizes(SIZES)!r}, or {AS_IS!r} to send the source files as they are")
        sizes.append((int(width), int(height)))
    return tuple(sizes)


def format_sizes(sizes: tuple[tuple[int, int], ...]) -> str:
    """The sizes setting's text for ``sizes`` (:data:`AS_IS` for none)."""
    return ",".join(f"{w}x{h}" for w, h in sizes) if sizes else AS_IS


def describe_corpus(file_bytes: list[int], sizes: tuple[tuple[int, int], ...]) -> str:
    """One line an operator reads: how many images (``file_bytes``: each one's encoded size), their sizes (or as
    they are) and their mean encoded size."""
    mean_kb = sum(file_bytes) / len(file_bytes) / 1000 if file_bytes else 0.0
    made = f"at {format_sizes(sizes)} (resized where a source is not)" if sizes else "the source files as they are"
    return f"{len(file_bytes)} images, {made}, mean {mean_kb:.0f} KB"


@dataclass(frozen=True)
class CorpusSpec:
    """Which real images to take and how many of each generated size to write (``sizes`` empty: every source file as
    it is, ``per_size`` unused)."""

    source_dir: Path = DEFAULT_SOURCE_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    per_size: int = 4
    sizes: tuple[tuple[int, int], ...] = SIZES

    def __post_init__(self) -> None:
        if self.per_size < 1:
            raise ImageCorpusError(f"per_size must be at least 1, got {self.per_size}")
        for w, h in self.sizes:
            if min(w, h) < 32:
                raise ImageCorpusError(f"corpus sizes must be at least 32x32, got {w}x{h}")


def _sources(spec: CorpusSpec) -> list[Path]:
    source = Path(spec.source_dir)
    found = sorted(source.glob("*.jpg"))
    if not spec.sizes:  # a site's own files as they are: its JPEG and PNG uploads
        found = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if source.is_dir() else []
    if not found:
        what = "holds no *.jpg" if source.is_dir() else "does not exist"
        raise ImageCorpusError(
            f"image source folder {source} {what}; expected a folder of real JPEGs: point the source at one (the "
            f"load test: LOADTEST_IMAGE_SOURCE), or leave it unset for the default (the shared HAM10000 sample, "
            f"{HAM_SAMPLE_IMAGES}, else the client package's bundled examples, {bundled_samples_dir()})"
        )
    return found


def build_corpus(spec: CorpusSpec = CorpusSpec()) -> list[Path]:
    """Return the corpus files (per_size images of every size): a source already of a size as it is, else a resized
    copy, written when missing. (Every 600x450 HAM10000 original had been re-encoded at quality 90 too, a quarter of
    its bytes and a quarter of its decode time: the performance audit's B3.)"""
    sources = _sources(spec)
    if not spec.sizes:
        return sources
    out: list[Path] = []
    cache = Path(spec.cache_dir)
    for k, (w, h) in enumerate(spec.sizes):
        for i in range(spec.per_size):
            src = sources[(k * spec.per_size + i) % len(sources)]
            if _size(src) == (w, h):
                out.append(src)
                continue
            target = cache / f"{src.stem}_{w}x{h}.jpg"
            if not target.exists():
                _write_resized(src, target, w, h)
            out.append(target)
    return out


def _size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file as OpenCV decodes it (EXIF orientation applied), or None where it cannot be
    decoded (the resize then says why). A whole decode, of a dozen sources at most: the load test's image ships
    OpenCV, not ``preprocess``."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else (image.shape[1], image.shape[0])


def _write_resized(src: Path, target: Path, width: int, height: int) -> None:
    import cv2

    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageCorpusError(f"{src} could not be decoded as an image; replace or remove it")
    if image.shape[:2] != (height, width):
        interp = cv2.INTER_CUBIC if width > image.shape[1] else cv2.INTER_AREA
        image = cv2.resize(image, (width, height), interpolation=interp)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{random.randrange(1 << 30)}.jpg")
    write_image(tmp, image, "corpus image", ImageCorpusError, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY], bgr=True)
    tmp.replace(target)  # atomic: parallel Locust workers may build the same cache
    logger.debug("wrote %s (%dx%d) from %s", target, width, height, src.name)


def load_corpus(spec: CorpusSpec = CorpusSpec()) -> list[bytes]:
    """The encoded bytes of every corpus image."""
    return [p.read_bytes() for p in build_corpus(spec)]


def bad_inputs(good_jpeg: bytes) -> dict[str, bytes]:
    """Inputs the service must reject as INVALID_ARGUMENT, keyed by what is wrong with them."""
    return {
        "empty": b"",
        "not_an_image": b"%PDF-1.7 this is a document, not a photo " + hashlib.sha256(good_jpeg).digest(),
        "truncated_jpeg": good_jpeg[: len(good_jpeg) // 3],
        "too_small_png": _tiny_png(),
    }


def _tiny_png(side: int = 8) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.full((side, side, 3), 128, dtype=np.uint8))
    if not ok:
        raise ImageCorpusError("OpenCV could not encode a PNG; check the opencv-python-headless install")
    return buf.tobytes()
