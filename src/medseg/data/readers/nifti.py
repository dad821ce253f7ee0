"""NIfTI volumes sliced to 2-D along a chosen axis; a volume is a group.

Layout: `root/<image_dir>/X.nii[.gz]` with labels of the same name in `root/<label_dir>/`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.data.case import Case
from medseg.data.readers.base import READERS, Reader, ReaderOptions
from medseg.errors import DataError

__all__ = ["NiftiReader", "load_volume", "nifti_stem"]


class NiftiOptions(ReaderOptions):
    root: Path
    image_dir: str = "images"
    label_dir: str | None = "labels"
    axis: int = 2


def nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@lru_cache(maxsize=2)
def load_volume(path: str) -> np.ndarray:
    """Decode a whole NIfTI volume (cached: slicing a volume decodes it once).

    Raises:
        DataError: unreadable, truncated or not 3-D.
    """
    try:
        volume = np.asarray(nib.load(path).dataobj)
    except Exception as error:  # nibabel raises several types for corrupt files
        raise DataError(path, f"cannot read NIfTI volume (truncated or corrupt?): {error}") from None
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise DataError(path, f"expected a 3-D volume, got shape {volume.shape}")
    return volume


@READERS.register("nifti")
class NiftiReader(Reader):
    """Every slice of every volume along `axis` (0, 1 or 2).

    Options:
        root: dataset folder.
        image_dir: folder of image volumes, relative to root.
        label_dir: folder of label volumes with the same file names (None: no labels).
        axis: slicing axis of the volume array.
    """

    Options = NiftiOptions
    options: NiftiOptions

    def cases(self) -> list[Case]:
        opts = self.options
        if opts.axis not in (0, 1, 2):
            raise DataError(opts.root, f"data.source.axis must be 0, 1 or 2, got {opts.axis}")
        image_root = opts.root / opts.image_dir
        if not image_root.is_dir():
            raise DataError(image_root, "image folder not found (check data.source.root and data.source.image_dir)")
        labels = {}
        if opts.label_dir:
            labels = {nifti_stem(p): p for p in (opts.root / opts.label_dir).glob("*.nii*")}
        cases = []
        for path in sorted(image_root.glob("*.nii*")):
            stem = nifti_stem(path)
            try:
                shape = nib.load(path).shape
            except Exception as error:
                raise DataError(path, f"cannot read NIfTI header: {error}") from None
            if len(shape) < 3:
                raise DataError(path, f"expected a 3-D volume, got shape {shape}")
            label = labels.get(stem)
            for index in range(shape[opts.axis]):
                cases.append(
                    Case(
                        id=f"{stem}/{index:04d}",
                        image=str(path),
                        mask=str(label) if label else None,
                        group=stem,
                        slice=index,
                    )
                )
        return cases

    def _slice(self, path: str, index: int) -> np.ndarray:
        return np.take(load_volume(path), index, axis=self.options.axis)

    def load_image(self, case: Case) -> np.ndarray:
        return self._slice(case.image, case.slice)

    def load_mask(self, case: Case) -> np.ndarray:
        if case.mask is None:
            raise DataError(case.image, "volume has no label volume, but one is required here")
        mask = self._slice(case.mask, case.slice)
        image_shape = load_volume(case.image).shape
        if load_volume(case.mask).shape != image_shape:
            raise DataError(case.mask, f"label volume shape {load_volume(case.mask).shape} ≠ image {image_shape}")
        return np.rint(mask).astype(np.int64) if mask.dtype.kind == "f" else mask
