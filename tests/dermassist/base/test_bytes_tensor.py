"""The BYTES tensor wire form against tritonclient's own encoder and decoder."""
from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from dermassist.base.bytes_tensor import MalformedTensor, decode, encode

ELEMENTS = [b"\xff\xd8jpeg", b"", b"x" * 300]


def test_encode_is_what_triton_decodes() -> None:
    assert list(deserialize_bytes_tensor(encode(ELEMENTS))) == ELEMENTS


def test_decode_reads_what_tritonclient_encodes() -> None:
    raw = serialize_byte_tensor(np.array(ELEMENTS, dtype=np.object_)).item()
    assert [bytes(e) for e in decode(raw)] == ELEMENTS and encode(ELEMENTS) == raw


def test_decode_refuses_a_cut_tensor() -> None:
    from dermassist.base.errors import DermAssistError

    assert issubclass(MalformedTensor, DermAssistError)  # under the one root callers catch
    with pytest.raises(MalformedTensor, match="runs past the end"):
        decode(encode([b"abcdef"])[:-1])
