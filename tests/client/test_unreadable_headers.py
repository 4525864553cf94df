"""A header or EXIF block PIL cannot read leaves the format, size or acquisition time unknown, and says so at DEBUG;
anything else (a bug) is raised, not taken for a corrupt picture."""
from __future__ import annotations

import logging

import pytest

from dermassist_client import fhir, images
from dermassist_client.fhir import exif_taken
from dermassist_client.images import read_header
from tests.support.images import tiff_whose_second_page_has_an_unknown_compression, tiff_with_a_broken_full_size_page

TRUNCATED_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00"


@pytest.mark.parametrize(("data", "why"), [
    (TRUNCATED_PNG, "PIL cannot read its header (OSError: Truncated File Read)"),
    (tiff_with_a_broken_full_size_page(), "PIL cannot read its header (TypeError: Missing dimensions)"),
    (tiff_whose_second_page_has_an_unknown_compression(), "PIL cannot read its header (KeyError: 34712)"),
], ids=["truncated-png", "tiff-page-without-width", "tiff-page-of-unknown-compression"])
def test_an_unreadable_header_is_left_unknown_and_logged(data: bytes, why: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="dermassist_client.images"):
        assert read_header(data) is None
    assert f"format and size of a {len(data)}-byte image left unknown: {why}" in caplog.text


def test_an_unreadable_exif_drops_the_acquisition_time_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="dermassist_client.fhir"):
        assert exif_taken(TRUNCATED_PNG) is None
    assert (f"acquisition time of a {len(TRUNCATED_PNG)}-byte picture left out of the FHIR resources: its EXIF cannot "
            "be read (OSError: Truncated File Read)") in caplog.text


@pytest.mark.parametrize(("module", "reader", "bug"), [(images, read_header, RuntimeError),
                                                     (fhir, exif_taken, AttributeError)], ids=["header", "exif"])
def test_a_bug_while_reading_is_raised_not_taken_for_an_unreadable_file(monkeypatch, module, reader, bug) -> None:
    """Only what PIL raises on a malformed file counts as unreadable: a bug of ours is not taken for a corrupt picture
    (a header) or for a picture without a date (its EXIF)."""
    def broken(*_: object, **__: object) -> None:
        raise bug("a bug")

    monkeypatch.setattr(module.Image, "open", broken)
    with pytest.raises(bug, match="a bug"):
        reader(TRUNCATED_PNG)
