"""Decode DICOM pixel data to values: rescale slope and intercept applied (Hounsfield units for CT), MONOCHROME1
inverted, one frame at a time. Compressed transfer syntaxes decode where a pydicom plugin for them is installed
(pylibjpeg and its JPEG / JPEG 2000 plugins come with medseg)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medseg.data.readers.dicom.scan import Series, Slice, _functional
from medseg.errors import DataError

__all__ = ["read_frame", "read_series"]


@lru_cache(maxsize=4)  # a multi-frame file's frames are read one case at a time: decode it once
def _decoded(path: str) -> tuple[Dataset, np.ndarray]:
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises many types for missing plugins and corrupt data
        raise DataError(path, f"cannot decode DICOM pixel data: {error}") from None
    frames = int(dataset.get("NumberOfFrames") or 1)
    samples = int(dataset.get("SamplesPerPixel") or 1)
    if frames == 1:
        pixels = pixels[None]
    if pixels.ndim != (4 if samples > 1 else 3):
        raise DataError(path, f"pixel data of shape {pixels.shape} does not match {frames} frame(s)")
    return dataset, pixels


def _rescale(dataset: Dataset, frame: int) -> tuple[float, float]:
    """(slope, intercept): the file's own, else those of its functional groups, else (1, 0)."""
    source: Dataset | None = dataset if "RescaleSlope" in dataset or "RescaleIntercept" in dataset else None
    if source is None:
        source = _functional(dataset, "PixelValueTransformationSequence", frame)
    if source is None:
        return 1.0, 0.0
    return float(source.get("RescaleSlope", 1) or 1), float(source.get("RescaleIntercept", 0) or 0)


def read_frame(piece: Slice) -> np.ndarray:
    """One slice's values: `(H, W)` float32 (rescaled), or `(H, W, 3)` for colour images.

    Raises:
        DataError: the pixel data cannot be decoded, or the frame is not in the file.
    """
    dataset, pixels = _decoded(piece.path)
    if piece.frame >= len(pixels):
        raise DataError(piece.path, f"frame {piece.frame + 1} asked for, the file holds {len(pixels)}")
    image = pixels[piece.frame]
    if image.ndim == 3:
        return image.astype(np.float32)
    slope, intercept = _rescale(dataset, piece.frame)
    values = image.astype(np.float32) * slope + intercept
    if str(dataset.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        values = -values  # displayed inverted: negated, so that brighter means more on every slice alike
    return values


def read_series(series: Series) -> list[np.ndarray]:
    """Every slice of `series`, in its order (see `read_frame`).

    Raises:
        DataError: the series is not one volume (`Series.problem`: a missing slice, mixed sizes, spacings or
            orientations), or a slice cannot be decoded.
    """
    if series.problem:
        path, _, problem = series.problem.partition(": ")
        raise DataError(path, problem)
    return [read_frame(piece) for piece in series.slices]
