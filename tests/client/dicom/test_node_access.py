"""Which senders the DICOM node takes: any calling AE title by default, only the listed ones with --allow-aet."""
from __future__ import annotations

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dermassist_client.dicom.config import NodeConfig
from dermassist_client.dicom.errors import DicomError
from dermassist_client.dicom.node import DicomNode
from tests.client.dicom.test_forwarding import SyntheticClient


def echo(address: tuple[str, int], calling: str) -> bool:
    """Whether a C-ECHO from ``calling`` is associated and answered Success."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate(*address, ae_title="DERMASSIST")
    if not assoc.is_established:
        return False
    try:
        return getattr(assoc.send_c_echo(), "Status", None) == 0x0000
    finally:
        assoc.release()


@pytest.mark.parametrize("allowed,expected", [((), {"MODALITY1": True, "ANYONE": True}),
                                              (("MODALITY1",), {"MODALITY1": True, "ANYONE": False})])
def test_the_node_takes_only_the_calling_ae_titles_it_was_given(tmp_path, allowed, expected):
    config = NodeConfig(spool=tmp_path / "spool", port=0, calling_aets=allowed)
    with DicomNode(SyntheticClient(), config) as node:
        assert {calling: echo(node.address, calling) for calling in expected} == expected


def test_an_accepted_calling_ae_title_is_checked_like_any_ae_title(tmp_path):
    with pytest.raises(DicomError, match=r"an accepted calling AE title \(--allow-aet\) must be 1 to 16"):
        NodeConfig(spool=tmp_path, calling_aets=("A" * 17,))
