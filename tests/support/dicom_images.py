"""DICOM test instances made from the real shared JPEGs, with made-up patient identifiers.

Dermoscopy (Dermoscopic Photography Image Storage, modality DMS), VL photographic and secondary-capture
photographs, in uncompressed or JPEG baseline transfer syntaxes; and the bad inputs a DICOM node meets:
a monochrome CT slice, an instance without pixel data, a truncated file, an unsupported transfer syntax.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DermoscopicPhotographyImageStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    VLPhotographicImageStorage,
    generate_uid,
)

HEVC_MAIN = UID("1.2.840.10008.1.2.4.107")  # no pydicom decoder exists for it


@dataclass(frozen=True)
class Patient:
    """Made-up patient and study identifiers for one test study."""

    patient_id: str = "DA-TEST-0001"
    patient_name: str = "Test^Dermoscopy"
    issuer: str = "DERMASSIST-TEST"
    accession: str = "ACC0001"
    study_uid: str = ""

    def with_study(self) -> Patient:
        """The same patient with a fresh Study Instance UID."""
        return Patient(self.patient_id, self.patient_name, self.issuer, self.accession, generate_uid())


def _base(sop_class: str, modality: str, patient: Patient, transfer_syntax: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID, ds.PatientName, ds.IssuerOfPatientID = patient.patient_id, patient.patient_name, patient.issuer
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID = patient.study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID, ds.AccessionNumber = "1", patient.accession
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20261203"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, 1
    ds.Manufacturer = "DermAssist test suite"
    return ds


def photograph(jpeg: bytes, patient: Patient, sop_class: str = DermoscopicPhotographyImageStorage,
               compressed: bool = True, pixel_spacing_mm: float | None = None) -> Dataset:
    """A colour photograph instance of the JPEG: its original JPEG baseline bytes, or uncompressed RGB."""
    with Image.open(io.BytesIO(jpeg)) as im:
        width, height = im.size
        rgb = np.asarray(im.convert("RGB"))
    modality = {DermoscopicPhotographyImageStorage: "DMS", VLPhotographicImageStorage: "XC"}.get(sop_class, "OT")
    ds = _base(sop_class, modality, patient, JPEGBaseline8Bit if compressed else ExplicitVRLittleEndian)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = height, width, 3
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 7, 0, 0
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if sop_class == SecondaryCaptureImageStorage:
        ds.ConversionType = "WSD"
    if pixel_spacing_mm:
        ds.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    if compressed:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"
        ds.PixelData = encapsulate([jpeg])
        ds["PixelData"].VR = "OB"
    else:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = rgb.tobytes()
    return ds


def ct_slice(patient: Patient, size: int = 64) -> Dataset:
    """A monochrome 16-bit CT slice (the wrong kind of image for DermAssist)."""
    ds = _base(CTImageStorage, "CT", patient, ExplicitVRLittleEndian)
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelData = np.full((size, size), 1024, dtype=np.uint16).tobytes()
    return ds


def without_pixels(jpeg: bytes, patient: Patient) -> Dataset:
    """A dermoscopy instance whose Pixel Data was stripped."""
    ds = photograph(jpeg, patient)
    del ds.PixelData
    return ds


def with_transfer_syntax(jpeg: bytes, patient: Patient, transfer_syntax: UID = HEVC_MAIN) -> Dataset:
    """A dermoscopy instance labelled with a transfer syntax DermAssist cannot decode."""
    ds = photograph(jpeg, patient)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    return ds


def save(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file."""
    ds.save_as(path, enforce_file_format=True)
    return path


def truncated_file(jpeg: bytes, patient: Patient, path: Path, keep: float = 0.6) -> Path:
    """A dermoscopy file cut off inside its pixel data (the first ``keep`` of its bytes)."""
    full = save(photograph(jpeg, patient, compressed=False), path)
    data = full.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
