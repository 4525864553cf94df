"""``analyze`` for hospital systems: DICOM files in, DICOM SEG and SR and a FHIR Bundle out.

The command line's ``analyze`` goes through ``InteropRun``: plain images as before; a DICOM file is
read with the ``dicom`` extra, its pixels analysed, and (with ``dicom_out``) its SEG and SR written;
with ``fhir_out`` every result ends up in one FHIR transaction Bundle. The extras are imported only
when a DICOM file or an output asks for them.
"""
from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ClientConfigError
from .extras import EXTRAS, install_command
from .files import path_kind
from .images import is_dicom
from .private import private_folder, remove_output
from .result import LesionResult

if TYPE_CHECKING:
    from .client import DermAssistClient

log = logging.getLogger(__name__)

def require_extra(extra: str, why: str) -> None:
    """Raise ClientConfigError naming the pip command when an optional extra is not installed."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ClientConfigError(
                f"{why} needs the '{extra}' extra ({module} is missing): {install_command(extra)}"
            ) from e


def is_dicom_path(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file ('DICM' at byte 128); never imports pydicom, never opens what is no
    regular file (a named pipe would block: the image reader then refuses it by name)."""
    try:
        if not Path(path).is_file():
            return False
        with open(path, "rb") as f:
            return is_dicom(f.read(132))
    except OSError:
        return False


def check_output_folder(flag: str, target: Path, folder: Path) -> None:
    """Refuse (ClientConfigError) an output ``folder`` of ``flag`` that could not be written: the folder, or where
    it is missing the closest of its parents that exists, must be a folder this user can write into. Missing
    folders are not made here but when the first output is written."""
    existing = next((p for p in (folder, *folder.parents) if os.path.exists(p)), Path(folder.anchor or "."))
    if not existing.is_dir():
        raise ClientConfigError(f"{flag} {target}: {existing} is a file, not a folder; name a path in a folder "
                                "(missing folders are created)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ClientConfigError(f"{flag} {target}: this user cannot write into the folder {existing}; name another "
                                "folder or give this user write access to it")


#: The most bytes of an existing --fhir-out file read to see whether it is an earlier Bundle.
MAX_EARLIER_BUNDLE_BYTES = 256 << 20


def check_replaceable_bundle(target: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse (ClientConfigError) a ``--fhir-out`` that would replace or remove a file other than an earlier FHIR
    Bundle: one of the files to analyse, or any file that is not a JSON Bundle (a typo naming a picture or a report
    destroyed it without a word). A missing or empty file, or an earlier run's Bundle, passes."""
    if not target.exists():
        return
    kind = path_kind(target)  # a pipe or a device: opening it to look would block, or read the keyboard
    if kind is not None:
        raise ClientConfigError(f"--fhir-out {target} is {kind}, not a regular file; name a file, e.g. bundle.json")
    size = target.stat().st_size
    if size == 0:
        return
    for given in inputs:
        try:
            same = os.path.samefile(given, target)
        except OSError:  # a missing input: told when it is analysed
            same = False
        if same:
            raise ClientConfigError(f"--fhir-out {target} is one of the files to analyse ({given}); the Bundle would "
                                    "replace it: name a new file, e.g. bundle.json")
    import json

    try:
        earlier = json.loads(target.read_bytes()) if size <= MAX_EARLIER_BUNDLE_BYTES else None
    except (OSError, ValueError):
        earlier = None
    if not (isinstance(earlier, dict) and earlier.get("resourceType") == "Bundle"):
        raise ClientConfigError(f"--fhir-out {target} exists and is not a FHIR Bundle (an earlier run's output, which "
                                "a run replaces, or removes when it answers no image); it would be lost: name a new "
                                "file, or move that one away first")


class InteropRun:
    """Analyse paths one by one with ``client``, writing DICOM and FHIR outputs as asked; then ``finish``."""

    def __init__(self, client: DermAssistClient, dicom_out: str | Path | None = None, fhir_out: str | Path | None = None,
                 patient_system: str | None = None, patient_id: str | None = None,
                 local_issuer: str | None = None, uid_root: str | None = None, inputs: Sequence[str | Path] = ()) -> None:
        """``patient_id``: the patient of the plain pictures (JPEG, PNG, ...), which carry none; a DICOM file's
        own Patient ID is always used for it. ``patient_system``: the URI of the site's patient identifiers, given to
        a DICOM Patient ID whose Issuer of Patient ID is absent or ``local_issuer`` (``ImagingContext``).
        ``uid_root``: the root of the SEG's and SR's UIDs (``OutputIdentity``), checked here. ``inputs``: the files to
        be analysed, none of which ``fhir_out`` may be (``check_replaceable_bundle``)."""
        self._client = client
        self.dicom_out = Path(dicom_out) if dicom_out else None
        self.fhir_out = Path(fhir_out) if fhir_out else None
        self.patient_system = patient_system
        self.local_issuer = local_issuer or None
        self.patient_id = patient_id or None
        self.identity: Any = None  # the SEG's and SR's OutputIdentity (the dicom extra's), made when one is asked for
        if uid_root:
            require_extra("dicom", "--uid-root")
            from .dicom.errors import DicomError
            from .dicom.identity import OutputIdentity

            try:
                self.identity = OutputIdentity(uid_root=uid_root)
            except DicomError as e:
                raise ClientConfigError(f"--uid-root: {e}") from e
        if self.dicom_out:
            require_extra("dicom", "--dicom-out")
            check_output_folder("--dicom-out", self.dicom_out, self.dicom_out)
        if self.fhir_out:
            require_extra("fhir", "--fhir-out")
            if self.fhir_out.is_dir():
                raise ClientConfigError(f"--fhir-out {self.fhir_out} is a folder; name the Bundle's file, e.g. "
                                        f"{self.fhir_out / 'bundle.json'}")
            check_output_folder("--fhir-out", self.fhir_out, self.fhir_out.parent)
            check_replaceable_bundle(self.fhir_out, inputs)
            from .fhir import patient_system_problem

            problem = patient_system_problem(patient_system) if patient_system else None
            if problem is not None:
                raise ClientConfigError(f"--patient-system {problem}")
        self._fhir_items: list[tuple[LesionResult, Any]] = []
        #: set by ``finish`` when no Bundle was written and an earlier file at ``fhir_out`` was removed
        self.removed_stale: Path | None = None

    def analyze(self, path: str) -> dict[str, Any]:
        """Analyse one file; the result's summary dict, plus ``dicom_outputs`` when files were written."""
        if is_dicom_path(path):
            return self._analyze_dicom(path)
        if self.dicom_out:
            log.warning("%s is not DICOM: no SEG or SR is written for it", path)
        result = self._client.analyze(path)
        if self.fhir_out:
            from .fhir import ImagingContext

            self._collect(result, ImagingContext.from_image_file(path, patient_id=self.patient_id,
                                                                 patient_system=self.patient_system), path)
        return result.to_dict()

    def _analyze_dicom(self, path: str) -> dict[str, Any]:
        require_extra("dicom", f"{path} is DICOM: reading it")
        from .dicom.analysis import analyze_dicom
        from .dicom.source import read_dicom

        analysis = analyze_dicom(self._client, read_dicom(path), self.identity)
        summary = analysis.result.to_dict()
        if self.dicom_out:
            summary["dicom_outputs"] = [str(p) for p in analysis.write(self.dicom_out)]
        if self.fhir_out:
            from .fhir import ImagingContext

            self._collect(analysis.result, ImagingContext.from_dataset(
                analysis.image.dataset, patient_system=self.patient_system, local_issuer=self.local_issuer,
                report_uid=str(analysis.report.SOPInstanceUID) if self.dicom_out else None,
                image_sha256=analysis.sent_sha256,
                lesion_area_mm2=analysis.lesion_area_mm2), path)
        return summary

    def _collect(self, result: LesionResult, context: Any, path: str) -> None:
        if context.patient_id is None:
            log.warning("%s: its FHIR report has no subject (no patient identifier: %s)", path,
                        "a plain picture carries none; pass --patient-id" if context.image_uid is None
                        else "the DICOM Patient ID is empty")
        elif context.system_withheld:
            log.warning("%s: its Patient ID was assigned by %r, not by this site (--local-issuer %s): its FHIR subject "
                        "goes without --patient-system %s, with that issuer as its assigner; if %r's IDs are the "
                        "site's, pass --local-issuer %r", path, context.patient_issuer, context.local_issuer or "not set",
                        context.patient_system, context.patient_issuer, context.patient_issuer)
        self._fhir_items.append((result, context))

    @property
    def reported(self) -> int:
        """How many results the FHIR Bundle holds (or will hold at ``finish``)."""
        return len(self._fhir_items)

    def finish(self) -> Path | None:
        """Write the FHIR Bundle of every result analysed (when asked and there is one), creating its missing
        folders (owner-only, as ``--dicom-out``'s); its path.

        When nothing was analysed, no Bundle is written and an earlier file at ``fhir_out`` (another run's, maybe
        another patient's) is removed, so a job that reads the path cannot post it as this run's (``removed_stale``).
        The DICOM outputs need no such care: each is a new file named by a fresh UID, never an earlier run's path.
        """
        if not self.fhir_out:
            return None
        if not self._fhir_items:
            try:
                self.removed_stale = self.fhir_out if remove_output(self.fhir_out) else None
            except OSError as e:
                raise ClientConfigError(
                    f"--fhir-out {self.fhir_out}: no image was answered, so no Bundle was written, and the earlier "
                    f"file there could not be removed ({e.strerror or e}); delete it before any job reads it"
                ) from e
            if self.removed_stale:
                log.info("no FHIR Bundle written; removed the earlier file %s", self.removed_stale)
            return None
        from .fhir import FhirError, build_bundle, write_bundle

        bundle = build_bundle(self._fhir_items)
        try:
            private_folder(self.fhir_out.parent)  # as the DICOM outputs' folder: made (owner-only) when written
        except OSError as e:
            raise FhirError(f"cannot create the folder {self.fhir_out.parent} of --fhir-out {self.fhir_out}: "
                            f"{e.strerror or e}; check the path") from e
        return write_bundle(bundle, self.fhir_out)
