"""One or more results as a FHIR R4 transaction Bundle: a DiagnosticReport with Observations and a Device.

Install with ``pip install './client[fhir]'`` from the checkout. The resources are built and validated with the
``fhir.resources`` R4B models; every element used here is the same in R4 (4.0.1), so an R4 server takes
the Bundle as it is (POST it to the server's base URL). Per analysed image:

- ``Observation`` most likely class (SNOMED CT where ``terminology`` has a code, plus DermAssist's code),
  with its probability as a component; ``dataAbsentReason`` instead when no diagnosis is given;
- ``Observation`` the eight calibrated class probabilities, one component each;
- ``Observation`` lesion area (share of the image, and mm2 when known);
- ``Observation`` REFER (with REFER_SCORE) and ``Observation`` ASSESSABLE (with OOD_SCORE and the note),
  each only when the server sent it;
- ``DiagnosticReport`` holding them, linked to the imaging study (Study Instance UID) and to the DICOM SR
  (its SOP Instance UID) when there is one.
One ``Device`` per model version is referenced by every Observation.

A picture that is not assessable gets no scores to read (``verdict.scores_withheld``, as the command line and the
demo page): no class-probability Observation, no REFER_SCORE component and no score in the conclusion; its REFER
and ASSESSABLE Observations (with OOD_SCORE and the note) stay.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from . import terminology as term
from .classes import CLASSES
from .errors import DermAssistClientError
from .images import PIL_READ_ERRORS, without_metadata
from .private import write_private
from .result import LesionResult, reported
from .software import client_version as installed_client_version
from .verdict import RESIDUAL_RISK, scores_withheld

if TYPE_CHECKING:  # fhir.resources is imported when a bundle is built
    from fhir.resources.R4B.bundle import Bundle

logger = logging.getLogger(__name__)

OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
STATUS = "preliminary"  # machine output that no clinician has reviewed yet


class FhirError(DermAssistClientError):
    """A FHIR Bundle could not be built, validated or written."""


#: An absolute URI as FHIR's ``uri`` type takes it: a scheme, a colon, and no whitespace (``urn:oid:1.2.3``,
#: ``https://hospital.example/mrn``).
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def patient_system_problem(system: str) -> str | None:
    """Why ``system`` cannot be the URI of a patient identifier system (FHIR ``Identifier.system``), or None."""
    if _URI.fullmatch(system):
        return None
    return (f"{system!r} is not an absolute URI (a scheme, a colon and no spaces); an EHR would refuse or misfile the "
            "identifier: give the site's patient identifier system, e.g. urn:oid:1.2.3.4 or https://hospital.example/mrn")


@dataclass(frozen=True)
class ImagingContext:
    """Who and what a result is about, as the EHR knows it: patient, study, and the DICOM outputs' UIDs.

    ``patient_system`` is the URI of the site's patient identifier system (e.g. its MRN namespace): it is given to a
    patient identifier with no Issuer of Patient ID, or with the site's own (``local_issuer``); an identifier another
    issuer assigned (a referred-in study) is sent without it, with that issuer as its assigner, so it is never filed
    as the site's MRN of another patient (``system_withheld``).
    """

    patient_id: str | None = None
    patient_issuer: str | None = None
    patient_system: str | None = None
    local_issuer: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    accession_number: str | None = None
    image_uid: str | None = None
    image_sha256: str | None = None
    report_uid: str | None = None
    effective: str | None = None
    lesion_area_mm2: float | None = None
    body_site: term.SiteCode | None = None  # where on the body (DICOM Anatomic Region Sequence)
    laterality: term.SiteCode | None = None  # left, right or both (DICOM Image Laterality)

    def __post_init__(self) -> None:
        problem = patient_system_problem(self.patient_system) if self.patient_system else None
        if problem is not None:
            raise FhirError(f"patient_system {problem}")

    @property
    def system_withheld(self) -> bool:
        """Whether ``patient_system`` is kept off the identifier: another issuer than the site's assigned it."""
        return bool(self.patient_system and self.patient_issuer and self.patient_issuer != self.local_issuer)

    @classmethod
    def from_image_file(cls, path: str | Path, **extra: Any) -> ImagingContext:
        """A plain picture's context: the SHA-256 of the bytes the client sends of it (the service's audit line records
        the same digest; ``images.without_metadata``) and, from its EXIF, when it was taken (with its UTC offset when
        the camera wrote one, else the date alone)."""
        data = Path(path).read_bytes()
        return cls(image_sha256=hashlib.sha256(without_metadata(data)).hexdigest(), effective=exif_taken(data), **extra)

    @classmethod
    def from_dataset(cls, ds: Any, **extra: Any) -> ImagingContext:
        """The identifiers of a DICOM dataset (any object with pydicom-style attributes)."""
        def text(keyword: str) -> str | None:
            value = getattr(ds, keyword, None)
            return str(value) if value not in (None, "") else None

        found = text("ContentDate") or text("StudyDate")
        effective = (_calendar_date(found[:4], found[4:6], found[6:8])
                     if found and len(found) == 8 and found.isdigit() else None)
        return cls(patient_id=text("PatientID"), patient_issuer=text("IssuerOfPatientID"),
                   patient_name=text("PatientName"), study_uid=text("StudyInstanceUID"),
                   accession_number=text("AccessionNumber"), image_uid=text("SOPInstanceUID"),
                   effective=effective, body_site=term.anatomic_region(ds), laterality=term.laterality(ds), **extra)


_EXIF_IFD, _DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x8769, 0x9003, 0x9011
_EXIF_DATE = re.compile(r"^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_EXIF_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def exif_taken(data: bytes) -> str | None:
    """When a picture was taken, as a FHIR dateTime from its EXIF DateTimeOriginal: with the time when the camera
    wrote its UTC offset (FHIR requires one with a time), else the date alone; None without a usable date."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif().get_ifd(_EXIF_IFD)
    except PIL_READ_ERRORS as e:  # a picture without readable EXIF simply has no acquisition time
        logger.debug("acquisition time of a %d-byte picture left out of the FHIR resources: its EXIF cannot be read "
                     "(%s: %s)", len(data), type(e).__name__, e)
        return None
    found = _EXIF_DATE.match(str(exif.get(_DATE_TIME_ORIGINAL, "")).strip("\x00 "))
    if not found:
        return None
    year, month, day, hour, minute, second = found.groups()
    day = _calendar_date(year, month, day)
    offset = str(exif.get(_OFFSET_TIME_ORIGINAL, "")).strip("\x00 ")
    if day is None or not _EXIF_OFFSET.match(offset) or not (int(hour) < 24 and int(minute) < 60 and int(second) < 60):
        return day
    return f"{day}T{hour}:{minute}:{second}{offset}"


def _calendar_date(year: str, month: str, day: str) -> str | None:
    """``YYYY-MM-DD`` when the digits name a day on the calendar (a camera or modality whose clock was never set
    writes 0000:00:00 or 00000000; some write 30 February), else None."""
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _uid_identifier(uid: str) -> dict[str, str]:
    return {"system": term.DICOM_UID_FHIR_SYSTEM, "value": f"urn:oid:{uid}"}


def _local(concept: term.Concept) -> dict[str, Any]:
    return {"coding": [{"system": term.LOCAL_FHIR_SYSTEM, "code": concept.code, "display": concept.meaning}],
            "text": concept.meaning}


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": reported(value), "unit": unit, "system": term.UCUM_FHIR_SYSTEM, "code": code}


def _probability(value: float) -> dict[str, Any]:
    return _quantity(value, "probability", "1")


def class_codeable_concept(result: LesionResult) -> dict[str, Any]:
    """The most likely class: SNOMED CT coding first where there is one, then DermAssist's class code."""
    codings = []
    snomed = term.snomed_for(result.top_class)
    if snomed:
        codings.append({"system": term.SNOMED_FHIR_SYSTEM, "code": snomed.code, "display": snomed.meaning})
    local = term.class_concept(result.top_class)
    codings.append({"system": term.LOCAL_FHIR_SYSTEM, "code": local.code, "display": local.meaning})
    return {"coding": codings, "text": result.top_class.name}


def _subject(context: ImagingContext) -> dict[str, Any] | None:
    if not context.patient_id:
        return None
    identifier: dict[str, Any] = {"value": context.patient_id}
    if context.patient_system and not context.system_withheld:
        identifier["system"] = context.patient_system
    if context.patient_issuer:
        identifier["assigner"] = {"display": context.patient_issuer}
    subject: dict[str, Any] = {"type": "Patient", "identifier": identifier}
    if context.patient_name:  # a DICOM name's first group, the alphabetic one (the others: ideographic, phonetic)
        alphabetic = next((g for g in context.patient_name.split("=") if g.strip("^ ")), "")
        family, _, given = alphabetic.partition("^")
        subject["display"] = ", ".join(p for p in (family.strip(), given.replace("^", " ").strip()) if p)
    return subject


def _body_site(context: ImagingContext) -> dict[str, Any] | None:
    """``Observation.bodySite``: the region, coded when its scheme is SNOMED CT, and in words with its laterality (R4
    has no laterality element: a second coding would claim another code for the same concept)."""
    site = context.body_site
    if site is None:
        return None
    words = site.meaning if context.laterality is None else f"{site.meaning} ({context.laterality.meaning.lower()})"
    concept: dict[str, Any] = {"text": words}
    if site.scheme == "SCT":  # SRT (SNOMED RT, e.g. T-D2100) codes are not SNOMED CT identifiers
        concept["coding"] = [{"system": term.SNOMED_FHIR_SYSTEM, "code": site.code, "display": site.meaning}]
    return concept


def _study(context: ImagingContext) -> dict[str, Any] | None:
    if not context.study_uid:
        return None
    return {"type": "ImagingStudy", "identifier": _uid_identifier(context.study_uid)}


def conclusion(result: LesionResult) -> str:
    """One plain sentence per finding, for DiagnosticReport.conclusion (no most likely class when the answer is no
    diagnosis: the image was not assessable or no lesion was found; no score when it was not assessable)."""
    parts = []
    if result.diagnosis_given:
        top = result.probabilities[result.top_class.code]
        parts.append(f"Most likely {result.top_class.name} ({result.top_class.code}, probability {top:.2f}).")
    elif result.assessable is False:
        parts.append("The image is not assessable, so no diagnosis is given.")
    else:
        parts.append("No lesion was found, so no diagnosis is given.")
    if result.refer is not None:
        withheld = scores_withheld(result.assessable)
        score = f" (score {result.refer_score:.2f})" if result.refer_score is not None and not withheld else ""
        if result.refer and withheld:
            parts.append("Referral to a dermatologist recommended because the image is not assessable.")
        elif withheld:
            parts.append("No referral indicated by the model, but the image is not assessable: retake it before "
                         "relying on any answer.")
        elif result.refer:
            parts.append(f"Referral to a dermatologist recommended{score}.")
        else:
            parts.append(f"No referral indicated by the model{score}. {RESIDUAL_RISK}")
    if result.note:
        note = result.note.strip()
        parts.append(note if note.endswith((".", "!", "?")) else note + ".")
    parts.append("Machine output, not reviewed by a clinician.")
    return " ".join(parts)


class _Entries:
    """Bundle entries under construction, each with a urn:uuid full URL."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, resource: dict[str, Any]) -> str:
        full_url = f"urn:uuid:{uuid.uuid4()}"
        self.entries.append({"fullUrl": full_url, "resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"]}})
        return full_url


def _device(result: LesionResult, manufacturer: str, client_version: str) -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "status": "active",
        "manufacturer": manufacturer,
        "modelNumber": result.model_name,
        "deviceName": [{"name": f"{manufacturer} {result.model_name}", "type": "model-name"}],
        "version": [{"type": {"text": "model version"}, "value": str(result.model_version)},
                    *({"type": {"text": text}, "value": value} for text, value in
                      (("model release", result.model_release), ("model build", result.model_build)) if value),
                    {"type": {"text": "dermassist-client version"}, "value": client_version}],
    }


def _observations(result: LesionResult, context: ImagingContext) -> list[tuple[term.Concept, dict[str, Any]]]:
    """(concept, observation body) for each finding the result holds; triage ones only when sent; no class
    probabilities and no REFER_SCORE when the picture is not assessable (``scores_withheld``)."""
    withheld = scores_withheld(result.assessable)
    top = result.top_class
    diagnosis: dict[str, Any] = {"valueCodeableConcept": class_codeable_concept(result), "component": [
        {"code": _local(term.probability_concept(top)), "valueQuantity": _probability(result.probabilities[top.code])}]}
    if not result.diagnosis_given:  # no coded class for a registry to count: the image was not assessable or empty
        diagnosis = {"dataAbsentReason": {"coding": [{"system": DATA_ABSENT_REASON_SYSTEM, "code": "unknown",
                                                      "display": "Unknown"}],
                                          "text": "no diagnosis: " + ("the image is not assessable"
                                                                      if result.assessable is False
                                                                      else "no lesion was found")}}
    items: list[tuple[term.Concept, dict[str, Any]]] = [(term.DIAGNOSIS, diagnosis)]
    if not withheld:
        items.append((term.CLASS_PROBABILITIES, {"component": [
            {"code": _local(term.probability_concept(c)), "valueQuantity": _probability(result.probabilities[c.code])}
            for c in CLASSES]}))
    area: dict[str, Any] = {"valueQuantity": _quantity(100.0 * result.lesion_fraction, "%", "%")}
    if context.lesion_area_mm2 is not None:
        area["component"] = [{"code": _local(term.LESION_AREA),
                              "valueQuantity": _quantity(context.lesion_area_mm2, "mm2", "mm2")}]
    items.append((term.LESION_FRACTION, area))
    if result.refer is not None:
        refer: dict[str, Any] = {"valueBoolean": bool(result.refer)}
        if result.refer_score is not None and not withheld:
            refer["component"] = [{"code": _local(term.REFER_SCORE), "valueQuantity": _probability(result.refer_score)}]
        items.append((term.REFER, refer))
    if result.assessable is not None:
        assessable: dict[str, Any] = {"valueBoolean": bool(result.assessable)}
        if result.ood_score is not None:
            assessable["component"] = [{"code": _local(term.OOD_SCORE),
                                        "valueQuantity": _quantity(result.ood_score, "score", "1")}]
        if result.note:
            assessable["note"] = [{"text": result.note}]
        items.append((term.ASSESSABLE, assessable))
    return items


def _report_entries(entries: _Entries, result: LesionResult, context: ImagingContext, device_url: str,
                    issued: str) -> None:
    subject, study, site = _subject(context), _study(context), _body_site(context)
    about: dict[str, Any] = {"subject": subject} if subject else {}  # who and when: every resource of the report
    if context.effective:
        about["effectiveDateTime"] = context.effective
    about["issued"] = issued
    common: dict[str, Any] = {"status": STATUS, "device": {"reference": device_url}, **about}
    observation_urls = []
    for concept, body in _observations(result, context):
        observation = {"resourceType": "Observation", **common, "code": _local(concept),
                       "category": [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": "imaging"}]}], **body}
        if study:
            observation["derivedFrom"] = [study]
        if site:
            observation["bodySite"] = site
        observation_urls.append(entries.add(observation))
    report: dict[str, Any] = {"resourceType": "DiagnosticReport", "status": STATUS, "code": _local(term.REPORT)}
    identifiers = [_uid_identifier(context.report_uid)] if context.report_uid else []
    if context.image_sha256:
        identifiers.append({"system": term.IMAGE_SHA256_FHIR_SYSTEM, "value": context.image_sha256})
    if result.request_id:
        identifiers.append({"system": term.REQUEST_ID_FHIR_SYSTEM, "value": result.request_id})
    if identifiers:
        report["identifier"] = identifiers
    report.update(about)
    if study:
        report["imagingStudy"] = [study]
    report["result"] = [{"reference": url} for url in observation_urls]
    report["conclusion"] = conclusion(result)
    if result.diagnosis_given:
        report["conclusionCode"] = [class_codeable_concept(result)]
    entries.add(report)


def build_bundle(items: Iterable[tuple[LesionResult, ImagingContext | None]], manufacturer: str = "DermAssist",
                 client_version: str | None = None, now: datetime | None = None) -> Bundle:
    """A validated FHIR transaction Bundle (``fhir.resources`` R4B model) of one report per result."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    client_version = client_version or installed_client_version()
    issued = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    entries, devices = _Entries(), {}
    for result, context in items:
        key = (result.model_name, result.model_version, result.model_release, result.model_build)
        if key not in devices:
            devices[key] = entries.add(_device(result, manufacturer, client_version))
        _report_entries(entries, result, context or ImagingContext(), devices[key], issued)
    if not entries.entries:
        raise FhirError("no results to put in the FHIR Bundle; analyse at least one image")
    try:
        return Bundle.model_validate({"resourceType": "Bundle", "type": "transaction", "entry": entries.entries})
    except ValidationError as e:
        raise FhirError(f"the FHIR Bundle does not validate against the R4B models: {e}") from e


def bundle_json(bundle: Any) -> str:
    """The Bundle as FHIR JSON (no empty elements)."""
    return bundle.model_dump_json(exclude_none=True, by_alias=True, indent=2)


def write_bundle(bundle: Any, path: str | Path) -> Path:
    """Write the Bundle as FHIR JSON to ``path`` (the parent folder must exist), readable by its owner only."""
    path = Path(path)
    try:
        write_private(path, (bundle_json(bundle) + "\n").encode("utf-8"))
    except OSError as e:
        raise FhirError(f"cannot write the FHIR Bundle to {path}: {e.strerror or e}; check the folder") from e
    return path


def resources_by_type(bundle_dict: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The Bundle's resources grouped by resourceType (a helper for readers and tests)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle_dict.get("entry", []):
        resource = entry["resource"]
        grouped.setdefault(resource["resourceType"], []).append(resource)
    return grouped
