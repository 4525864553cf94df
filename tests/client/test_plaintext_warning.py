"""Pictures sent without TLS to another machine are said to be (privacy audit, L1 and M6): the SDK, the command line
and the DICOM node had sent them unencrypted without a word, where the server warns of the same."""
from __future__ import annotations

import logging

import pytest

from dermassist_client import DermAssistClient
from dermassist_client import client as client_module
from dermassist_client.config import ClientConfig, is_loopback, plaintext_warning


@pytest.mark.parametrize("url, warned", [("192.0.2.10:8001", True), ("dermassist.hospital.example:8001", True),
                                         ("127.0.0.1:8001", False), ("localhost:8001", False), ("[::1]:8001", False),
                                         ("127.8.9.1:8001", False), ("LOCALHOST:8001", False),
                                         ("0.0.0.0:8001", False), ("[::]:8001", False)])
def test_the_sdk_warns_once_before_sending_pictures_in_plaintext_beyond_this_machine(
        url: str, warned: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "_WARNED_PLAINTEXT", set())
    with caplog.at_level(logging.WARNING, logger="dermassist_client"):
        for _ in range(2):
            DermAssistClient(url, timeout=1, retries=0).close()
    lines = [r.getMessage() for r in caplog.records if "PLAINTEXT" in r.getMessage()]
    assert len(lines) == (1 if warned else 0)  # once per address and process, not per client
    if warned:
        assert lines[0].startswith(f"sending pictures to {url} in PLAINTEXT")
    assert plaintext_warning(ClientConfig(url="192.0.2.10:8001", ssl=True)) is None  # TLS: nothing to say
    assert is_loopback("::1") and is_loopback("0.0.0.0", connecting=True) and not is_loopback("10.0.0.5")
    assert not is_loopback("0.0.0.0")  # a server bound there listens on every interface


def test_the_dicom_node_warns_when_it_listens_or_sends_to_the_pacs_beyond_this_machine() -> None:
    pytest.importorskip("pynetdicom")
    from dermassist_client.dicom.config import NodeConfig, PacsConfig
    from dermassist_client.dicom.node import plaintext_dicom

    assert plaintext_dicom(NodeConfig(spool="spool", host="127.0.0.1", pacs=PacsConfig("127.0.0.1", 11112, "PACS"))) == []
    told = plaintext_dicom(NodeConfig(spool="spool", host="0.0.0.0", pacs=PacsConfig("10.0.0.5", 104, "PACS")))
    assert len(told) == 2 and told[0].startswith("the DICOM node listens on 0.0.0.0 in PLAINTEXT")
    assert told[1].startswith("the DICOM node sends instances, SEG and SR to the PACS 10.0.0.5 in PLAINTEXT")
