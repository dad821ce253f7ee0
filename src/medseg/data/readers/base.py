"""The Reader interface and registry."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from medseg.data.case import Case
from medseg.registry import Registry

__all__ = ["Reader", "ReaderOptions", "READERS", "build_reader", "file_stamp"]


class ReaderOptions(BaseModel):
    """Base of each reader's options (the `data.source` config section, minus `format`)."""

    model_config = ConfigDict(extra="forbid")


class Reader(ABC):
    """Lists cases and decodes them. Images and masks load separately, so that unlabelled cases never open a mask."""

    Options: ClassVar[type[ReaderOptions]] = ReaderOptions
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
