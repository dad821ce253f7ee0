"""Folders of 2-D images with masks, in a sibling folder (by file stem) or beside them (by suffix).

Layouts covered:
- `root/images/N.png` + `root/masks/N.png` (+ `root/labels.csv` with `file,label[,group]`), e.g. figshare PNGs;
- `root/<patient>/X.tif` + `root/<patient>/X_mask.tif`, the LGG `kaggle_3m` layout (folder = group);
- `root/train/image/N.png` + `root/train/label/N.png`, e.g. ISBI 2012 EM.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from medseg.data.case import Case
from medseg.data.readers.base import READERS, InputUnit, OutputSettings, Reader, ReaderOptions
from medseg.data.readers.image_files import IMAGE_SUFFIXES, read_image_file
from medseg.data.readers.layout import image_and_mask_folders
from medseg.errors import DataError

__all__ = ["FolderReader"]


class FolderOptions(ReaderOptions):
    root: Path
    image_dir: str = ""
    mask_dir: str | None = None
    mask_suffix: str | None = None
    labels_csv: str | None = None
    group_column: str | None = None
    recursive: bool = True


@READERS.register("folder")
class FolderReader(Reader):
    """Images and masks from folders.

    Options:
        root: dataset folder.
        image_dir: folder of images, relative to root ("" = root).
        mask_dir: sibling folder of masks matched by file stem (any image suffix), relative to root.
        mask_suffix: alternatively, masks beside the images named `<stem><suffix>.<ext>` (e.g. `_mask`).
        labels_csv: optional CSV relative to root with columns `file,label[,<group_column>]`.
        group_column: the CSV column holding the group (e.g. `block` for figshare); it must exist. Unset, a
            `group` column is used where the CSV has one.
        recursive: also look in subfolders; a subfolder is then the group of its images (one per patient).
    """

    Options = FolderOptions
    options: FolderOptions
    source_priority = 90  # the fallback: any folder of images
    input_kind = "images (" + ", ".join(IMAGE_SUFFIXES) + ")"

    def expects_masks(self) -> bool:
        return bool(self.options.mask_dir or self.options.mask_suffix)

    @classmethod
    def sniff_source(cls, root: Path) -> dict[str, Any]:
        source: dict[str, Any] = {}
        pair = image_and_mask_folders(root)
        if pair:
            source["image_dir"] = pair[0]
            if pair[1]:
                source["mask_dir"] = pair[1]
        elif any(root.rglob("*_mask.*")):
            source["mask_suffix"] = "_mask"
        return {**source, **_labels_csv_options(root / "labels.csv")}

    @classmethod
    def sniff_input(cls, path: Path) -> bool:
        return path.suffix.lower() in IMAGE_SUFFIXES

    @classmethod
    def read_input(cls, unit: InputUnit, settings: OutputSettings) -> list[np.ndarray]:
        return [read_image_file(unit.source)]

    def cases(self) -> list[Case]:
        opts = self.options
        image_root = opts.root / opts.image_dir
        if not image_root.is_dir():
            raise DataError(image_root, "image folder not found (check data.source.root and data.source.image_dir)")
        if opts.mask_dir and not (opts.root / opts.mask_dir).is_dir():
            raise DataError(opts.root / opts.mask_dir, "mask folder not found (check data.source.mask_dir)")
        masks_by_stem = self._masks_by_stem() if opts.mask_dir else {}
        table = self._labels_table()
        files = [p for p in _files(image_root, opts.recursive) if p.suffix.lower() in IMAGE_SUFFIXES]
        cases = []
        for path in files:
            if opts.mask_suffix and path.stem.endswith(opts.mask_suffix):
                continue
            rel = path.relative_to(image_root)
            if opts.mask_dir:
                mask = masks_by_stem.get(rel.with_suffix("").as_posix())
            elif opts.mask_suffix:
                mask = _find_with_stem(path.parent, path.stem + opts.mask_suffix)
            else:
                mask = None
            row = table.get(rel.as_posix()) or table.get(path.name) or {}
            label = row.get("label")
            if row.get(opts.group_column or "group"):
                group = row[opts.group_column or "group"]
            elif len(rel.parts) > 1:
                group = rel.parent.as_posix()
            else:
                group = rel.stem
            cases.append(
                Case(
                    id=rel.with_suffix("").as_posix(),
                    image=str(path),
                    mask=str(mask) if mask else None,
                    label=self._label(label, rel.as_posix()),
                    group=str(group),
                )
            )
        return cases

    def _label(self, value: str | None, file: str) -> int | None:
        """A labels CSV cell as an integer label (None when blank).

        Raises:
            DataError: the cell is not a whole number.
        """
        if value is None or not value.strip():
            return None
        try:
            return int(value)
        except ValueError:
            csv_path = self.options.root / (self.options.labels_csv or "")
            raise DataError(csv_path, f"label {value!r} of {file} is not a whole number") from None

    def _masks_by_stem(self) -> dict[str, Path]:
        mask_root = self.options.root / self.options.mask_dir
        return {
            p.relative_to(mask_root).with_suffix("").as_posix(): p
            for p in _files(mask_root, self.options.recursive)
            if p.suffix.lower() in IMAGE_SUFFIXES
        }

    def _labels_table(self) -> dict[str, dict[str, str]]:
        column = self.options.group_column
        if not self.options.labels_csv:
            if column:
                raise DataError(self.options.root, f"data.source.group_column {column!r} needs a labels_csv holding it")
            return {}
        path = self.options.root / self.options.labels_csv
        if not path.is_file():
            raise DataError(path, "labels CSV not found (check data.source.labels_csv)")
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "file" not in reader.fieldnames:
                    raise DataError(path, f"labels CSV needs a 'file' column; found {reader.fieldnames}")
                if column and column not in reader.fieldnames:
                    raise DataError(
                        path, f"no column {column!r} (found {reader.fieldnames}); check data.source.group_column"
                    )
                rows = [row for row in reader if row["file"]]
        except (UnicodeDecodeError, csv.Error) as error:
            raise DataError(path, f"cannot read as a UTF-8 CSV: {error}") from None
        twice = sorted(name for name, n in Counter(row["file"] for row in rows).items() if n > 1)
        if twice:
            raise DataError(path, f"{len(twice)} file(s) listed more than once, e.g. {twice[:3]}: one row per file")
        return {row["file"]: row for row in rows}

    def load_image(self, case: Case) -> np.ndarray:
        return read_image_file(case.image)

    def load_mask(self, case: Case) -> np.ndarray:
        if case.mask is None:
            raise DataError(case.image, "image has no mask, but one is required here")
        return read_image_file(case.mask)


def _labels_csv_options(labels: Path) -> dict[str, Any]:
    """`labels_csv` (and `group_column`) where `labels` is a CSV with a `file` column (and a group or block one).

    Raises:
        DataError: the file is not a UTF-8 CSV.
    """
    if not labels.is_file():
        return {}
    try:
        with labels.open(newline="", encoding="utf-8") as handle:
            columns = next(csv.reader(handle), [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(labels, f"cannot read as a UTF-8 CSV: {error}") from None
    if "file" not in columns:
        return {}
    grouping = [column for column in ("group", "block") if column in columns]
    return {"labels_csv": labels.name, **({"group_column": grouping[0]} if grouping else {})}


def _files(root: Path, recursive: bool) -> list[Path]:
    """The files under `root` (in its subfolders too if `recursive`), sorted.

    Raises:
        DataError: a folder that cannot be read (its images would silently be left out).
    """

    def unreadable(error: OSError) -> None:
        raise DataError(error.filename, f"folder cannot be read ({error.strerror}): its images would be left out")

    found = []
    for here, folders, names in os.walk(root, onerror=unreadable, followlinks=True):  # as Path.glob("**") did
        found += [Path(here, name) for name in names if Path(here, name).is_file()]
        if not recursive:
            folders.clear()
    return sorted(found)


def _find_with_stem(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / (stem + suffix), folder / (stem + suffix.upper())):
            if candidate.is_file():
                return candidate
    return None
