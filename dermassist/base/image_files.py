"""Writing an image file with OpenCV, with its failures told: ``cv2.imwrite`` answers False (nothing written) for a
folder it cannot write and raises ``cv2.error`` for a name whose suffix it has no writer for."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import DermAssistError

#: The suffixes the project writes images with; a name with another suffix is refused before OpenCV sees it.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_suffix_problem(path: Path) -> str | None:
    """Why ``path`` cannot name an image file the project writes (its suffix), else None."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return None
    return (f"ends in {suffix!r}" if suffix else "has no suffix") + f"; expected a name ending in {' or '.join(IMAGE_SUFFIXES)}"


def write_image(path: Path, image: np.ndarray, what: str, error: type[DermAssistError] = DermAssistError,
                params: Sequence[int] = (), bgr: bool = False) -> Path:
    """Write an RGB (h, w, 3) or grey (h, w) uint8 ``image`` to ``path`` (PNG or JPEG by its suffix); ``error``
    naming ``what`` the file is, the path and the fix when it cannot be written. ``bgr``: the pixels are in OpenCV's
    order already (as ``cv2.imread`` gave them)."""
    import cv2

    path = Path(path)
    problem = image_suffix_problem(path)
    if problem is not None:
        raise error(f"{what} {path} cannot be written: its name {problem}")
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and not bgr else image
    try:
        written = cv2.imwrite(str(path), pixels, list(params))
    except cv2.error as e:
        raise error(f"{what} {path} cannot be written ({str(e).strip().splitlines()[-1]}); expected a {image.shape} "
                    "uint8 image and a .png or .jpg name") from e
    if not written:
        raise error(f"{what} {path} could not be written; expected a folder this process can write, with free space: "
                    f"check {path.parent} (it exists, is writable, and its disk is not full), or write elsewhere")
    return path
