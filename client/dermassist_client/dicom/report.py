"""One result as a DICOM Comprehensive SR: a TID 1500 measurement report of the lesion.

One measurement group (finding type: Lesion, site: Skin) holds the findings: the most likely class as
"Differential Diagnosis/Impression" (SNOMED CT where ``terminology`` has a code, else DermAssist's code; left out
when the image is not assessable, so no query counts it as a diagnosis),
each class's calibrated probability, REFER and its score, ASSESSABLE,
the out-of-distribution score and the note (each only when the server sent it), and the lesion area
(as a share of the image, and in mm2 when the source image carries Pixel Spacing). A picture that is not
assessable gets no class probabilities and no refer score (``verdict.scores_withheld``, as the command line, the
demo page and the FHIR Bundle): its REFER, ASSESSABLE, out-of-distribution score, note and area stay. With a
SEG the group is a planar ROI group referencing the lesion segment; without one (a lesion too small to keep a
pixel on the source grid) an image-level group.

When no lesion was found there is no measurement group (no finding, tracking identifier or area: nothing
describes a lesion that is not there): the image is in the report's Image Library, and its Qualitative
Evaluations hold REFER and ASSESSABLE (when the server sent them) and the note (the server's, or that no lesion
was found).
"""
from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from .. import terminology as term
from ..classes import CLASSES
from ..result import LesionResult, reported
from ..verdict import scores_withheld
from .errors import DicomOutputError
from .identity import OutputIdentity
from .seg import SEGMENT_NUMBER
from .source import DicomImage

TRACKING_LABEL = "Lesion 1"
#: TID 1500 row 12: the report's qualitative evaluations that belong to no measurement group
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")
IMAGE_LIBRARY_SOURCE = hd.sr.CodedConcept(value="260753009", scheme_designator="SCT", meaning="Source")
LANGUAGE = hd.sr.CodedConcept(value="en-US", scheme_designator="RFC5646", meaning="English (United States)")
#: the note of an image without a lesion when the server sent none (it predates the triage step)
NO_LESION_NOTE = "No lesion found, so the whole image was classified and the answer is not a diagnosis."


def local(concept: term.Concept) -> Code:
    """A DermAssist concept as a DICOM code of the private scheme."""
    return Code(concept.code, term.LOCAL_DICOM_SCHEME, concept.meaning)


def yes_no(value: bool) -> Code:
    """SNOMED CT Yes / No."""
    return codes.SCT.Yes if value else codes.SCT.No


def finding_code(result: LesionResult) -> Code:
    """The most likely class: its SNOMED CT concept where there is one, else DermAssist's class code."""
    snomed = term.snomed_for(result.top_class)
    return Code(snomed.code, "SCT", snomed.meaning) if snomed else local(term.class_concept(result.top_class))


def measurements(result: LesionResult, area_mm2: float | None) -> list[hd.sr.Measurement]:
    """Class probabilities, triage scores (when sent) and the lesion area; no class probabilities and no refer
    score when the picture is not assessable (``scores_withheld``)."""
    withheld = scores_withheld(result.assessable)
    items = [] if withheld else [
        hd.sr.Measurement(name=local(term.probability_concept(c)), value=reported(result.probabilities[c.code]),
                          unit=codes.UCUM.NoUnits) for c in CLASSES]
    if result.refer_score is not None and not withheld:
        items.append(hd.sr.Measurement(name=local(term.REFER_SCORE), value=reported(result.refer_score),
                                       unit=codes.UCUM.NoUnits))
    if result.ood_score is not None:
        items.append(hd.sr.Measurement(name=local(term.OOD_SCORE), value=reported(result.ood_score),
                                       unit=codes.UCUM.NoUnits))
    items.append(hd.sr.Measurement(name=local(term.LESION_FRACTION), value=reported(100.0 * result.lesion_fraction),
                                   unit=codes.UCUM.Percent))
    if area_mm2 is not None:
        items.append(hd.sr.Measurement(name=codes.SCT.Area, value=reported(area_mm2), unit=codes.UCUM.SquareMillimeter))
    return items


def lesion_area_mm2(image: DicomImage, mask: np.ndarray | None) -> float | None:
    """Pixels of the lesion mask on the source grid (``lesion_mask``; None when no lesion was found) times the
    pixel area, or None when there is no mask or the image has no Pixel Spacing."""
    spacing = image.pixel_spacing_mm
    if spacing is None or mask is None:
        return None
    return float(mask.sum()) * spacing[0] * spacing[1]


def evaluations(result: LesionResult) -> list[hd.sr.QualitativeEvaluation]:
    """The finding (only when the answer is a diagnosis: assessable, lesion found), then REFER and ASSESSABLE
    when the server sent them."""
    items = []
    if result.diagnosis_given:
        items.append(hd.sr.QualitativeEvaluation(name=codes.DCM.DifferentialDiagnosisImpression,
                                                 value=finding_code(result)))
    if result.refer is not None:
        items.append(hd.sr.QualitativeEvaluation(name=local(term.REFER), value=yes_no(result.refer)))
    if result.assessable is not None:
        items.append(hd.sr.QualitativeEvaluation(name=local(term.ASSESSABLE), value=yes_no(result.assessable)))
    return items


def observation_context(result: LesionResult, identity: OutputIdentity) -> hd.sr.ObservationContext:
    """The observer is the device: DermAssist with the served model, identified by a UID stable per node."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=identity.new_uid([identity.manufacturer, identity.device_serial_number, result.model_name]),
        name=f"{identity.manufacturer} {result.model_name}",
        manufacturer_name=identity.manufacturer,
        model_name=result.model_name,
        serial_number=identity.device_serial_number,
    )
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))


def measurement_group(
    image: DicomImage, result: LesionResult, segmentation: hd.seg.Segmentation | None, area_mm2: float | None = None,
    identity: OutputIdentity | None = None,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1410 (planar ROI, referencing the SEG) or TID 1501 (whole image: the lesion has no pixel on the source
    grid, so there is no SEG) with the note; only for a result in which a lesion was found."""
    common = dict(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=(identity or OutputIdentity()).new_uid(),
                                                     identifier=TRACKING_LABEL),
        finding_type=codes.SCT.Lesion,
        algorithm_id=hd.sr.AlgorithmIdentification(name=result.model_name, version=result.model_version),
        finding_sites=[hd.sr.FindingSite(anatomic_location=image.anatomic_region or codes.SCT.Skin,
                                         laterality=image.laterality)],
        measurements=measurements(result, area_mm2),
        qualitative_evaluations=evaluations(result),
    )
    group: hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations
    if segmentation is not None:
        segment = hd.sr.ReferencedSegmentationFrame(
            sop_class_uid=segmentation.SOPClassUID, sop_instance_uid=segmentation.SOPInstanceUID,
            frame_number=1, segment_number=SEGMENT_NUMBER,
            source_image=hd.sr.SourceImageForSegmentation.from_source_image(image.output_source))
        _refer_to_segment_only(segment)
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)
    else:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(image.output_source)], **common)
    if result.note:
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=local(term.NOTE), value=result.note, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def _refer_to_segment_only(segment: hd.sr.ReferencedSegmentationFrame) -> None:
    """Keep the Referenced Segment Number and drop the Referenced Frame Number of the SEG reference.

    PS3.3 (Image SOP Instance Reference Macro) allows only one of the two; the SEG has a single frame,
    so the segment number alone identifies the lesion.
    """
    for item in segment:
        for ref in item.get("ReferencedSOPSequence", []):
            if "ReferencedSegmentNumber" in ref and "ReferencedFrameNumber" in ref:
                del ref.ReferencedFrameNumber


def no_lesion_evaluations(result: LesionResult) -> hd.sr.ContainerContentItem:
    """TID 1500's Qualitative Evaluations of an image in which no lesion was found: REFER and ASSESSABLE (when the
    server sent them) and the note, the server's or ``NO_LESION_NOTE``."""
    container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS,
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence()
    for evaluation in evaluations(result):
        container.ContentSequence.extend(evaluation)
    container.ContentSequence.append(hd.sr.TextContentItem(
        name=local(term.NOTE), value=result.note or NO_LESION_NOTE, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return container


def image_library(image: DicomImage) -> hd.sr.ContainerContentItem:
    """TID 1600 with the one analysed image (no descriptors: highdicom's ``ImageLibrary`` refuses storage classes
    it does not list, Dermoscopic Photography among them)."""
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    source = image.output_source
    entry = hd.sr.ImageContentItem(name=IMAGE_LIBRARY_SOURCE, referenced_sop_class_uid=source.SOPClassUID,
                                   referenced_sop_instance_uid=source.SOPInstanceUID, relationship_type=contains)
    group = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibraryGroup, relationship_type=contains)
    group.ContentSequence = hd.sr.ContentSequence([entry])
    library = hd.sr.ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type=contains)
    library.ContentSequence = hd.sr.ContentSequence([group])
    return library


def no_lesion_content(image: DicomImage, result: LesionResult, identity: OutputIdentity) -> hd.sr.ContainerContentItem:
    """The TID 1500 root of an image in which no lesion was found: the device, the procedure, the image (Image
    Library) and ``no_lesion_evaluations``; no measurement group, as there is no lesion to describe."""
    root = hd.sr.ContainerContentItem(name=codes.DCM.ImagingMeasurementReport, template_id="1500")
    root.ContentSequence = hd.sr.ContentSequence()
    root.ContentSequence.extend(hd.sr.LanguageOfContentItemAndDescendants(LANGUAGE))
    root.ContentSequence.extend(observation_context(result, identity))
    root.ContentSequence.append(hd.sr.CodeContentItem(
        name=codes.DCM.ProcedureReported, value=codes.SCT.DermoscopicPhotography,
        relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD))
    root.ContentSequence.append(image_library(image))
    root.ContentSequence.append(no_lesion_evaluations(result))
    return root


def report_content(image: DicomImage, result: LesionResult, segmentation: hd.seg.Segmentation | None,
                   identity: OutputIdentity, area_mm2: float | None = None) -> Dataset:
    """The SR's root content item: a measurement report of the lesion, or ``no_lesion_content`` without one."""
    if not result.lesion_found:
        return no_lesion_content(image, result, identity)
    return hd.sr.MeasurementReport(
        observation_context=observation_context(result, identity),
        procedure_reported=codes.SCT.DermoscopicPhotography,
        imaging_measurements=[measurement_group(image, result, segmentation, area_mm2, identity)],
        title=codes.DCM.ImagingMeasurementReport,
    )[0]


def build_report(image: DicomImage, result: LesionResult, segmentation: hd.seg.Segmentation | None,
                 identity: OutputIdentity, area_mm2: float | None = None) -> hd.sr.ComprehensiveSR:
    """The Comprehensive SR of one result, with the source image (and the SEG, if any) as evidence and the lesion
    area (``lesion_area_mm2``) when known."""
    try:
        return hd.sr.ComprehensiveSR(
            evidence=[image.output_source] + ([segmentation] if segmentation is not None else []),
            content=report_content(image, result, segmentation, identity, area_mm2),
            series_instance_uid=identity.new_uid(),
            series_number=identity.report_series_number,
            sop_instance_uid=identity.new_uid(),
            instance_number=1,
            manufacturer=identity.manufacturer,
            institution_name=identity.institution_name,
            is_complete=True,
            series_description=f"DermAssist findings ({result.model_name} {result.model_version})",
            coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
                designator=term.LOCAL_DICOM_SCHEME, name=term.LOCAL_DICOM_SCHEME_NAME,
                responsible_organization=identity.manufacturer)],
        )
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise DicomOutputError.header_refused("structured report", image.name, e) from e
