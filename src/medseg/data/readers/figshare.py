"""The figshare brain tumour dataset (Cheng et al. 2015) in its MATLAB v7.3 (HDF5) layout.

Each `N.mat` holds a group `cjdata` with `image` (int16), `tumorMask` (logical), `label` (1 = meningioma,
2 = glioma, 3 = pituitary), `PID` (patient ID as uint16 character codes) and `tumorBorder`. MATLAB writes
arrays column-major, so every 2-D dataset reads transposed through HDF5 and is transposed back here.

Every dataset's type and size are checked from the HDF5 header before it is read (a tiny compressed file can
hold a huge array); any problem with a file is a `DataError` naming it.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from medseg.data.case import Case
from medseg.data.readers.base import READERS, InputUnit, OutputSettings, Reader, ReaderOptions
from medseg.data.readers.image_files import MAX_PIXELS
from medseg.errors import DataError

__all__ = ["FigshareMatReader", "read_cjdata"]

_MAX_META_VALUES = 4096  # label and PID are a few numbers
_LABELS = "1 = meningioma, 2 = glioma, 3 = pituitary"


class _Rule(NamedTuple):
    two_d: bool
    max_values: int
    what: str


_RULES = {
    "image": _Rule(True, MAX_PIXELS, "image"),
    "tumorMask": _Rule(True, MAX_PIXELS, "mask"),
    "label": _Rule(False, _MAX_META_VALUES, "label"),
    "PID": _Rule(False, _MAX_META_VALUES, "patient ID"),
}
_ANY = _Rule(False, MAX_PIXELS, "array")


class FigshareMatOptions(ReaderOptions):
    root: Path
    labels_csv: str | None = None
    group_column: str = "block"


def _numeric_key(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 62, path.stem)


def read_cjdata(path: str | Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read datasets of the `cjdata` group, transposing 2-D ones back to row-major.

    `image` and `tumorMask` must be non-empty 2-D numeric arrays of at most `MAX_PIXELS`; `label` and `PID` small
    numeric arrays (possibly empty: the caller decides).

    Args:
        path: a figshare `.mat` file.
        fields: names of datasets in `cjdata`.

    Raises:
        DataError: the file is missing, not HDF5 (e.g. an older MATLAB format), truncated, lacks a field, or a
            field has the wrong type, number of dimensions or size.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with h5py.File(path, "r") as handle:
            _no_external(path, handle, "cjdata")
            group = handle.get("cjdata")
            if not isinstance(group, h5py.Group):
                raise DataError(path, f"no 'cjdata' group (found {_names(handle)}); not a figshare .mat file")
            return {field: _read_field(path, group, field) for field in fields}
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:  # h5py's types for corrupt files
        raise DataError(path, f"cannot read as MATLAB v7.3/HDF5 (truncated or another format?): {error}") from None


def _no_external(path: Path, group: h5py.Group, name: str) -> None:
    """Refuse a link to another file: reading it would read a file the user did not name.

    Raises:
        DataError: `group[name]` is an external link.
    """
    if isinstance(group.get(name, getlink=True), h5py.ExternalLink):
        raise DataError(path, f"'{name}' links to another file; a .mat slice must hold its own data")


def _names(group: h5py.Group) -> list[str]:
    """The first names in a group, for messages."""
    return sorted(itertools.islice(group.keys(), 20))[:10]


def _read_field(path: Path, group: h5py.Group, field: str) -> np.ndarray:
    """One dataset of `cjdata`, checked from its header before it is read (see `read_cjdata`)."""
    _no_external(path, group, field)
    dataset = group.get(field)
    if not isinstance(dataset, h5py.Dataset):
        raise DataError(path, f"'cjdata' has no '{field}' dataset (found {_names(group)})")
    if dataset.external:
        raise DataError(path, f"'cjdata/{field}' keeps its values in another file; a .mat slice must hold its own")
    rule = _RULES.get(field, _ANY)
    name = f"'cjdata/{field}'"
    if dataset.dtype.kind not in "biuf":
        raise DataError(path, f"{name} holds {dataset.dtype} values; expected a numeric {rule.what}")
    if dataset.shape is None or np.any(dataset.attrs.get("MATLAB_empty", 0)):
        shape, size = (0,), "[]"
    else:
        shape, size = tuple(dataset.shape), "×".join(map(str, dataset.shape[::-1]))  # MATLAB's order
    if 0 in shape:
        if rule.two_d:
            raise DataError(path, f"{name} is {size}: empty; expected a 2-D {rule.what} of at least 1×1")
        return np.empty((0,), dataset.dtype)
    if rule.two_d and len(shape) != 2:
        dims = f"{len(shape)}-D ({size} in MATLAB order)" if shape else "a scalar"
        raise DataError(path, f"{name} is {dims}; expected a 2-D {rule.what}")
    if math.prod(shape) > rule.max_values:
        raise DataError(path, f"{name} is {size}, above the {rule.max_values} values this reader reads")
    value = np.asarray(dataset[()])
    return value.T if value.ndim == 2 else value


def _label_of(path: str | Path, value: np.ndarray) -> int:
    """The image-level label: one whole number.

    Raises:
        DataError: empty, several values, not finite or not a whole number in [0, 2³¹).
    """
    values = np.asarray(value).ravel()
    if values.size != 1:
        raise DataError(path, f"'cjdata/label' holds {values.size} values; expected one ({_LABELS})")
    number = float(values[0])
    if not (math.isfinite(number) and number == round(number) and 0 <= number < 2**31):
        raise DataError(path, f"'cjdata/label' is {number}; expected a whole number ≥ 0 ({_LABELS})")
    return int(number)


def _pid_of(path: str | Path, value: np.ndarray) -> str:
    """The patient ID from MATLAB character codes (zeros ignored; "" when there are none).

    Raises:
        DataError: codes that are not printable characters.
    """
    codes = np.asarray(value, dtype=np.float64).ravel()
    codes = codes[codes != 0]
    valid = np.isfinite(codes) & (codes == np.round(codes)) & (codes > 0) & (codes < 0xD800)
    pid = "".join(chr(int(code)) for code in codes) if valid.all() else None
    if pid is None or not pid.isprintable():
        raise DataError(path, f"'cjdata/PID' is not a patient ID: expected printable character codes, got {codes[:8]}")
    return pid


@READERS.register("figshare_mat")
class FigshareMatReader(Reader):
    """Slices from a folder of figshare `N.mat` files.

    A file whose `label` or `PID` cannot be read is still listed (label None, its stem as group): loading it
    raises the `DataError`, so that `data.skip_bad` leaves it out and `medseg data inspect` reports it.

    Options:
        root: folder of `.mat` files.
        labels_csv: optional CSV (`file,...,<group_column>`) whose column replaces the PID as group, for copies
            without real patient IDs (e.g. `block` in this project's shared copy).
        group_column: that column's name.
    """

    Options = FigshareMatOptions
    options: FigshareMatOptions
    input_kind = "figshare .mat"
    source_priority = 20

    def expects_masks(self) -> bool:
        return True

    @classmethod
    def sniff_source(cls, root: Path) -> dict[str, Any] | None:
        return {} if any(root.glob("*.mat")) else None

    @classmethod
    def sniff_input(cls, path: Path) -> bool:
        return path.suffix.lower() == ".mat"

    @classmethod
    def read_input(cls, unit: InputUnit, settings: OutputSettings) -> list[np.ndarray]:
        return [read_cjdata(unit.source, ("image",))["image"]]

    def cases(self) -> list[Case]:
        """Every `.mat` file in numeric order, with its label and group.

        Raises:
            DataError: the folder or the labels CSV is unusable (a bad `.mat` file fails when it is loaded).
        """
        root = self.options.root
        if not root.is_dir():
            raise DataError(root, "folder not found (check data.source.root)")
        groups = self._groups_from_csv()
        cases = []
        for path in sorted(root.glob("*.mat"), key=_numeric_key):
            try:
                label, pid = self._meta(path, read_cjdata(path, ("label", "PID")))
            except DataError:  # listed anyway: `load_image` raises the same error when the case is decoded
                label, pid = None, ""
            group = groups.get(path.stem, pid or path.stem)
            cases.append(Case(id=path.stem, image=str(path), mask=str(path), label=label, group=group))
        return cases

    @staticmethod
    def _meta(path: str | Path, data: dict[str, np.ndarray]) -> tuple[int, str]:
        return _label_of(path, data["label"]), _pid_of(path, data["PID"])

    def _groups_from_csv(self) -> dict[str, str]:
        if not self.options.labels_csv:
            return {}
        path = Path(self.options.labels_csv)
        if not path.is_absolute():
            path = self.options.root / path
        if not path.is_file():
            raise DataError(path, "labels CSV not found (check data.source.labels_csv)")
        column = self.options.group_column
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "file" not in reader.fieldnames:
                    raise DataError(path, f"labels CSV needs a 'file' column; found {reader.fieldnames}")
                if column not in reader.fieldnames:
                    raise DataError(
                        path, f"no column '{column}' (found {reader.fieldnames}); check data.source.group_column"
                    )
                return {Path(row["file"] or "").stem: row[column] or "" for row in reader}
        except (UnicodeDecodeError, csv.Error) as error:
            raise DataError(path, f"cannot read as a UTF-8 CSV: {error}") from None

    def load_image(self, case: Case) -> np.ndarray:
        """The `image` (checked together with `label` and `PID`, so that a bad file fails here).

        Raises:
            DataError: the file or any of these fields is unusable.
        """
        data = read_cjdata(case.image, ("image", "label", "PID"))
        self._meta(case.image, data)
        return data["image"]

    def load_mask(self, case: Case) -> np.ndarray:
        """The `tumorMask`.

        Raises:
            DataError: the file or the field is unusable.
        """
        return read_cjdata(case.image, ("tumorMask",))["tumorMask"]
