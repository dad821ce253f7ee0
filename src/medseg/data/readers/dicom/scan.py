"""Find DICOM series in a folder tree: files sniffed by content, grouped by SeriesInstanceUID, slices ordered by
their position along the slice normal; DICOM-SEG objects found beside them, by the series they reference.

Nothing here decodes pixels. Identifiers that could name a patient never leave this module: a series is known by
`Series.key` (a hash of its UID) and a patient by `Series.patient_key` (a hash of PatientID).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medseg.errors import DataError

__all__ = ["DicomTree", "SegObject", "Series", "Slice", "hashed", "is_dicom", "scan_tree", "series_of_files"]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_NOT_IMAGES = {"SEG", "RTSTRUCT", "SR", "PR", "KO", "REG", "RTPLAN", "RTDOSE"}


def hashed(kind: str, text: str, length: int = 12) -> str:
    """A short stable name for an identifier that must not be shown: `kind` + the first hex digits of its SHA-256."""
    return kind + hashlib.sha256(f"medseg:{kind}:{text}".encode()).hexdigest()[:length]


def is_dicom(path: str | Path) -> bool:
    """A DICOM Part 10 file (the `DICM` marker after the 128-byte preamble), whatever its name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


@dataclass(frozen=True)
class Slice:
    """One 2-D image of a series: a single-frame instance (`frame` 0) or one frame of a multi-frame instance.

    Attributes:
        path: the instance's file.
        frame: the frame's index in the file (0-based).
        sop_uid: the instance's SOPInstanceUID (a DICOM-SEG refers to slices by it, and by frame number).
        position: ImagePositionPatient (mm, patient LPS), or None where the file has none.
    """

    path: str
    frame: int
    sop_uid: str
    position: tuple[float, float, float] | None


@dataclass(frozen=True)
class Series:
    """The image slices of one SeriesInstanceUID, in order along the slice normal.

    Attributes:
        uid: SeriesInstanceUID (kept for references; never printed or used in a name).
        patient_key: a hash of PatientID (of StudyInstanceUID where there is none): the split group.
        modality: CT, MR, ...
        frame_of_reference: FrameOfReferenceUID, or "".
        orientation: ImageOrientationPatient (row direction, then column direction), or None.
        spacing: PixelSpacing (rows, columns) in mm, or None.
        slices: in order of position along the normal (InstanceNumber, then file name, where positions are missing).
        problem: what makes the series unusable as one volume (a missing slice, slices of other sizes, spacings or
            orientations), or "".
    """

    uid: str
    patient_key: str
    modality: str
    frame_of_reference: str
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    slices: tuple[Slice, ...]
    problem: str = ""

    @property
    def key(self) -> str:
        """A name for the series that shows no identifier: `s` + 12 hex digits of a hash of its UID."""
        return hashed("s", self.uid)

    @property
    def files(self) -> list[str]:
        """The series' files, each once, in slice order."""
        return list(dict.fromkeys(piece.path for piece in self.slices))


@dataclass(frozen=True)
class SegObject:
    """A DICOM-SEG file and the series it segments."""

    path: str
    referenced_series: str
    segment_numbers: tuple[int, ...]


@dataclass
class DicomTree:
    """What `scan_tree` found: image series, DICOM-SEG objects, files that cannot be read (with why), and objects
    that are not images (SR, RTSTRUCT, presentation states, ...), left out."""

    series: list[Series] = field(default_factory=list)
    segmentations: list[SegObject] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)

    def segmentation_of(self, series: Series) -> SegObject | None:
        """The first DICOM-SEG (in path order) that references `series`, or None."""
        for seg in self.segmentations:
            if seg.referenced_series == series.uid:
                return seg
        return None


def scan_tree(root: str | Path) -> DicomTree:
    """Every DICOM file under `root` (hidden files and folders left out), grouped.

    Raises:
        DataError: `root` is not a folder, or holds no DICOM file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "DICOM folder not found")
    files = []
    for here, folders, names in os.walk(root):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        files += [os.path.join(here, name) for name in sorted(names) if not name.startswith(".")]
    tree = series_of_files(path for path in files if is_dicom(path))
    if not tree.series and not tree.segmentations and not tree.unreadable and not tree.not_images:
        raise DataError(root, "no DICOM file found (looked for files with the DICM marker, any name)")
    return tree


def series_of_files(paths: Iterable[str | Path]) -> DicomTree:
    """Group DICOM files into series; SEG objects and files that are not images (SR, RTSTRUCT, ...) set aside."""
    tree = DicomTree()
    members: dict[str, list[tuple[Dataset, str]]] = {}
    for path in map(str, paths):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            tree.unreadable.append((path, f"unreadable DICOM header: {error}"))
            continue
        if "SOPClassUID" not in header and "Modality" not in header:
            tree.unreadable.append((path, "unreadable DICOM header: no SOP class or modality (a corrupt file?)"))
        elif header.get("SOPClassUID", "") == SEG_SOP_CLASS or header.get("Modality", "") == "SEG":
            tree.segmentations.append(_seg_object(path, header))
        elif header.get("Modality", "") in _NOT_IMAGES or "Rows" not in header or "SeriesInstanceUID" not in header:
            tree.not_images.append(path)
        else:
            members.setdefault(str(header.SeriesInstanceUID), []).append((header, path))
    tree.segmentations.sort(key=lambda seg: seg.path)
    for uid in sorted(members, key=lambda uid: members[uid][0][1]):
        tree.series.append(_series(uid, members[uid]))
    return tree


def _seg_object(path: str, header: Dataset) -> SegObject:
    referenced = header.get("ReferencedSeriesSequence") or []
    uid = str(referenced[0].SeriesInstanceUID) if referenced else ""
    numbers = tuple(int(item.SegmentNumber) for item in header.get("SegmentSequence") or [])
    return SegObject(path, uid, numbers)


def _series(uid: str, members: list[tuple[Dataset, str]]) -> Series:
    first = members[0][0]
    orientation = _orientation(first)
    normal = np.cross(orientation[:3], orientation[3:]) if orientation else None
    pieces: list[tuple[tuple[float, ...], Slice]] = []
    for header, path in members:
        number = float(header.get("InstanceNumber") or 0)
        for frame, position in enumerate(_frame_positions(header)):
            along = float(np.dot(position, normal)) if position is not None and normal is not None else number
            pieces.append(((along, number, frame), Slice(path, frame, str(header.SOPInstanceUID), position)))
    pieces.sort(key=lambda item: (item[0], item[1].path))
    patient = str(first.get("PatientID") or "") or str(first.get("StudyInstanceUID") or uid)
    spacing = _spacing(first)
    ordered = tuple(piece for _, piece in pieces)
    return Series(
        uid=uid,
        patient_key=hashed("p", patient, 10),
        modality=str(first.get("Modality", "")),
        frame_of_reference=str(first.get("FrameOfReferenceUID", "")),
        orientation=tuple(orientation) if orientation else None,
        spacing=spacing,
        slices=ordered,
        problem=_inconsistency(members, ordered, normal),
    )


def _inconsistency(members: list[tuple[Dataset, str]], slices: tuple[Slice, ...], normal: np.ndarray | None) -> str:
    """Why the slices do not make one volume ("" when they do): another size, pixel spacing or orientation than the
    first file's, or a gap along the normal (a step over 1.5 times the usual one: a slice missing)."""

    def geometry(header: Dataset) -> dict[str, Any]:
        size = (header.get("Rows"), header.get("Columns"))
        return {"size": size, "pixel spacing": _spacing(header), "orientation": _orientation(header)}

    first_path, reference = members[0][1], geometry(members[0][0])
    for header, path in members[1:]:
        for name, value in geometry(header).items():
            if not _same(value, reference[name]):
                return f"{path}: {name} {value} differs from {reference[name]} in {first_path} of the same series"
    positions = [piece.position for piece in slices]
    if normal is None or len(slices) < 3 or any(position is None for position in positions):
        return ""
    steps = np.diff([np.dot(position, normal) for position in positions])
    usual = float(np.median(steps))
    if usual > 0 and steps.max() > 1.5 * usual:
        gap = int(np.argmax(steps))
        return (
            f"{slices[gap + 1].path}: {steps[gap]:.3g} mm from the previous slice where the series steps {usual:.3g} "
            "mm: a slice is missing"
        )
    return ""


def _same(value: Any, reference: Any) -> bool:
    if value is None or reference is None:
        return value is reference
    return bool(np.allclose(np.asarray(value, float), np.asarray(reference, float), atol=1e-4))


def _functional(header: Dataset, name: str, frame: int | None = None) -> Dataset | None:
    """An item of a functional group macro (`PlanePositionSequence`, ...) from the per-frame groups of `frame`, else
    the shared groups, else None."""
    groups = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in header:
        groups.append(header.PerFrameFunctionalGroupsSequence[frame])
    if "SharedFunctionalGroupsSequence" in header:
        groups.append(header.SharedFunctionalGroupsSequence[0])
    for group in groups:
        if name in group and len(group[name].value):
            return group[name].value[0]
    return None


def _orientation(header: Dataset) -> list[float] | None:
    values = header.get("ImageOrientationPatient")
    if values is None:
        item = _functional(header, "PlaneOrientationSequence", 0)
        values = item.get("ImageOrientationPatient") if item is not None else None
    return [float(v) for v in values] if values is not None and len(values) == 6 else None


def _spacing(header: Dataset) -> tuple[float, float] | None:
    values = header.get("PixelSpacing")
    if values is None:
        item = _functional(header, "PixelMeasuresSequence", 0)
        values = item.get("PixelSpacing") if item is not None else None
    return (float(values[0]), float(values[1])) if values is not None and len(values) == 2 else None


def _frame_positions(header: Dataset) -> list[tuple[float, float, float] | None]:
    """ImagePositionPatient of each frame (a single-frame file: one)."""
    frames = int(header.get("NumberOfFrames") or 1)
    if frames == 1 and "ImagePositionPatient" in header:
        return [tuple(float(v) for v in header.ImagePositionPatient)]  # type: ignore[list-item]
    positions: list[tuple[float, float, float] | None] = []
    for frame in range(frames):
        item = _functional(header, "PlanePositionSequence", frame)
        values = item.get("ImagePositionPatient") if item is not None else None
        positions.append(tuple(float(v) for v in values) if values is not None else None)  # type: ignore[arg-type]
    return positions
