"""The figshare brain tumour dataset (Cheng et al. 2015) in its MATLAB v7.3 (HDF5) layout.

Each `N.mat` holds a group `cjdata` with `image` (int16), `tumorMask` (logical), `label` (1 = meningioma,
2 = glioma, 3 = pituitary), `PID` (patient ID as uint16 character codes) and `tumorBorder`. MATLAB writes
arrays column-major, so every 2-D dataset reads transposed through HDF5 and is transposed back here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

from medseg.data.case import Case
from medseg.data.readers.base import READERS, Reader, ReaderOptions
from medseg.errors import DataError

__all__ = ["FigshareMatReader", "read_cjdata"]


class FigshareMatOptions(ReaderOptions):
    root: Path
    labels_csv: str | None = None
    group_column: str = "block"


def _numeric_key(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 62, path.stem)


def read_cjdata(path: str | Path, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read datasets of the `cjdata` group, transposing 2-D ones back to row-major.

    Raises:
        DataError: the file is missing, not HDF5 (e.g. an older MATLAB format), truncated, or lacks a field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with h5py.File(path, "r") as handle:
            if "cjdata" not in handle:
                raise DataError(path, f"no 'cjdata' group (found {sorted(handle.keys())}); not a figshare .mat file")
            group = handle["cjdata"]
            out = {}
            for field in fields:
                if field not in group:
                    raise DataError(path, f"'cjdata' has no '{field}' dataset (found {sorted(group.keys())})")
                value = group[field][()]
                out[field] = value.T if value.ndim == 2 else value
            return out
    except DataError:
        raise
    except OSError as error:
        raise DataError(path, f"cannot read as MATLAB v7.3/HDF5 (truncated or another format?): {error}") from None


@READERS.register("figshare_mat")
class FigshareMatReader(Reader):
    """Slices from a folder of figshare `N.mat` files.

    Options:
        root: folder of `.mat` files.
        labels_csv: optional CSV (`file,...,<group_column>`) whose column replaces the PID as group, for copies
            without real patient IDs (e.g. `block` in this project's shared copy).
        group_column: that column's name.
    """

    Options = FigshareMatOptions
    options: FigshareMatOptions

    def cases(self) -> list[Case]:
        root = self.options.root
        if not root.is_dir():
            raise DataError(root, "folder not found (check data.source.root)")
        groups = self._groups_from_csv()
        cases = []
        for path in sorted(root.glob("*.mat"), key=_numeric_key):
            meta = read_cjdata(path, ("label", "PID"))
            pid = "".join(chr(int(c)) for c in np.asarray(meta["PID"]).ravel() if int(c) > 0)
            group = groups.get(path.stem, pid or path.stem)
            cases.append(
                Case(
                    id=path.stem,
                    image=str(path),
                    mask=str(path),
                    label=int(np.asarray(meta["label"]).ravel()[0]),
                    group=group,
                )
            )
        return cases

    def _groups_from_csv(self) -> dict[str, str]:
        if not self.options.labels_csv:
            return {}
        path = Path(self.options.labels_csv)
        if not path.is_absolute():
            path = self.options.root / path
        if not path.is_file():
            raise DataError(path, "labels CSV not found (check data.source.labels_csv)")
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        column = self.options.group_column
        if rows and column not in rows[0]:
            raise DataError(path, f"no column '{column}' (found {list(rows[0])}); check data.source.group_column")
        return {Path(row["file"]).stem: row[column] for row in rows}

    def load_image(self, case: Case) -> np.ndarray:
        return read_cjdata(case.image, ("image",))["image"]

    def load_mask(self, case: Case) -> np.ndarray:
        return read_cjdata(case.image, ("tumorMask",))["tumorMask"]
