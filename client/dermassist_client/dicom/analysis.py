"""Analyse one DICOM photograph with the served ensemble and build its SEG and SR."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from ..images import encode_image
from ..private import open_private, private_folder
from ..result import LesionResult
from .charset import declare_what_the_text_needs, undeclared_text
from .errors import DicomError
from .identity import OutputIdentity
from .report import build_report, lesion_area_mm2
from .seg import build_segmentation, lesion_mask
from .source import DicomImage

if TYPE_CHECKING:
    from ..client import DermAssistClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DicomAnalysis:
    """A DICOM image, what the ensemble said about it, and the DICOM objects that carry the answer."""

    image: DicomImage
    result: LesionResult
    segmentation: Dataset | None
    report: Dataset
    lesion_area_mm2: float | None = None  # on the source grid; None without Pixel Spacing or a lesion
    sent_sha256: str | None = None  # the digest of the bytes sent, which the service's audit line records

    def outputs(self) -> list[Dataset]:
        """The SEG (when a lesion was found) and the SR, in the order a PACS should receive them."""
        return ([self.segmentation] if self.segmentation is not None else []) + [self.report]

    def write(self, directory: str | Path) -> list[Path]:
        """Write the outputs as DICOM files ``SEG_<uid>.dcm`` / ``SR_<uid>.dcm`` into ``directory`` (owner-only files;
        the folder, when made here, owner-only too)."""
        folder = Path(directory)
        try:
            private_folder(folder)
            paths = []
            for ds in self.outputs():
                path = folder / f"{ds.Modality}_{ds.SOPInstanceUID}.dcm"
                with open_private(path) as f:  # they name the patient: readable by their owner only
                    ds.save_as(f, enforce_file_format=True)
                paths.append(path)
        except OSError as e:
            raise DicomError(f"cannot write DICOM outputs of {self.image.name} to {folder}: {e.strerror or e}") from e
        return paths


def build_analysis(image: DicomImage, result: LesionResult, identity: OutputIdentity | None = None) -> DicomAnalysis:
    """SEG (only when a lesion was found) and SR of ``result`` on ``image``."""
    identity = identity or OutputIdentity()
    mask = lesion_mask(image, result) if result.lesion_found else None  # resampled to the source grid once
    segmentation = build_segmentation(image, result, identity, mask) if mask is not None and mask.any() else None
    if segmentation is None:
        log.info("no lesion found in %s: writing the SR without a SEG", image.name)
    area = lesion_area_mm2(image, mask)
    report = build_report(image, result, segmentation, identity, area)
    undeclared = undeclared_text(image.dataset)
    if undeclared is not None:
        log.warning("%s declares no Specific Character Set (0008,0005) but holds text outside ASCII (in %s): read as "
                    "ISO 8859-1; its SEG and SR declare UTF-8. Fix the sending modality's character set", image.name,
                    undeclared)
    for output in ([segmentation] if segmentation is not None else []) + [report]:
        declare_what_the_text_needs(output, f"the {output.Modality} of {image.name}")
    return DicomAnalysis(image, result, segmentation, report, area)


def analyze_dicom(client: DermAssistClient, image: DicomImage, identity: OutputIdentity | None = None) -> DicomAnalysis:
    """Send the image (``DicomImage.for_service``) to the ensemble (``client`` is a DermAssistClient) and build its
    outputs; the digest of what was sent ties them to the service's audit line."""
    sent = encode_image(image.for_service()).data
    analysis = build_analysis(image, client.analyze(sent), identity)
    return dataclasses.replace(analysis, sent_sha256=hashlib.sha256(sent).hexdigest())
