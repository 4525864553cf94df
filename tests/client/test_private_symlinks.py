"""Patient data is never written through a symbolic link (security audit finding 8: ``analyze --fhir-out`` followed
a link planted at the output path, overwrote its target and made it 0600)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dermassist_client.errors import DermAssistClientError
from dermassist_client.fhir import FhirError, write_bundle
from dermassist_client.private import UnsafeOutputError, open_private, write_private


@pytest.fixture
def victim(tmp_path):
    """Another file of the operator's, readable by all, and a link to it where an output is to be written."""
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    target.chmod(0o644)
    link = tmp_path / "out.json"
    link.symlink_to(target)
    return target, link


class StandInBundle:
    """Serialises as a FHIR Bundle model does."""

    def model_dump_json(self, **options) -> str:
        return '{"resourceType": "Bundle"}'


def untouched(target) -> bool:
    return target.read_text() == "precious" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_link_at_the_output_path_is_refused_and_its_target_left_alone(victim):
    target, link = victim
    with pytest.raises(UnsafeOutputError) as caught:
        write_private(link, b"{}")
    message = str(caught.value)
    assert f"{link} is a symbolic link (to {str(target)!r})" in message and "choose another output path" in message
    assert isinstance(caught.value, DermAssistClientError) and isinstance(caught.value, OSError)
    assert untouched(target) and link.is_symlink()


def test_a_dangling_link_creates_nothing_at_its_target(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(UnsafeOutputError, match="is a symbolic link"):
        open_private(link)
    assert not (tmp_path / "elsewhere.json").exists()


def test_the_fhir_bundle_names_the_link_and_the_fix(victim):
    target, link = victim
    with pytest.raises(FhirError, match=rf"cannot write the FHIR Bundle to {link}: {link} is a symbolic link"):
        write_bundle(StandInBundle(), link)
    assert untouched(target)


def test_a_fifo_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeOutputError, match=r"out.json is a named pipe \(FIFO\); expected a new or existing regular"):
        write_private(fifo, b"{}")
    with pytest.raises(UnsafeOutputError, match="/dev/null is a character device; expected"):
        write_private(Path("/dev/null"), b"{}")  # it opens at once: refused by what it is once open


def test_a_regular_file_is_still_replaced_and_made_owner_only(tmp_path):
    existing = tmp_path / "out.json"
    existing.write_text("an earlier, longer bundle")
    existing.chmod(0o644)
    write_private(existing, b"{}")
    assert existing.read_bytes() == b"{}" and stat.S_IMODE(existing.stat().st_mode) == 0o600
