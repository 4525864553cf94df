"""Codes DermAssist writes into DICOM SR and FHIR: SNOMED CT where a code is certain, else DermAssist's own.

SNOMED CT codes are given only for the classes with an unambiguous disorder concept. AK and SCC also
appear in DICOM PS3.16 (CID 4405 and the neoplasm context groups); MEL and BCC are the SNOMED CT
International disorder concepts. NV, DF, BKL and VASC have no code here: BKL and VASC are groups of
diagnoses (no single concept fits), and NV and DF are left uncoded rather than guessed. Every class
also carries a DermAssist code (private DICOM scheme ``99DERMASSIST``, FHIR system ``LOCAL_FHIR_SYSTEM``)
so a receiving system can map all eight.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .classes import LesionClass

SNOMED_FHIR_SYSTEM = "http://snomed.info/sct"
UCUM_FHIR_SYSTEM = "http://unitsofmeasure.org"
DICOM_UID_FHIR_SYSTEM = "urn:dicom:uid"
LOCAL_DICOM_SCHEME = "99DERMASSIST"
LOCAL_DICOM_SCHEME_NAME = "DermAssist codes"
LOCAL_FHIR_SYSTEM = "urn:dermassist:codes"
#: Identifier system of a plain image's SHA-256 (hex): the digest the service's audit line records for it (unless the
#: service keys its digests, ``serve --audit-digest-key-file``).
IMAGE_SHA256_FHIR_SYSTEM = "urn:dermassist:image-sha256"
#: Identifier system of the request id the answer came with (``LesionResult.request_id``): its audit line's
#: ``request_id``, a link to the trail that holds nothing of the picture.
REQUEST_ID_FHIR_SYSTEM = "urn:dermassist:request-id"


@dataclass(frozen=True)
class Concept:
    """A code in DermAssist's own scheme: its value and meaning (DICOM Code Meaning, FHIR display)."""

    code: str
    meaning: str


@dataclass(frozen=True)
class SnomedConcept:
    """A SNOMED CT concept: identifier and preferred term."""

    code: str
    meaning: str


SNOMED_BY_CLASS: dict[str, SnomedConcept] = {
    "AK": SnomedConcept("201101007", "Actinic keratosis"),
    "BCC": SnomedConcept("254701007", "Basal cell carcinoma of skin"),
    "MEL": SnomedConcept("372244006", "Malignant melanoma"),
    "SCC": SnomedConcept("254651007", "Squamous cell carcinoma of skin"),
}

DIAGNOSIS = Concept("DIAGNOSIS", "Most likely skin lesion class")
CLASS_PROBABILITIES = Concept("CLASS_PROBABILITIES", "Skin lesion class probabilities")
REFER = Concept("REFER", "Referral to a dermatologist recommended")
REFER_SCORE = Concept("REFER_SCORE", "Probability of a malignant or pre-malignant lesion")
ASSESSABLE = Concept("ASSESSABLE", "Image assessable")
OOD_SCORE = Concept("OOD_SCORE", "Out-of-distribution score (1.0 is the limit applied)")
NOTE = Concept("NOTE", "Image problems")
LESION_FRACTION = Concept("LESION_FRACTION", "Lesion area as a share of the image")
LESION_AREA = Concept("LESION_AREA", "Lesion area")
REPORT = Concept("DERMOSCOPY_ANALYSIS", "DermAssist dermoscopy analysis")


def class_concept(lesion_class: LesionClass) -> Concept:
    """DermAssist's code of a lesion class (the class code, e.g. ``MEL``)."""
    return Concept(lesion_class.code, lesion_class.name)


def probability_concept(lesion_class: LesionClass) -> Concept:
    """DermAssist's code of one class's calibrated probability (``P_MEL`` ...)."""
    return Concept(f"P_{lesion_class.code}", f"Probability of {lesion_class.name}")


def snomed_for(lesion_class: LesionClass) -> SnomedConcept | None:
    """The SNOMED CT concept of a class, or None where this module gives none."""
    return SNOMED_BY_CLASS.get(lesion_class.code)



@dataclass(frozen=True)
class SiteCode:
    """A coded concept as a DICOM instance carries it: code value, coding scheme designator, code meaning."""

    code: str
    scheme: str
    meaning: str


#: Image Laterality (0020,0062) / Laterality (0020,0060) values as SNOMED CT qualifiers (U, unpaired, has none).
LATERALITY = {"L": SiteCode("7771000", "SCT", "Left"), "R": SiteCode("24028007", "SCT", "Right"),
              "B": SiteCode("51440002", "SCT", "Right and left")}


def anatomic_region(ds: Any) -> SiteCode | None:
    """Where on the body an image is, from a DICOM data set's Anatomic Region Sequence (0008,2218) (e.g. SCT
    123851003 "Back"); None when it does not say, or says it without a code value and scheme. ``ds``: any object
    with pydicom-style attributes."""
    regions = getattr(ds, "AnatomicRegionSequence", None)
    item = regions[0] if regions else None
    value, scheme = (getattr(item, "CodeValue", None), getattr(item, "CodingSchemeDesignator", None)) if item else (
        None, None)
    if not value or not scheme:
        return None
    return SiteCode(str(value), str(scheme), str(getattr(item, "CodeMeaning", None) or value))


def laterality(ds: Any) -> SiteCode | None:
    """Left, right or both from Image Laterality (0020,0062), else the series' Laterality (0020,0060); None for U,
    absent or any other value."""
    value = getattr(ds, "ImageLaterality", None) or getattr(ds, "Laterality", None)
    return LATERALITY.get(str(value).strip().upper()) if value else None
