"""The raw wire form of a Triton BYTES tensor: each element as a little-endian uint32 length, then its bytes."""
from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

from .errors import DermAssistError


class MalformedTensor(DermAssistError, ValueError):
    """A BYTES tensor whose length prefixes do not match its contents."""


def encode(elements: Sequence[bytes]) -> bytes:
    """Raw contents of a BYTES tensor holding ``elements``, as Triton reads ``raw_input_contents``."""
    return b"".join(struct.pack("<I", len(e)) + bytes(e) for e in elements)


def iter_elements(raw: bytes) -> Iterator[memoryview]:
    """The elements of the raw contents of a BYTES tensor one by one (views, no copies), for a caller that needs
    only some of them: a request of millions of empty elements costs no list of millions."""
    offset = 0
    view = memoryview(raw)
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise MalformedTensor(f"a length prefix is cut at byte {offset} of {len(raw)}")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise MalformedTensor(f"an element of {size} bytes runs past the end ({len(raw)} bytes)")
        yield view[offset:offset + size]
        offset += size


def decode(raw: bytes) -> list[memoryview]:
    """Split the raw contents of a BYTES tensor into its elements: views, no copies."""
    return list(iter_elements(raw))
