"""Small synthetic DICOM series for tests: CT (rescaled to HU) and MR, single- or multi-frame, with a planted patient
identity that must never show up in medseg's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = ["PLANTED", "disc_volume", "write_series"]

PLANTED = {"PatientName": "Planted^Secretname", "PatientID": "MRN-31415926", "PatientBirthDate": "19400229"}

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def disc_volume(slices: int = 5, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(N, size, size)` int16 images (a bright disc on noise) and their `(N, size, size)` uint8 disc masks; the
    disc's radius changes from slice to slice so that the order of slices can be checked."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for index in range(slices):
        radius = 3 + 2 * index
        disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
        images.append((rng.normal(100, 10, (size, size)) + 400 * disc).astype(np.int16))
        masks.append(disc.astype(np.uint8))
    return np.stack(images), np.stack(masks)


def _base(modality: str, sop_class: str, series_uid: str, study_uid: str, frame_uid: str, patient: dict) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    for key, value in patient.items():
        setattr(ds, key, value)
    ds.PatientSex = "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.StudyID, ds.SeriesNumber, ds.AccessionNumber = "1", 3, ""
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20260101", "120000", ""
    ds.Manufacturer = "test"
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def write_series(
    folder: Path,
    images: np.ndarray,
    modality: str = "CT",
    multi_frame: bool = False,
    patient: dict | None = None,
    shuffle_names: bool = True,
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> list[Path]:
    """Write `images` `(N, H, W)` int16 as one series under `folder` (created) and return the files.

    Slices lie along +z at 2.5 mm steps; single-frame files are named in reverse order of position with
    InstanceNumbers shuffled (`shuffle_names`), so that only the positions give the true order. CT stores
    `(value - intercept) / slope` (values read back equal `images` after rescaling).
    """
    folder.mkdir(parents=True, exist_ok=True)
    patient = dict(PLANTED if patient is None else patient)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    sop_class = {"CT": CT_IMAGE, "MR": ENHANCED_MR if multi_frame else MR_IMAGE}[modality]
    count, rows, columns = images.shape
    stored = np.round((images.astype(np.float64) - intercept) / slope).astype(np.int16) if modality == "CT" else images
    if multi_frame:
        ds = _base(modality, sop_class, series_uid, study_uid, frame_uid, patient)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber, ds.NumberOfFrames, ds.Rows, ds.Columns = 1, count, rows, columns
        shared = Dataset()
        orientation, measures = Dataset(), Dataset()
        orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        measures.PixelSpacing, measures.SliceThickness = [0.8, 0.8], 2.5
        shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = Sequence([orientation]), Sequence([measures])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        order = list(range(count))[::-1]  # frames stored from the top down: the reader must reorder them
        frames = []
        for index in order:
            group, position = Dataset(), Dataset()
            position.ImagePositionPatient = [0.0, 0.0, 2.5 * index]
            group.PlanePositionSequence = Sequence([position])
            frames.append(group)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
        ds.PixelData = stored[order].astype(np.int16).tobytes()
        path = folder / "enhanced.dcm"
        ds.save_as(path, enforce_file_format=True)
        return [path]
    paths = []
    numbers = np.random.default_rng(7).permutation(count) + 1 if shuffle_names else np.arange(count) + 1
    for index in range(count):
        ds = _base(modality, sop_class, series_uid, study_uid, frame_uid, patient)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = int(numbers[index])
        ds.Rows, ds.Columns = rows, columns
        ds.ImagePositionPatient = [0.0, 0.0, 2.5 * index]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
        if modality == "CT":
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
        ds.PixelData = stored[index].astype(np.int16).tobytes()
        name = f"IM{count - index:04d}" if shuffle_names else f"IM{index:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        paths.append(folder / name)
    return paths
