"""Split images into requests of at most ``max_batch_size`` rows and map answers back."""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from .classes import OUTPUT_PROBABILITIES
from .errors import InvalidImageError, ServerError
from .images import EncodedImage
from .result import LesionResult, build_result
from .transport import RawAnswer

_ROW = re.compile(r"IMAGE row (\d+)")


def chunks(items: Sequence[EncodedImage], size: int) -> Iterator[tuple[int, Sequence[EncodedImage]]]:
    """(offset, slice) pairs of at most ``size`` items, in order."""
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


def results_of(answer: RawAnswer, images: Sequence[EncodedImage]) -> list[LesionResult]:
    """One result per row of an answer, in request order."""
    rows = len(answer.outputs[OUTPUT_PROBABILITIES])
    if rows != len(images):
        raise ServerError(
            f"model {answer.model_name!r} answered {rows} rows for {len(images)} images; expected one row per image "
            "(the server or a proxy between us is misbehaving)"
        )
    return [build_result(answer.outputs, i, img.size, answer.model_name, answer.model_version, answer.request_id)
            for i, img in enumerate(images)]


def name_rejected_image(error: InvalidImageError, offset: int, images: Sequence[EncodedImage]) -> InvalidImageError:
    """The same rejection, naming which caller image (index and source) the server's row refers to."""
    match = _ROW.search(error.server_message or "")
    if match is None or len(images) == 1 and offset == 0:
        return error
    row = int(match.group(1))
    if row >= len(images):
        return error
    index = offset + row
    return InvalidImageError(f"image {index} ({images[row].source}): {error}", server_message=error.server_message)
