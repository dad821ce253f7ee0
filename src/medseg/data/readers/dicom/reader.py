"""DICOM series as 2-D slices; masks from the DICOM-SEG objects in the same tree; a patient is a group.

Layout: any folder tree (a PACS export, a DICOMDIR folder, files with or without `.dcm`): every file with the DICOM
marker is read, image series are grouped by SeriesInstanceUID and ordered by position along the slice normal, other
objects (SR, RTSTRUCT, DICOMDIR) are left out. A series that a DICOM-SEG references is labelled (slices the SEG
leaves out are empty); the others are unlabelled. Case ids are `<series hash>-<slice>` and groups hashes of
PatientID: no name, ID or date of a patient appears in ids, splits, logs or reports.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from medseg.data.case import Case
from medseg.data.readers.base import (
    READERS,
    InputUnit,
    OutputSettings,
    Prediction,
    Reader,
    ReaderOptions,
    file_stamp,
)
from medseg.data.readers.dicom.geometry import nifti_affine
from medseg.data.readers.dicom.pixels import read_frame, read_series
from medseg.data.readers.dicom.scan import DicomTree, Series, hashed, is_dicom, scan_tree, series_of_files
from medseg.data.readers.dicom.seg import read_masks, write_segmentation
from medseg.data.readers.nifti import save_mask_volume
from medseg.errors import DataError

__all__ = ["DicomReader"]


class DicomOptions(ReaderOptions):
    root: Path
    segments: list[int] | None = None
    modalities: list[str] | None = None


@READERS.register("dicom")
class DicomReader(Reader):
    """Slices of DICOM series, masks from DICOM-SEG.

    Options:
        root: the folder tree.
        segments: the SEG segment numbers that are classes 1, 2, ... in this order (others are background); unset,
            a pixel's class is its segment's number.
        modalities: only series of these modalities (e.g. `[MR]`); unset, every image series.
    """

    Options = DicomOptions
    options: DicomOptions
    input_kind = "DICOM series (any file name)"
    source_priority = 30
    no_mask_problem = (
        "no DICOM-SEG in the tree references this slice's series, but a mask is required here "
        "(data.source.modalities can leave such series out)"
    )

    _labels: dict[str, list[np.ndarray]] = {}  # the last series' decoded SEG label maps, by series key

    @cached_property
    def tree(self) -> DicomTree:
        return scan_tree(self.options.root)

    @cached_property
    def _by_key(self) -> dict[str, Series]:
        return {series.key: series for series in self.tree.series}

    def cases(self) -> list[Case]:
        wanted = {m.upper() for m in self.options.modalities} if self.options.modalities else None
        cases = []
        for series in self.tree.series:
            if wanted is not None and series.modality.upper() not in wanted:
                continue
            seg = self.tree.segmentation_of(series)
            for index, piece in enumerate(series.slices):
                cases.append(
                    Case(
                        id=f"{series.key}-{index:04d}",
                        image=f"{piece.path}#{piece.frame}",
                        mask=f"{seg.path}#{series.key}#{index}" if seg else None,
                        group=series.patient_key,
                        slice=index,
                    )
                )
        if not cases:
            raise DataError(
                self.options.root, "no image series found" + (f" of modality {sorted(wanted)}" if wanted else "")
            )
        # listed all the same, as every reader lists a bad file: loading it raises, `data.skip_bad` leaves it out
        return cases + [Case(hashed("x", path), f"{path}#0", group="unreadable") for path, _ in self.tree.unreadable]

    def _slice_of(self, case: Case) -> tuple[Series, int]:
        """The case's series and slice index.

        Raises:
            DataError: the case is a file whose header could not be read.
        """
        key, _, index = case.id.rpartition("-")
        if key not in self._by_key:
            path = case.image.rpartition("#")[0]
            raise DataError(path, dict(self.tree.unreadable).get(path, "not a slice of any series in the tree"))
        return self._by_key[key], int(index)

    def load_image(self, case: Case) -> np.ndarray:
        series, index = self._slice_of(case)
        return read_frame(series.slices[index])

    def load_mask(self, case: Case) -> np.ndarray:
        if case.mask is None:
            raise DataError(case.image, self.no_mask_problem)
        series, index = self._slice_of(case)
        seg = self.tree.segmentation_of(series)
        assert seg is not None  # the case has a mask only where the tree holds a SEG for its series
        if series.key not in self._labels:  # a series' cases load one after another: decode its SEG once
            self._labels = {series.key: read_masks(seg, series)}
        labels = self._labels[series.key][index]
        if self.options.segments is None:
            return labels
        classes = np.zeros_like(labels)
        for value, number in enumerate(self.options.segments, start=1):
            classes[labels == number] = value
        return classes

    @classmethod
    def sniff_source(cls, root: Path) -> dict[str, Any] | None:
        return {} if _holds_dicom(root) else None

    @classmethod
    def sniff_input(cls, path: Path) -> bool:
        return is_dicom(path)

    @classmethod
    def input_units(cls, files: list[tuple[Path, PurePath]]) -> list[InputUnit]:
        """One unit per image series among `files`, named by a hash of its UID (names in a PACS export often hold
        the patient's name); DICOM-SEG and other objects that are not images are left out.

        Raises:
            DataError: no image series among the files, only unreadable or non-image objects.
        """
        tree = series_of_files(path for path, _ in files)
        if tree.unreadable and not tree.series:
            path, reason = tree.unreadable[0]
            raise DataError(path, f"no DICOM image series among the inputs ({reason})")
        return [InputUnit(Path(s.files[0]), PurePath(s.key), cls, True, s) for s in tree.series]

    @classmethod
    def output_suffixes(cls, settings: OutputSettings) -> tuple[str, str | None]:
        return ("_seg.dcm" if settings.dicom_output == "dicom-seg" else "_mask.nii.gz", None)

    @classmethod
    def read_input(cls, unit: InputUnit, settings: OutputSettings) -> list[np.ndarray]:
        return read_series(unit.parts)

    @classmethod
    def write_prediction(cls, prediction: Prediction, settings: OutputSettings) -> None:
        """A DICOM-SEG referencing the series (`--format dicom-seg`), or a NIfTI volume `(rows, columns, slices)` in
        the series' geometry."""
        series, masks = prediction.unit.parts, prediction.masks
        if settings.dicom_output == "dicom-seg":
            write_segmentation(series, masks, prediction.mask_path, list(settings.segments), settings.algorithm)
            return
        save_mask_volume(np.stack(masks, axis=-1), nifti_affine(series), prediction.mask_path)

    def spacing(self, case: Case) -> tuple[float, float] | None:
        return self._slice_of(case)[0].spacing

    def fingerprint(self, case: Case) -> str:
        image = file_stamp(case.image.rpartition("#")[0])
        return image + "|" + (file_stamp(case.mask.split("#", 1)[0]) if case.mask else "")


def _holds_dicom(root: Path, looked_at: int = 200) -> bool:
    """Whether any of the first `looked_at` files under root (hidden ones left out) is a DICOM file."""
    for count, path in enumerate(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if count >= looked_at:
            return False
        if is_dicom(path):
            return True
    return False
