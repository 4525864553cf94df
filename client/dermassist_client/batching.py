"""Split images into requests of at most ``max_batch_size`` rows and ``max_message_bytes``, map answers back, and
settle a batch some of whose images were refused."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from .classes import OUTPUT_PROBABILITIES
from .errors import InvalidImageError, PartialBatchError, ServerError
from .images import EncodedImage, ImageInput, encode_image
from .result import LesionResult, build_result
from .transport import RawAnswer

#: Room left in a request for everything but the image bytes (tensor headers, names, the request id).
MESSAGE_OVERHEAD_BYTES = 64 * 1024
T = TypeVar("T")
# The server names the refused row of its request; a resend of one image is always row 0, not the caller's index.
_SERVER_ROW = re.compile(r"IMAGE row \d+: ")


def chunks(items: Sequence[T], size: int, max_bytes: int | None = None,
           nbytes: Callable[[T], int] | None = None) -> Iterator[tuple[int, Sequence[T]]]:
    """(offset, slice) pairs in order: at most ``size`` items and, with ``max_bytes``, at most that many bytes
    (``nbytes`` of each) unless one item alone is larger (it then goes alone, and the message limit names it)."""
    start = 0
    while start < len(items):
        end, total = start, 0
        while end < len(items) and end - start < size:
            total += nbytes(items[end]) if nbytes is not None else 0
            if max_bytes is not None and end > start and total > max_bytes:
                break
            end += 1
        yield start, items[start:end]
        start = end


def request_parts(outcomes: Sequence[object], max_batch_size: int,
                  max_message_bytes: int) -> list[Sequence[tuple[int, EncodedImage]]]:
    """The requests a batch is sent in: the encoded images among ``outcomes`` (``encode_each``'s answer) with their
    input index, at most ``max_batch_size`` rows and ``max_message_bytes`` (less the request's overhead) each."""
    sendable = [(i, x) for i, x in enumerate(outcomes) if isinstance(x, EncodedImage)]
    budget = max_message_bytes - MESSAGE_OVERHEAD_BYTES
    return [part for _, part in chunks(sendable, max_batch_size, budget, lambda item: len(item[1].data))]


def encode_each(images: Iterable[ImageInput]) -> list[EncodedImage | InvalidImageError]:
    """Each image encoded, or the local reason it cannot be sent, naming its index."""
    out: list[EncodedImage | InvalidImageError] = []
    for index, image in enumerate(images):
        try:
            out.append(encode_image(image))
        except InvalidImageError as e:
            out.append(InvalidImageError(f"image {index}: {e}", server_message=e.server_message))
    return out


def refusal(index: int, image: EncodedImage, error: InvalidImageError) -> InvalidImageError:
    """The server's refusal of one image, naming its index in the caller's input and its source (the row number of
    the one-image request it was refused in is dropped: it would contradict the index)."""
    return InvalidImageError(f"image {index} ({image.source}): {_SERVER_ROW.sub('', str(error))}",
                             server_message=error.server_message)


def settle(outcomes: Sequence[LesionResult | InvalidImageError]) -> list[LesionResult]:
    """The results when every image was answered, else PartialBatchError holding every outcome in input order."""
    refused = [o for o in outcomes if isinstance(o, InvalidImageError)]
    if not refused:
        return list(outcomes)  # type: ignore[arg-type]
    shown = "; ".join(str(e) for e in refused[:3]) + (f"; and {len(refused) - 3} more" if len(refused) > 3 else "")
    raise PartialBatchError(
        f"{len(refused)} of {len(outcomes)} images were refused ({shown}); the other {len(outcomes) - len(refused)} "
        "were answered: the error's results holds every answer and refusal in input order", list(outcomes))


def results_of(answer: RawAnswer, images: Sequence[EncodedImage]) -> list[LesionResult]:
    """One result per row of an answer, in request order."""
    rows = len(answer.outputs[OUTPUT_PROBABILITIES])
    if rows != len(images):
        raise ServerError(
            f"model {answer.model_name!r} answered {rows} rows for {len(images)} images; expected one row per image "
            "(the server or a proxy between us is misbehaving)"
        )
    return [build_result(answer.outputs, i, img.size, answer.model_name, answer.model_version, answer.request_id,
                         answer.release, answer.build)
            for i, img in enumerate(images)]
