"""The format registry seen from outside training: which format a file or a dataset folder is, asked of each
registered reader. `predict`, `explain` and `data inspect` go through here and hold no format dispatch of their own."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

from medseg.data.readers.base import READERS, DicomOutput, InputUnit, OutputSettings, Reader
from medseg.errors import DataError

__all__ = ["input_format", "input_kinds", "input_units", "output_suffixes", "source_of_folder"]


def _readers() -> list[type[Reader]]:
    return [READERS[name] for name in READERS.names()]


def input_format(path: Path) -> type[Reader] | None:
    """The format whose reader recognises `path` as a prediction input, or None."""
    return next((reader for reader in _readers() if reader.sniff_input(path)), None)


def input_kinds() -> str:
    """The inputs the formats read, in words (for a message)."""
    return ", ".join(reader.input_kind for reader in _readers() if reader.input_kind)


def input_units(files: list[tuple[Path, PurePath]]) -> list[InputUnit]:
    """Prediction inputs `(path, relative name)`, each sniffed and grouped by its format (a DICOM series' files are
    one unit), in the order of the files (a unit at its first file).

    Raises:
        DataError: a file no format recognises.
    """
    by_reader: dict[type[Reader], list[tuple[Path, PurePath]]] = {}
    for path, relative in files:
        reader = input_format(path)
        if reader is None:
            raise DataError(path, f"not an input any format reads ({input_kinds()})")
        by_reader.setdefault(reader, []).append((path, relative))
    order = {path: index for index, (path, _) in enumerate(files)}
    units = [unit for reader, found in by_reader.items() for unit in reader.input_units(found)]
    return sorted(units, key=lambda unit: order.get(unit.source, len(order)))


def output_suffixes() -> set[str]:
    """Every suffix a prediction's outputs end with, whatever the format and `--format`."""
    suffixes: set[str] = set()
    for reader in _readers():
        for dicom_output in DicomOutput.__args__:  # type: ignore[attr-defined]
            suffixes |= {s for s in reader.output_suffixes(OutputSettings(dicom_output=dicom_output)) if s}
    return suffixes


def source_of_folder(root: Path) -> dict[str, Any]:
    """The `data.source` of a dataset folder: the first format (by `source_priority`) that recognises it."""
    for reader in sorted(_readers(), key=lambda reader: reader.source_priority):
        options = reader.sniff_source(root)
        if options is not None:
            name = next(n for n in READERS.names() if READERS[n] is reader)
            return {"format": name, "root": str(root), **options}
    raise DataError(root, "no format recognises this folder")
