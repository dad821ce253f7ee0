"""NIfTI volumes sliced to 2-D along a chosen axis; a volume is a group.

Layout: `root/<image_dir>/X.nii[.gz]` with labels of the same name in `root/<label_dir>/`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any

import nibabel as nib
import numpy as np

from medseg.atomic import atomic_path
from medseg.data.case import Case
from medseg.data.readers.base import READERS, InputUnit, OutputSettings, Prediction, Reader, ReaderOptions
from medseg.data.readers.layout import image_and_mask_folders
from medseg.errors import DataError

__all__ = ["NiftiReader", "load_volume", "volume_shape", "nifti_stem", "save_mask_volume", "slice_spacing"]


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


MASK_NIFTI = "_mask.nii.gz"
MAX_VOXELS = 1 << 28  # 268 M voxels, e.g. 512 × 512 × 1024: a header claiming more is refused before decoding


def save_mask_volume(volume: np.ndarray, affine: np.ndarray, target: Path, header: Any = None) -> None:
    """Write a mask volume (class indices) as uint8 NIfTI with `affine` (and the source's `header`), atomically."""
    image = nib.Nifti1Image(volume.astype(np.uint8), affine, header)
    image.set_data_dtype(np.uint8)
    with atomic_path(target, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)


def volume_shape(path: str | Path) -> tuple[int, int, int]:
    """The 3-D shape a NIfTI header declares, checked (a trailing axis of 1 is dropped).

    Args:
        path: a `.nii` or `.nii.gz` file.

    Raises:
        DataError: unreadable header, not 3-D, empty, above `MAX_VOXELS`, or a non-numeric voxel type.
    """
    try:
        image = nib.load(path)
        shape, dtype = tuple(int(n) for n in image.shape), np.dtype(image.get_data_dtype())
    except Exception as error:  # nibabel raises several types for corrupt files
        raise DataError(path, f"cannot read NIfTI header (truncated or corrupt?): {error}") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(path, f"expected a 3-D volume, got shape {shape}")
    if 0 in shape:
        raise DataError(path, f"volume is {'×'.join(map(str, shape))}: empty; expected at least one voxel")
    if math.prod(shape) > MAX_VOXELS:
        raise DataError(
            path, f"volume is {'×'.join(map(str, shape))}, above the {MAX_VOXELS // 10**6} M voxels this reader decodes"
        )
    if dtype.kind not in "biuf":
        raise DataError(path, f"voxel type {dtype} is not supported; expected integers, floats or booleans")
    if not np.isfinite(image.affine).all():
        raise DataError(path, "the header's voxel-to-world affine holds NaN or inf: its geometry is unusable")
    _check_data_size(Path(path), int(image.dataobj.offset) + math.prod(image.shape) * dtype.itemsize)
    return shape


def _check_data_size(path: Path, needed: int) -> None:
    """Refuse a file shorter than its header says (a header claiming 4,000 slices over a few): the size of a `.nii`,
    or the uncompressed size a `.nii.gz` records in its last four bytes (modulo 2³², as gzip keeps it).

    Raises:
        DataError: the data is shorter than the header's shape and voxel type need.
    """
    if path.name.endswith(".gz"):
        with path.open("rb") as handle:
            handle.seek(-4, 2)
            size = int.from_bytes(handle.read(4), "little")
        if needed < 2**32 and size < needed:
            raise DataError(path, f"holds {size} bytes of data, its header's shape needs {needed}: truncated?")
    elif path.stat().st_size < needed:
        raise DataError(path, f"is {path.stat().st_size} bytes, its header's shape needs {needed}: truncated?")


def slice_spacing(path: str | Path, axis: int) -> tuple[float, float] | None:
    """The header's voxel size (mm) along the two axes a slice across `axis` keeps; None for an unreadable header
    or a size that is not positive."""
    try:
        zooms = nib.load(str(path)).header.get_zooms()[:3]
    except Exception:  # the slice's own loading reports the problem
        return None
    kept = [float(z) for index, z in enumerate(zooms) if index != axis]
    return (kept[0], kept[1]) if len(kept) == 2 and all(z > 0 for z in kept) else None


@lru_cache(maxsize=6)  # a case's channels and label are sliced together (MSD: up to 4 + 1 volumes)
def load_volume(path: str) -> np.ndarray:
    """Decode a whole NIfTI volume (cached: slicing a volume decodes it once), its header checked first.

    Args:
        path: a `.nii` or `.nii.gz` file.

    Raises:
        DataError: unreadable, truncated, not 3-D, empty, too large or not numeric (see `volume_shape`).
    """
    shape = volume_shape(path)
    try:
        volume = np.asarray(nib.load(path).dataobj)
    except Exception as error:  # nibabel raises several types for corrupt files
        raise DataError(path, f"cannot read NIfTI volume (truncated or corrupt?): {error}") from None
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.shape != shape or volume.dtype.kind not in "biuf":
        raise DataError(path, f"decoded a {volume.dtype} array of shape {volume.shape}; expected {shape} numbers")
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
    volume_input = True
    input_kind = "NIfTI volumes (.nii, .nii.gz)"
    source_priority = 40

    def expects_masks(self) -> bool:
        return bool(self.options.label_dir)

    @classmethod
    def sniff_source(cls, root: Path) -> dict[str, Any] | None:
        pair = image_and_mask_folders(root)
        if pair and any((root / pair[0]).glob("*.nii*")):
            return {"image_dir": pair[0], "label_dir": pair[1] or None}
        return None

    @classmethod
    def sniff_input(cls, path: Path) -> bool:
        return path.name.endswith((".nii", ".nii.gz"))

    @classmethod
    def input_units(cls, files: list[tuple[Path, PurePath]]) -> list[InputUnit]:
        return [InputUnit(path, rel.parent / nifti_stem(Path(rel)), cls, True) for path, rel in files]

    @classmethod
    def output_suffixes(cls, settings: OutputSettings) -> tuple[str, str | None]:
        return (MASK_NIFTI, None)

    @classmethod
    def read_input(cls, unit: InputUnit, settings: OutputSettings) -> list[np.ndarray]:
        """Every slice along the run's `data.source.axis` (default 2)."""
        axis = int((settings.source or {}).get("axis", 2))
        volume = load_volume(str(unit.source))
        return [np.take(volume, i, axis=axis) for i in range(volume.shape[axis])]

    @classmethod
    def write_prediction(cls, prediction: Prediction, settings: OutputSettings) -> None:
        """The mask volume, stacked along the slicing axis, with the input's affine and header."""
        axis = int((settings.source or {}).get("axis", 2))
        source = nib.load(str(prediction.unit.source))
        save_mask_volume(np.stack(prediction.masks, axis=axis), source.affine, prediction.mask_path, source.header)

    def __init__(self, options: NiftiOptions) -> None:
        super().__init__(options)
        self._failed: dict[str, DataError] = {}

    def cases(self) -> list[Case]:
        """Every slice of every volume; an unusable volume is listed as one slice that fails when loaded.

        Raises:
            DataError: a bad axis or a missing image folder.
        """
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
                count = volume_shape(path)[opts.axis]
            except DataError:  # listed as one slice anyway: `load_image` raises the same error when it is decoded
                count = 1
            label = labels.get(stem)
            for index in range(count):
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

    def _volume(self, path: str) -> np.ndarray:
        """`load_volume`, remembering failures: the slices of a broken volume do not each decode it again."""
        if path in self._failed:
            error = self._failed[path]
            raise DataError(error.path, error.problem)
        try:
            return load_volume(path)
        except DataError as error:
            self._failed[path] = error
            raise

    def spacing(self, case: Case) -> tuple[float, float] | None:
        return slice_spacing(case.image, self.options.axis)

    def _slice(self, path: str, index: int) -> np.ndarray:
        return np.take(self._volume(path), index, axis=self.options.axis)

    def load_image(self, case: Case) -> np.ndarray:
        """The image slice.

        Raises:
            DataError: the volume is unusable (see `load_volume`).
        """
        return self._slice(case.image, case.slice)

    def load_mask(self, case: Case) -> np.ndarray:
        """The label slice; the label volume must have the image volume's shape.

        Raises:
            DataError: no label volume, an unusable one, or one of another shape.
        """
        if case.mask is None:
            raise DataError(case.image, "volume has no label volume, but one is required here")
        image_shape, label_shape = self._volume(case.image).shape, self._volume(case.mask).shape
        if label_shape != image_shape:
            raise DataError(case.mask, f"label volume shape {label_shape} ≠ image {image_shape} ({case.image})")
        mask = self._slice(case.mask, case.slice)
        if mask.dtype.kind != "f":
            return mask
        whole = np.rint(mask)
        if not np.array_equal(whole, mask):  # NaN fails too
            odd = np.unique(mask[whole != mask])[:4].tolist()
            raise DataError(
                case.mask, f"label volume holds values that are not class indices, e.g. {odd}; expected whole numbers"
            )
        return whole.astype(np.int64)
