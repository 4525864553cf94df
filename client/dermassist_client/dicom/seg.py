"""The lesion mask of one result as a binary DICOM Segmentation on the source photograph's pixel grid."""
from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from ..result import LesionResult
from ..software import software_versions
from .errors import DicomOutputError
from .identity import OutputIdentity
from .source import DicomImage

SEGMENT_NUMBER = 1
SEGMENT_LABEL = "Lesion"


def lesion_mask(image: DicomImage, result: LesionResult) -> np.ndarray:
    """The served MASK resampled (nearest neighbour) to the source geometry: Rows x Columns, bool."""
    if result.original_size != image.size:
        raise DicomOutputError(
            f"result for {image.name} was computed on an image of size {result.original_size}, but the DICOM "
            f"image is {image.size} (width, height); analyse the DICOM image's own pixels"
        )
    return result.mask_at_original_size() > 0


def build_segmentation(image: DicomImage, result: LesionResult, identity: OutputIdentity,
                       mask: np.ndarray | None = None) -> hd.seg.Segmentation:
    """A binary SEG with one segment (the lesion) referencing the source instance (``mask``: ``lesion_mask``'s
    answer when the caller has it already)."""
    mask = lesion_mask(image, result) if mask is None else mask
    if not mask.any():
        raise DicomOutputError(
            f"no lesion was found in {image.name}: there is no mask to store; write the SR alone"
        )
    algorithm = hd.AlgorithmIdentificationSequence(
        name=result.model_name, version=result.model_version, family=codes.DCM.ArtificialIntelligence,
    )
    segment = hd.seg.SegmentDescription(
        segment_number=SEGMENT_NUMBER,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[image.anatomic_region or codes.SCT.Skin],  # where on the body, when the instance says
    )
    try:
        segmentation = hd.seg.Segmentation(
            source_images=[image.output_source],
            pixel_array=mask.astype(np.uint8)[np.newaxis],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=identity.new_uid(),
            series_number=identity.segmentation_series_number,
            sop_instance_uid=identity.new_uid(),
            instance_number=1,
            manufacturer=identity.manufacturer,
            manufacturer_model_name=result.model_name,
            software_versions=list(software_versions(result)),  # type: ignore[arg-type]  # stub says tuple[str]; any sequence works
            device_serial_number=identity.device_serial_number,
            institution_name=identity.institution_name,
            series_description=f"DermAssist lesion segmentation ({result.model_name} {result.model_version})",
            content_label="LESION",
            content_description="Automatic skin lesion segmentation",
        )
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise DicomOutputError.header_refused("segmentation", image.name, e) from e
    # General Image module, Type 2C for images without a patient coordinate system (photographs): the
    # source's value, or empty.
    segmentation.PatientOrientation = image.dataset.get("PatientOrientation", "")
    organisation = identity.new_uid()  # highdicom makes this one under its own root: the site's, as every other
    for element in segmentation.iterall():
        if element.keyword == "DimensionOrganizationUID":
            element.value = organisation
    return segmentation
