"""The Reader interface and registry."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from medseg.data.case import Case
from medseg.errors import DataError
from medseg.overlay import overlay, save_png
from medseg.registry import Registry

__all__ = [
    "READERS",
    "DicomOutput",
    "InputUnit",
    "OutputSettings",
    "Prediction",
    "Reader",
    "ReaderOptions",
    "build_reader",
    "file_stamp",
]

MASK_PNG, OVERLAY_PNG = "_mask.png", "_overlay.png"
DicomOutput = Literal["nifti", "dicom-seg"]


@dataclass(frozen=True)
class InputUnit:
    """What `medseg predict` reads and writes as one: a 2-D file, a volume file, or a DICOM series.

    Attributes:
        source: the file (a series: its first file).
        name: the outputs' name without suffix, relative to the output folder (a series: a hash of its UID).
        reader: the format that sniffed it; it reads the input and writes the prediction.
        volume: many slices (one mask volume out) rather than one.
        parts: what the format needs beyond `source` (a DICOM series: its `Series`).
    """

    source: Path
    name: PurePath
    reader: type[Reader]
    volume: bool = False
    parts: Any = None


@dataclass(frozen=True)
class Prediction:
    """A unit's slices as read (`(H, W)` or `(H, W, C)`), their masks (`(H, W)` uint8 class indices, one per
    slice), and where the mask and the overlay (None: none) go."""

    unit: InputUnit
    slices: list[np.ndarray]
    masks: list[np.ndarray]
    mask_path: Path
    overlay_path: Path | None


@dataclass(frozen=True)
class OutputSettings:
    """What reading an input and writing its prediction need to know of the run and the command line."""

    num_classes: int = 2
    source: dict[str, Any] | None = None  # the run's `data.source` (a volume's slicing axis)
    segments: tuple[Any, ...] = ()  # `SegmentCode`s, one per foreground class (DICOM-SEG)
    algorithm: str = "medseg"  # the run's name (DICOM-SEG's algorithm identification)
    dicom_output: DicomOutput = "nifti"


class ReaderOptions(BaseModel):
    """Base of each reader's options (the `data.source` config section, minus `format`)."""

    model_config = ConfigDict(extra="forbid")


class Reader(ABC):
    """Lists cases and decodes them. Images and masks load separately, so that unlabelled cases never open a mask."""

    Options: ClassVar[type[ReaderOptions]] = ReaderOptions
    source_priority: ClassVar[int] = 50  # `sniff_source` order; the folder reader, the fallback, comes last
    volume_input: ClassVar[bool] = False  # an input file of this format holds many slices
    input_kind: ClassVar[str] = ""  # the prediction inputs it reads, in words ("" = none)
    no_mask_problem: ClassVar[str] = "image has no mask, but one is required here"

    def __init__(self, options: ReaderOptions) -> None:
        self.options = options

    @abstractmethod
    def cases(self) -> list[Case]:
        """All cases this source holds, in a stable order.

        Listing does not fail on one bad source file: such a file is listed all the same and `load_image` raises
        its `DataError`, so that `data.skip_bad` can leave it out and `medseg data inspect` can report every one.

        Raises:
            DataError: the source folder or an index file is unusable.
        """

    @abstractmethod
    def load_image(self, case: Case) -> np.ndarray:
        """Decode a case's image as `(H, W)` or `(H, W, C)` (any numeric dtype).

        Raises:
            DataError: the only exception for an unusable file; it names the file and the problem.
        """

    @abstractmethod
    def load_mask(self, case: Case) -> np.ndarray:
        """Decode a case's mask as `(H, W)` (raw values, checked later by `binarize_mask`).

        Raises:
            DataError: the only exception for an unusable file; it names the file and the problem.
        """

    def spacing(self, case: Case) -> tuple[float, float] | None:
        """The source pixel spacing in mm (rows, columns), or None where the format does not record one."""
        return None

    def fingerprint(self, case: Case) -> str:
        """A string that changes when the case's source files change (part of the store's cache key)."""
        return file_stamp(case.image) + "|" + (file_stamp(case.mask) if case.mask else "")

    def class_names(self) -> dict[int, str]:
        """The classes the masks hold, by index, where the dataset names them (else empty)."""
        return {}

    def expects_masks(self) -> bool:
        """Whether every case should have a mask (a case without one is then a problem `data inspect` reports)."""
        return False

    # A dataset folder's format, for `data inspect` and `evaluate --data`

    @classmethod
    def sniff_source(cls, root: Path) -> dict[str, Any] | None:
        """The `data.source` options (without `format`) if `root` looks like a dataset of this format, else None."""
        return None

    # Inputs of `medseg predict` / `medseg explain`: this format's files, read and written back

    @classmethod
    def sniff_input(cls, path: Path) -> bool:
        """Whether `path` is an input file of this format."""
        return False

    @classmethod
    def input_units(cls, files: list[tuple[Path, PurePath]]) -> list[InputUnit]:
        """The units among this format's input `files` (`(path, path relative to its folder argument)`): one per
        file, named by its relative path without suffix."""
        return [InputUnit(path, rel.parent / rel.stem, cls, cls.volume_input) for path, rel in files]

    @classmethod
    def output_suffixes(cls, settings: OutputSettings) -> tuple[str, str | None]:
        """The suffixes of a unit's mask and overlay (None: no overlay) after its name."""
        return (MASK_PNG, OVERLAY_PNG)

    @classmethod
    def read_input(cls, unit: InputUnit, settings: OutputSettings) -> list[np.ndarray]:
        """The unit's slices, `(H, W)` or `(H, W, C)` each (a 2-D file: one).

        Raises:
            DataError: the input cannot be read.
        """
        raise DataError(unit.source, "this format is read for training only, not predicted")

    @classmethod
    def write_prediction(cls, prediction: Prediction, settings: OutputSettings) -> None:
        """Write the prediction's masks to its paths, atomically, the mask last (its presence marks the unit done).
        Here, a 2-D file's: the overlay PNG, then the mask PNG (0/255 where binary)."""
        (raw,), (mask,) = prediction.slices, prediction.masks
        if prediction.overlay_path is not None:
            save_png(prediction.overlay_path, overlay(np.moveaxis(raw, -1, 0) if raw.ndim == 3 else raw, mask))
        save_png(prediction.mask_path, mask * (255 if settings.num_classes == 2 else 1))


def file_stamp(path: str) -> str:
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path}:missing"
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


READERS: Registry[type[Reader]] = Registry("data format")


def build_reader(source: dict[str, Any]) -> Reader:
    """Build the reader named by `source["format"]`, validating the other keys against its options.

    Raises:
        ValueError: unknown format (the message lists the known ones).
        pydantic.ValidationError: an unknown or mistyped option.
    """
    options = dict(source)
    name = options.pop("format", None)
    if name is None:
        raise ValueError(f"data.source needs a 'format'; available: {READERS.names()}")
    reader_cls = READERS[name]
    return reader_cls(reader_cls.Options(**options))
