"""C-STORE DICOM files to a PACS over one association (pynetdicom as the storage SCU).

Each file's SOP class is proposed twice: in the file's own transfer syntax, and in Explicit and Implicit VR Little
Endian (PS3.5 10.1: every storage SCP accepts Implicit VR Little Endian). When the PACS accepts the class only
uncompressed, the file is decompressed before it is sent, its SOP Instance UID kept (the SEG and SR reference the
source by it). Every file is tried; the answer says which were stored, which were not and why, and whether sending
them again can help.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association

from .config import PacsConfig
from .errors import PacsError
from .tls import pacs_refusal, recording_context

log = logging.getLogger(__name__)

#: C-STORE statuses that mean "stored": success and the storage warnings (coercion, elements discarded ...).
STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
#: The uncompressed transfer syntaxes proposed for every SOP class besides the file's own.
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)


class PacsUnavailableError(PacsError):
    """The PACS could not be reached or refused the association: nothing was sent, every file may be sent later."""


@dataclass(frozen=True)
class Refusal:
    """One file the PACS did not store: why, and whether the cause lasts (sending it again cannot help)."""

    path: Path
    reason: str
    lasting: bool


@dataclass(frozen=True)
class Delivery:
    """What one ``store_files`` call achieved: the files the PACS stored and the ones it did not."""

    stored: tuple[Path, ...] = ()
    refused: tuple[Refusal, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every file was stored."""
        return not self.refused

    @property
    def lasting(self) -> bool:
        """Whether some files were refused, each for a cause that sending again cannot fix."""
        return bool(self.refused) and all(r.lasting for r in self.refused)


def proposed_syntaxes(own: UID) -> list[list[UID]]:
    """Transfer syntaxes proposed for a file in ``own``: one context with its own (when compressed), one uncompressed."""
    return ([[own]] if own not in UNCOMPRESSED else []) + [list(UNCOMPRESSED)]


def store_files(pacs: PacsConfig, calling_ae_title: str, paths: Sequence[Path]) -> Delivery:
    """Send every file in ``paths`` to the PACS over one association; which were stored and why the others were not.

    Raises ``PacsUnavailableError`` when no association could be made (the PACS is down, or refuses this node).
    """
    datasets: list[tuple[Path, Dataset]] = []
    refused: list[Refusal] = []
    for path in paths:
        try:
            datasets.append((path, pydicom.dcmread(path)))
        except (OSError, pydicom.errors.InvalidDicomError, ValueError, KeyError) as e:
            refused.append(Refusal(path, f"cannot read the spooled file ({type(e).__name__}: {e}); it is not a "
                                         "readable DICOM file: check the disk and the file", lasting=True))
    if not datasets:
        return Delivery((), tuple(refused))
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = pacs.timeout_s
    for sop_class, syntax in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets}):
        for syntaxes in proposed_syntaxes(UID(syntax)):
            if not any(cx.abstract_syntax == sop_class and cx.transfer_syntax == syntaxes
                       for cx in ae.requested_contexts):
                ae.add_requested_context(sop_class, syntaxes)
    context = None if pacs.tls is None else recording_context(pacs.tls)
    server_name = pacs.host if pacs.tls is None or pacs.tls.server_name is None else pacs.tls.server_name
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title,
                         tls_args=None if context is None else (context, server_name))
    if not assoc.is_established:
        if assoc.rejected_contexts and not assoc.accepted_contexts:  # pynetdicom aborts when none is accepted
            for path, ds in datasets:
                refused.append(Refusal(path, _no_context(pacs, ds), lasting=True))
            return Delivery((), tuple(refused))
        failure = getattr(context, "failure", None)
        if failure is not None:
            raise PacsUnavailableError(f"PACS {pacs}: no association from {calling_ae_title}: "
                                       f"{pacs_refusal(failure, server_name)}")
        raise PacsUnavailableError(
            f"PACS {pacs} did not accept an association from {calling_ae_title} (refused, aborted or unreachable); "
            "check the PACS address and AE title, and that it knows this node"
            + ("; and that its port speaks DICOM TLS" if pacs.tls is not None else "")
        )
    stored: list[Path] = []
    try:
        for path, ds in datasets:
            refusal = _store_one(assoc, pacs, path, ds)
            if refusal is None:
                stored.append(path)
            else:
                refused.append(refusal)
    finally:
        if assoc.is_established:
            assoc.release()
    return Delivery(tuple(stored), tuple(refused))


def _store_one(assoc: Association, pacs: PacsConfig, path: Path, ds: Dataset) -> Refusal | None:
    """C-STORE one data set (decompressed first when the PACS takes its class only uncompressed); None once stored."""
    if not assoc.is_established:
        return Refusal(path, f"the association with PACS {pacs} ended before it was sent (aborted or timed out); "
                             "it is sent again at the next attempt", lasting=False)
    own = UID(ds.file_meta.TransferSyntaxUID)
    accepted = {UID(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts if cx.abstract_syntax == ds.SOPClassUID}
    if not accepted:
        return Refusal(path, _no_context(pacs, ds), lasting=True)
    if own.is_compressed and own not in accepted:
        try:
            ds.decompress(generate_instance_uid=False)  # the SEG and SR reference this SOP Instance UID
        except Exception as e:  # noqa: BLE001 - any decoder failure: the file cannot go uncompressed
            return Refusal(path, f"PACS {pacs} accepts {UID(ds.SOPClassUID).name} only uncompressed, and the "
                                 f"{own.name} pixel data cannot be decompressed ({type(e).__name__}: {e}); install "
                                 "the pydicom decoder for it or configure the PACS to accept that transfer syntax",
                           lasting=True)
        log.info("PACS %s accepts %s only uncompressed: sending %s decompressed from %s", pacs,
                 UID(ds.SOPClassUID).name, path.name, own.name)
    try:
        answer = assoc.send_c_store(ds)
    except (ValueError, AttributeError) as e:  # no usable context, or a data set pynetdicom cannot encode
        return Refusal(path, f"PACS {pacs} could not be sent {path.name}: {e}", lasting=True)
    status = getattr(answer, "Status", None)
    if status is None:
        return Refusal(path, f"PACS {pacs} gave no answer for {path.name} (timeout or abort); it is sent again at the "
                             "next attempt. A PACS that does not know this node drops its C-STORE like this: check "
                             f"that it lists the AE title {str(assoc.requestor.ae_title).strip()} with this host (Orthanc: "
                             "DicomModalities, or DicomAlwaysAllowStore)", lasting=False)
    if status in STORED:
        log.debug("PACS %s stored %s (status 0x%04X)", pacs, path.name, status)
        return None
    comment = str(getattr(answer, "ErrorComment", "") or "")
    out_of_resources = 0xA700 <= status <= 0xA7FF  # PS3.4 C-STORE "Refused: Out of Resources": may pass later
    return Refusal(path, f"PACS {pacs} did not store {path.name}: status 0x{status:04X} {comment}".rstrip()
                   + ("; it is sent again at the next attempt" if out_of_resources
                      else "; check the PACS log for why it refuses this object"), lasting=not out_of_resources)


def _no_context(pacs: PacsConfig, ds: Dataset) -> str:
    """The reason for a file whose SOP class the PACS accepted in no proposed transfer syntax."""
    syntaxes = ", ".join(UID(s).name for group in proposed_syntaxes(UID(ds.file_meta.TransferSyntaxUID)) for s in group)
    return (f"PACS {pacs} accepted no presentation context for {UID(ds.SOPClassUID).name} (proposed {syntaxes}); "
            "configure the PACS to accept this SOP class (and its transfer syntax)")
