"""The step code the served adapters and the reference pipeline share (their parity, end to end, is
tests/integration/test_reference_parity.py)."""
from __future__ import annotations

import pytest

from dermassist.base.steps import refuse_bad_rows
from preprocess.errors import InvalidImageError


class Refused(Exception):
    """A caller's own error class."""


def test_every_bad_row_of_a_request_is_named_in_one_refusal() -> None:
    good = object()
    with pytest.raises(Refused, match=r"^IMAGE row 1: not an image; IMAGE row 2: truncated$"):
        refuse_bad_rows([good, InvalidImageError("not an image"), InvalidImageError("truncated")], Refused)
    with pytest.raises(InvalidImageError, match="^IMAGE row 0: empty$"):  # the served step's default
        refuse_bad_rows([InvalidImageError("empty")])
    assert refuse_bad_rows([good, good]) == [good, good]
