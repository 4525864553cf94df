"""C-STORE DICOM files to a PACS over one association (pynetdicom as the storage SCU)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pydicom
from pynetdicom import AE

from .config import PacsConfig
from .errors import PacsError

log = logging.getLogger(__name__)

#: C-STORE statuses that mean "stored": success and the storage warnings (coercion, elements discarded ...).
STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


def store_files(pacs: PacsConfig, calling_ae_title: str, paths: Sequence[Path]) -> None:
    """Send every file in ``paths`` to the PACS; raise ``PacsError`` unless each one is stored."""
    try:
        datasets = [pydicom.dcmread(path) for path in paths]
    except (OSError, pydicom.errors.InvalidDicomError) as e:
        raise PacsError(f"cannot read a spooled file to send to the PACS {pacs}: {e}") from e
    ae = AE(ae_title=calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = pacs.timeout_s
    for sop_class, syntax in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}):
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate(pacs.host, pacs.port, ae_title=pacs.ae_title)
    if not assoc.is_established:
        raise PacsError(
            f"PACS {pacs} did not accept an association from {calling_ae_title} (refused, aborted or unreachable); "
            "check the PACS address and AE title, and that it knows this node"
        )
    try:
        for ds, path in zip(datasets, paths):
            try:
                answer = assoc.send_c_store(ds)
            except ValueError as e:
                raise PacsError(f"PACS {pacs} accepted no presentation context for {path.name}: {e}") from e
            status = getattr(answer, "Status", None)
            if status not in STORED:
                comment = getattr(answer, "ErrorComment", "")
                raise PacsError(
                    f"PACS {pacs} did not store {path.name}: "
                    + (f"status 0x{status:04X} {comment}".strip() if status is not None else "no answer (timeout or abort)")
                )
            log.debug("PACS %s stored %s (status 0x%04X)", pacs, path.name, status)
    finally:
        if assoc.is_established:
            assoc.release()
