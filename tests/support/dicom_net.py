"""A storage SCU for the tests: send datasets to a DICOM node and collect each C-STORE answer."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import Verification

TEST_SCU_AET = "TESTSCU"


@dataclass(frozen=True)
class Answer:
    """One C-STORE response: status and Error Comment (empty on success)."""

    status: int
    comment: str


def send(host: str, port: int, called_aet: str, datasets: Sequence[Dataset], tls_args=None) -> list[Answer]:
    """C-STORE every dataset over one association, proposing each one's own SOP class and transfer syntax (with TLS
    when ``tls_args``: pynetdicom's (context, server name))."""
    ae = AE(ae_title=TEST_SCU_AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
    for sop_class, syntax in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}):
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(host, port, ae_title=called_aet, tls_args=tls_args)
    if not assoc.is_established:
        raise ConnectionError(f"{called_aet}@{host}:{port} refused the association")
    answers = []
    try:
        for ds in datasets:
            rsp = assoc.send_c_store(ds)
            answers.append(Answer(int(rsp.Status), str(rsp.get("ErrorComment", ""))))
    finally:
        assoc.release()
    return answers


def echo(host: str, port: int, called_aet: str) -> bool:
    """Whether a C-ECHO succeeds."""
    ae = AE(ae_title=TEST_SCU_AET)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 5
    assoc = ae.associate(host, port, ae_title=called_aet)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0
    finally:
        assoc.release()


def wait_for_echo(host: str, port: int, called_aet: str, timeout_s: float = 60.0, alive=lambda: True) -> None:
    """Poll C-ECHO until it succeeds; raise TimeoutError (or RuntimeError when ``alive()`` turns False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{called_aet} exited before answering C-ECHO")
        if echo(host, port, called_aet):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{called_aet}@{host}:{port} did not answer C-ECHO within {timeout_s} s")
