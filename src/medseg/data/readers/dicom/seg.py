"""DICOM-SEG in and out (highdicom): masks for a series from the SEG object that references it, and a predicted
series written back as one BINARY SEG object that references its source images and keeps their frame of
reference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydicom

from medseg import __version__
from medseg.atomic import atomic_path
from medseg.config import SegmentCode
from medseg.data.readers.dicom.scan import SegObject, Series
from medseg.errors import DataError

if TYPE_CHECKING:
    import highdicom as hd

__all__ = ["read_masks", "write_segmentation"]

# highdicom is imported where it is used: it adds a fifth of a second to every `medseg` command otherwise.


def _label_maps(seg_path: str, series: Series) -> tuple[np.ndarray, ...]:
    import highdicom as hd

    try:
        seg = hd.seg.segread(seg_path)
        numbers = list(seg.segment_numbers)
        uids = list(dict.fromkeys(piece.sop_uid for piece in series.slices))
        multi_frame = len(uids) < len(series.slices)
        if multi_frame:
            (uid,) = uids
            frames = [piece.frame + 1 for piece in series.slices]
            stack = seg.get_pixels_by_source_frame(
                uid,
                frames,
                segment_numbers=numbers,
                assert_missing_frames_are_empty=True,
                ignore_spatial_locations=True,
            )
        else:
            order = [piece.sop_uid for piece in series.slices]
            stack = seg.get_pixels_by_source_instance(
                order, segment_numbers=numbers, assert_missing_frames_are_empty=True, ignore_spatial_locations=True
            )
    except ValueError as error:  # highdicom's word for a SEG that does not fit the series (frames, references)
        raise DataError(seg_path, f"this DICOM-SEG does not fit the series it references: {error}") from None
    except Exception as error:
        raise DataError(seg_path, f"cannot read DICOM-SEG: {error}") from None
    labels = np.zeros(stack.shape[:3], dtype=np.uint8)
    for index, number in enumerate(numbers):  # overlapping segments: the highest number wins
        labels[stack[..., index] > 0.5] = number
    return tuple(labels)


def read_masks(seg: SegObject, series: Series) -> list[np.ndarray]:
    """The label map `(H, W)` uint8 of each slice of `series` (pixel = segment number, 0 = none), slices the SEG
    leaves out being empty.

    Raises:
        DataError: the SEG cannot be read, or does not fit the series (another geometry, unknown instances).
    """
    return list(_label_maps(seg.path, series))


def _code(triple: tuple[str, str, str]) -> hd.sr.CodedConcept:
    import highdicom as hd

    value, scheme, meaning = triple
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def write_segmentation(
    series: Series,
    masks: Sequence[np.ndarray],
    target: str | Path,
    segments: Sequence[SegmentCode],
    algorithm: str,
) -> None:
    """Write `masks` (one `(H, W)` class map per slice of `series`, in its order; 0 = background, k = class k) as a
    BINARY DICOM-SEG with one segment per foreground class, atomically.

    The object references every source image (and so their series), keeps their frame of reference, patient and
    study, and names the algorithm: `algorithm` (e.g. the run's name) and medseg's version.

    Raises:
        DataError: a source file cannot be read, or the masks do not match the series' slices.
    """
    if len(masks) != len(series.slices):
        raise DataError(series.files[0], f"{len(masks)} masks for the {len(series.slices)} slices of the series")
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(path) for path in series.files]
    if len(sources) == 1 and int(sources[0].get("NumberOfFrames") or 1) > 1:
        by_frame = sorted(range(len(masks)), key=lambda i: series.slices[i].frame)
        stack = np.stack([masks[i] for i in by_frame])
    elif len(sources) == len(series.slices):
        stack = np.stack(list(masks))  # series.files is in slice order
    else:
        raise DataError(series.files[0], "a series mixing single- and multi-frame images cannot be written as a SEG")
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm[:64] or "medseg", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=code.label,
            segmented_property_category=_code(code.category),
            segmented_property_type=_code(code.type),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
        )
        for number, code in enumerate(segments, start=1)
    ]
    try:
        seg = _segmentation(sources, stack, descriptions, algorithm)
    except (ValueError, TypeError, AttributeError) as error:  # highdicom's words for sources it cannot reference
        raise DataError(series.files[0], f"cannot write a DICOM-SEG for this series: {error}") from None
    with atomic_path(Path(target), suffix=".dcm") as tmp:
        seg.save_as(tmp)


def _segmentation(
    sources: list[pydicom.Dataset], stack: np.ndarray, descriptions: list[hd.seg.SegmentDescription], algorithm: str
) -> hd.seg.Segmentation:
    import highdicom as hd

    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=stack.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(sources[0].get("SeriesNumber") or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name=algorithm[:64] or "medseg",
        software_versions=f"medseg {__version__}",
        device_serial_number="none",
        series_description=f"medseg {algorithm}"[:64],
        content_label="MEDSEG",
        content_description="medseg prediction",
    )
