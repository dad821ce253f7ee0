"""DICOM series as 2-D slices; masks from the DICOM-SEG objects in the same tree; a patient is a group.

Layout: any folder tree (a PACS export, a DICOMDIR folder, files with or without `.dcm`): every file with the DICOM
marker is read, image series are grouped by SeriesInstanceUID and ordered by position along the slice normal, other
objects (SR, RTSTRUCT, DICOMDIR) are left out. A series that a DICOM-SEG references is labelled (slices the SEG
leaves out are empty); the others are unlabelled. Case ids are `<series hash>-<slice>` and groups hashes of
PatientID: no name, ID or date of a patient appears in ids, splits, logs or reports.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from medseg.data.case import Case
from medseg.data.dicom.pixels import read_frame
from medseg.data.dicom.scan import DicomTree, Series, scan_tree
from medseg.data.dicom.seg import read_masks
from medseg.data.readers.base import READERS, Reader, ReaderOptions, file_stamp
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
    no_mask_problem = (
        "no DICOM-SEG in the tree references this slice's series, but a mask is required here "
        "(data.source.modalities can leave such series out)"
    )

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
        return cases

    def _slice_of(self, case: Case) -> tuple[Series, int]:
        key, _, index = case.id.rpartition("-")
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
        labels = read_masks(seg, series)[index]
        if self.options.segments is None:
            return labels
        classes = np.zeros_like(labels)
        for value, number in enumerate(self.options.segments, start=1):
            classes[labels == number] = value
        return classes

    def spacing(self, case: Case) -> tuple[float, float] | None:
        return self._slice_of(case)[0].spacing

    def fingerprint(self, case: Case) -> str:
        image = file_stamp(case.image.rpartition("#")[0])
        return image + "|" + (file_stamp(case.mask.split("#", 1)[0]) if case.mask else "")
