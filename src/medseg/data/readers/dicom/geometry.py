"""A DICOM series' voxel-to-world geometry as a NIfTI affine (RAS), for masks written as NIfTI volumes."""

from __future__ import annotations

import numpy as np

from medseg.data.readers.dicom.scan import Series

__all__ = ["nifti_affine"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nifti_affine(series: Series) -> np.ndarray:
    """The `(4, 4)` RAS affine of the volume `np.stack(slice masks, axis=-1)` — voxel `(row, column, slice)` — where
    slices are in `series.slices` order. Without orientation or positions: the pixel spacing (else 1 mm) on the
    axes, slices 1 mm apart."""
    rows, columns = series.spacing or (1.0, 1.0)
    positions = [piece.position for piece in series.slices]
    lps = np.eye(4)
    if series.orientation is None or any(position is None for position in positions):
        lps[:3, :3] = np.diag([rows, columns, 1.0])
        return _LPS_TO_RAS @ lps
    along_row, along_column = np.array(series.orientation[:3]), np.array(series.orientation[3:])
    first = np.array(positions[0], dtype=float)
    if len(positions) > 1:
        step = (np.array(positions[-1], dtype=float) - first) / (len(positions) - 1)
    else:
        step = np.cross(along_row, along_column)
    lps[:3, 0] = along_column * rows  # the row index moves down a column
    lps[:3, 1] = along_row * columns
    lps[:3, 2] = step
    lps[:3, 3] = first
    return _LPS_TO_RAS @ lps
