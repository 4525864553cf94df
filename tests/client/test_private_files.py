"""Files that hold patient data are readable by their owner only, whatever the umask: the node's spool, the SEG and
SR written out, the FHIR Bundle (and the guard's audit trail, tested with the guard)."""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dermassist_client.dicom.analysis import build_analysis
from dermassist_client.dicom.config import NodeConfig
from dermassist_client.dicom.node import DicomNode
from dermassist_client.dicom.source import read_dicom
from dermassist_client.fhir import ImagingContext, build_bundle, write_bundle
from dermassist_client.private import write_private
from tests.client.dicom.test_forwarding import SyntheticClient, spool
from tests.support import dicom_images as di
from tests.support.dicom_checks import synthetic_result

PATIENT = di.Patient(patient_id="DA-PRIVATE-1", patient_name="Private^Pat").with_study()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask 022, which leaves new files readable by everyone."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_seg_sr_and_fhir_outputs_are_owner_only(tmp_path, ham_jpeg, open_umask):
    image = read_dicom(di.photograph(ham_jpeg, PATIENT, compressed=False), name="sent")
    result = synthetic_result(image.size)
    out = tmp_path / "dicom-out"
    paths = build_analysis(image, result).write(out)
    assert len(paths) == 2 and all(mode(p) == 0o600 for p in paths) and mode(out) == 0o700
    bundle = write_bundle(build_bundle([(result, ImagingContext.from_dataset(image.dataset))]), tmp_path / "b.json")
    assert mode(bundle) == 0o600
    existing = tmp_path / "old.json"  # a file that was there is made owner-only when written again
    existing.write_text("{}")
    existing.chmod(0o644)
    assert mode(write_private(existing, b"{}")) == 0o600


def test_the_nodes_spool_is_owner_only(tmp_path, ham_jpeg, open_umask):
    node = DicomNode(SyntheticClient(), NodeConfig(spool=tmp_path / "spool", port=0))  # no PACS: spool only
    (item,) = [next(iter(i.values())) for i in spool(node, [di.photograph(ham_jpeg, PATIENT, compressed=False)])]
    spool_root = tmp_path / "spool"
    assert mode(spool_root) == 0o700 and mode(spool_root / "pending") == 0o700
    (folder,) = node.pending()
    assert mode(folder) == 0o700 and {mode(f) for f in folder.iterdir()} == {0o600}
    assert item.PatientID == PATIENT.patient_id
