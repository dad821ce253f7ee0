"""Predict masks for new images: 2-D image files (mask + overlay PNGs), figshare `.mat` files, NIfTI volumes
(a NIfTI mask volume with the input's affine), DICOM series (a NIfTI mask volume with the series' geometry, or a
DICOM-SEG object referencing the series), with a PyTorch checkpoint or an exported ONNX model.

A DICOM series' outputs are named by a hash of its SeriesInstanceUID (`s1a2b3c4d5e6f_mask.nii.gz` or `_seg.dcm`,
at the top of the output folder): file and folder names in a PACS export often hold the patient's name.

Outputs mirror the inputs: a file found in a folder argument writes `<path relative to that folder, without its
suffix>_mask.png` (sub-folders created), a file argument `<name without suffix>_mask.png`; see `plan_outputs` for
the rule that keeps two inputs from ever sharing an output. Outputs are written atomically, the mask last (its
presence marks the case done); existing outputs are kept, so an interrupted run picks up where it stopped. One
process at a time predicts into an output folder (it holds the folder's lock). This module imports no model,
method or training code."""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePath
from typing import Literal, NamedTuple, Protocol

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from medseg.atomic import atomic_path
from medseg.config import Config
from medseg.csv_cells import write_csv
from medseg.data.dataset import preprocessing_of
from medseg.data.dicom.geometry import nifti_affine
from medseg.data.dicom.pixels import read_series
from medseg.data.dicom.scan import Series, is_dicom, series_of_files
from medseg.data.dicom.seg import write_segmentation
from medseg.data.image_io import IMAGE_SUFFIXES, read_image_file
from medseg.data.readers.figshare import read_cjdata
from medseg.data.readers.nifti import load_volume, nifti_stem
from medseg.data.store import Preprocessing, preprocess_image
from medseg.errors import DataError
from medseg.locking import locked, remove_temporary_files
from medseg.overlay import overlay, save_png

__all__ = [
    "SKIPPED_CSV",
    "DicomOutput",
    "PlannedOutput",
    "SlicePredictor",
    "expand_inputs",
    "plan_outputs",
    "predict_paths",
    "read_slice",
]

MASK_PNG, OVERLAY_PNG, MASK_NIFTI, SEG_DICOM = "_mask.png", "_overlay.png", "_mask.nii.gz", "_seg.dcm"
DicomOutput = Literal["nifti", "dicom-seg"]
SKIPPED_CSV = "skipped.csv"
_SKIPPED_HEADER = ["file", "reason"]


class PlannedOutput(NamedTuple):
    """One input and where its outputs go."""

    source: Path
    mask: Path
    overlay: Path | None  # None for a volume (NIfTI, DICOM series): its mask is a volume, drawn nowhere
    series: Series | None = None  # a DICOM series: `source` is its first file


def _is_nifti(path: PurePath) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _is_own_output(path: PurePath) -> bool:
    """Named as `predict` names what it writes (a mask or an overlay)."""
    return path.name.endswith((MASK_PNG, OVERLAY_PNG, MASK_NIFTI, SEG_DICOM))


def _predictable(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + (".mat",) or _is_nifti(path) or is_dicom(path)


def expand_inputs(inputs: Sequence[str | Path], out_dir: str | Path | None = None) -> list[Path]:
    """Files as given; folders → the images, `.mat` and NIfTI files inside (sorted, recursive). The same file
    given twice (a file and a folder holding it) comes once.

    A folder's hidden files and folders, files named like `predict`'s outputs (`*_mask.png`, `*_overlay.png`,
    `*_mask.nii.gz`) and, when `out_dir` lies inside the folder, everything under `out_dir` are not inputs; a
    file argument is one unless it is such an output inside `out_dir`.

    Args:
        inputs: files or folders.
        out_dir: the output folder, whose contents are never inputs.

    Raises:
        DataError: an input does not exist, or nothing predictable was found.
    """
    return [path for path, _ in _collect(inputs, out_dir)]


def _collect(inputs: Sequence[str | Path], out_dir: str | Path | None) -> list[tuple[Path, PurePath]]:
    """`expand_inputs` with each file's name relative to its argument (a file argument: its own name)."""
    out = Path(out_dir).resolve() if out_dir is not None else None
    found: list[tuple[Path, PurePath]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += [(path, path.relative_to(item)) for path in _scan(item, out)]
        elif item.is_file():
            if not (out is not None and _is_own_output(item) and item.resolve().is_relative_to(out)):
                found.append((item, PurePath(item.name)))
        else:
            raise DataError(item, "input not found")
    seen: set[Path] = set()
    unique = []
    for path, relative in found:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((path, relative))
    if not unique:
        raise DataError(
            ", ".join(map(str, inputs)),
            f"no input images found (looked for {', '.join(IMAGE_SUFFIXES)}, .mat, .nii, DICOM; hidden files and "
            "medseg's own *_mask / *_overlay outputs are not inputs)",
        )
    return unique


def _scan(folder: Path, out: Path | None) -> list[Path]:
    """The predictable files under `folder`, sorted: no hidden files or folders, no outputs of `predict`, nothing
    under `out` when it lies inside `folder`."""
    root = folder.resolve()
    prune = out if out is not None and out != root and out.is_relative_to(root) else None
    files = []
    for here, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".") and Path(here, name).resolve() != prune]
        for name in names:
            path = Path(here, name)
            if not name.startswith(".") and _predictable(path) and not _is_own_output(path):
                files.append(path)
    return sorted(files)


def plan_outputs(
    inputs: Sequence[str | Path], out_dir: str | Path, dicom_output: DicomOutput = "nifti"
) -> list[PlannedOutput]:
    """Every input of `expand_inputs(inputs, out_dir)` and its outputs, no two inputs sharing one.

    DICOM files are grouped into series (DICOM-SEG and other non-image objects are not inputs); a series writes
    `<out_dir>/<series hash><_mask.nii.gz or _seg.dcm>` (`dicom_output`).

    An input's name is its path relative to its folder argument (a file argument: its file name). Its outputs are
    `<out_dir>/<name without suffix>_mask.png` + `_overlay.png` (a volume: `_mask.nii.gz`). Inputs that would
    share those (`5.png` and `5.tif`; names are compared ignoring case, as some filesystems do) keep their suffix
    instead (`5.png_mask.png`, `5.tif_mask.png`); any that still share one (the same name under two arguments)
    get `-2`, `-3`, ... after it, in argument order (`1.png_mask.png`, `1.png-2_mask.png`).

    Args:
        inputs: files or folders.
        out_dir: the output folder.

    Raises:
        DataError: an input does not exist, or nothing predictable was found.
    """
    out_dir = Path(out_dir)
    found = _collect(inputs, out_dir)
    dicom = [path for path, _ in found if is_dicom(path)]
    found = [(path, relative) for path, relative in found if not is_dicom(path)]
    volumes = [_is_nifti(path) for path, _ in found]
    plain = [_plain_name(relative) for _, relative in found]
    names = _unique_names(plain, [rel.as_posix() for _, rel in found], volumes)
    return [
        PlannedOutput(path, out_dir / f"{name}{MASK_NIFTI}", None)
        if volume
        else PlannedOutput(path, out_dir / f"{name}{MASK_PNG}", out_dir / f"{name}{OVERLAY_PNG}")
        for (path, _), name, volume in zip(found, names, volumes, strict=True)
    ] + _plan_series(dicom, out_dir, dicom_output)


def _plan_series(files: list[Path], out_dir: Path, dicom_output: DicomOutput) -> list[PlannedOutput]:
    """A `PlannedOutput` per image series among DICOM `files` (the others are left out)."""
    if not files:
        return []
    tree = series_of_files(files)
    if tree.skipped and not tree.series:
        path, reason = tree.skipped[0]
        raise DataError(path, f"no DICOM image series among the inputs ({reason})")
    suffix = SEG_DICOM if dicom_output == "dicom-seg" else MASK_NIFTI
    return [PlannedOutput(Path(s.files[0]), out_dir / f"{s.key}{suffix}", None, s) for s in tree.series]


def _plain_name(relative: PurePath) -> str:
    """An input's name without its suffix (a volume's without `.nii` / `.nii.gz`)."""
    stem = nifti_stem(Path(relative)) if _is_nifti(relative) else relative.stem
    return (relative.parent / stem).as_posix()


def _unique_names(plain: list[str], full: list[str], volumes: list[bool]) -> list[str]:
    """The rule of `plan_outputs`: `plain` where no other input of the same kind has it, else `full`, else
    `full-2`, `full-3`, ... (the first free one, in input order)."""

    def key(name: str, volume: bool) -> tuple[str, bool]:
        return name.casefold(), volume

    counts = Counter(key(name, volume) for name, volume in zip(plain, volumes, strict=True))
    taken = {key(name, volume) for name, volume in zip(plain, volumes, strict=True) if counts[key(name, volume)] == 1}
    names = []
    for short, long, volume in zip(plain, full, volumes, strict=True):
        if counts[key(short, volume)] == 1:
            names.append(short)
            continue
        name, number = long, 1
        while key(name, volume) in taken:
            number += 1
            name = f"{long}-{number}"
        taken.add(key(name, volume))
        names.append(name)
    return names


def read_slice(path: Path) -> np.ndarray:
    """A 2-D input as decoded: figshare `.mat` → `(H, W)`; image file → `(H, W)` or `(H, W, C)`."""
    return read_cjdata(path, ("image",))["image"] if path.suffix.lower() == ".mat" else read_image_file(path)


class SlicePredictor(Protocol):
    """What prediction needs of a model: the PyTorch `Predictor` or the ONNX `OnnxPredictor`."""

    cfg: Config

    def probabilities(self, images: torch.Tensor) -> torch.Tensor: ...

    def masks_from(self, probs: torch.Tensor) -> np.ndarray: ...


def _probabilities(predictor: SlicePredictor, images: list[np.ndarray]) -> list[torch.Tensor]:
    """Each preprocessed image's probabilities `(K, H', W')`; images of one size go through in device batches."""
    probs: list[torch.Tensor | None] = [None] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(index)
    for indices in by_shape.values():
        batch = torch.from_numpy(np.stack([images[i] for i in indices]))
        chunks = [predictor.probabilities(chunk) for chunk in batch.split(predictor.cfg.train.batch_size)]
        for index, prob in zip(indices, torch.cat(chunks), strict=True):
            probs[index] = prob
    return probs


def _masks(predictor: SlicePredictor, images: list[np.ndarray], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Preprocessed `(C, H', W')` images → `(H, W)` uint8 masks at each image's own size `sizes[i]`."""
    probs = _probabilities(predictor, images)
    masks = []
    for (height, width), prob in zip(sizes, probs, strict=True):
        if prob.shape[-2:] != (height, width):
            prob = F.interpolate(prob[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        masks.append(predictor.masks_from(prob[None])[0])
    return masks


def predict_paths(
    predictor: SlicePredictor,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    overwrite: bool = False,
    skip_bad: bool = False,
    skipped: list[tuple[str, str]] | None = None,
    dicom_output: DicomOutput = "nifti",
) -> Iterator[Path]:
    """Predict every input, streaming: 2-D files are read and predicted `train.batch_size` at a time, a volume's
    slices in batches; yields each mask file written (or already present and kept), one per input.

    Holds `out_dir`'s lock throughout and first removes the temporary files a killed run left there. At the end,
    `<out_dir>/skipped.csv` (`file,reason`) lists the inputs skipped, or is removed if an earlier run wrote one
    and none was skipped now.

    Args:
        predictor: a loaded `Predictor` (PyTorch) or `OnnxPredictor`.
        inputs: files or folders.
        out_dir: where the outputs go, named as `plan_outputs` says.
        overwrite: recompute outputs that already exist (otherwise they are kept: an interrupted run resumes).
        skip_bad: skip an input that cannot be read or preprocessed (a `DataError`) and go on; otherwise it stops
            the run, after the masks of the images read before it are written.
        skipped: if given, each skipped input's `(file, reason)` is appended to it.
        dicom_output: a DICOM series' mask as a NIfTI volume in the series' geometry, or as a DICOM-SEG.

    Raises:
        DataError: an input does not exist or nothing predictable was found; without `skip_bad`, an input that
            cannot be read or preprocessed.
        RunFolderError: another process is predicting into `out_dir`.
    """
    out_dir = Path(out_dir)
    plan = plan_outputs(inputs, out_dir, dicom_output)
    bad: list[tuple[str, str]] = []
    with locked(out_dir, "predicting"):
        remove_temporary_files(out_dir)
        yield from _predict_planned(predictor, plan, overwrite, skip_bad, bad)
        _write_skipped(out_dir / SKIPPED_CSV, bad)
    if skipped is not None:
        skipped.extend(bad)


def _predict_planned(
    predictor: SlicePredictor, plan: list[PlannedOutput], overwrite: bool, skip_bad: bool, bad: list[tuple[str, str]]
) -> Iterator[Path]:
    """`predict_paths` once the folder is locked; appends each skipped input's `(file, reason)` to `bad`."""
    settings = preprocessing_of(predictor.cfg.data)
    scale = 255 if predictor.cfg.data.num_classes == 2 else 1
    pending: list[tuple[PlannedOutput, np.ndarray, np.ndarray]] = []  # (job, raw slice, preprocessed image)
    for job in plan:
        if not overwrite and job.mask.exists():
            yield job.mask
            continue
        try:
            if job.series is not None:
                _predict_series(predictor, settings, job.series, job.mask)
            elif job.overlay is None:
                _predict_volume(predictor, settings, job.source, job.mask)
            else:
                raw = read_slice(job.source)
                pending.append((job, raw, preprocess_image(raw, settings, str(job.source))))
        except DataError as error:
            if not skip_bad:
                yield from _write_batch(predictor, pending, scale)  # nothing already read is lost
                raise DataError(
                    error.path, f"{error.problem} (stopped here; --skip-bad skips such inputs and lists them)"
                ) from None
            bad.append((str(job.source), error.problem))
            continue
        if job.overlay is None:
            yield job.mask
        elif len(pending) == predictor.cfg.train.batch_size:
            yield from _write_batch(predictor, pending, scale)
    yield from _write_batch(predictor, pending, scale)


def _write_batch(
    predictor: SlicePredictor, pending: list[tuple[PlannedOutput, np.ndarray, np.ndarray]], scale: int
) -> Iterator[Path]:
    """Predict the pending 2-D inputs and write each one's overlay, then its mask; yields the masks and empties
    `pending`."""
    if not pending:
        return
    masks = _masks(predictor, [image for _, _, image in pending], [raw.shape[:2] for _, raw, _ in pending])
    for (job, raw, _), mask in zip(pending, masks, strict=True):
        channels_first = np.moveaxis(raw, -1, 0) if raw.ndim == 3 else raw
        save_png(job.overlay, overlay(channels_first, mask))
        save_png(job.mask, mask * scale)  # the mask last: its presence marks the case done
        yield job.mask
    pending.clear()


def _predict_volume(predictor: SlicePredictor, settings: Preprocessing, path: Path, target: Path) -> None:
    """Predict every slice of a NIfTI volume along `data.source.axis` and write the mask volume to `target`.

    Raises:
        DataError: the volume or one of its slices cannot be read or preprocessed (nothing is written then).
    """
    axis = int(predictor.cfg.data.source.get("axis", 2))
    volume = load_volume(str(path))
    slices = [np.take(volume, i, axis=axis) for i in range(volume.shape[axis])]
    images = [preprocess_image(raw, settings, str(path)) for raw in slices]
    mask_volume = np.moveaxis(np.stack(_masks(predictor, images, [raw.shape[:2] for raw in slices])), 0, axis)
    source = nib.load(str(path))
    image = nib.Nifti1Image(mask_volume.astype(np.uint8), source.affine, source.header)
    image.set_data_dtype(np.uint8)
    with atomic_path(target, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)


def _predict_series(predictor: SlicePredictor, settings: Preprocessing, series: Series, target: Path) -> None:
    """Predict every slice of a DICOM series and write its masks to `target`: a DICOM-SEG (`*.dcm`) that references
    the series, or a NIfTI volume `(rows, columns, slices)` with the series' geometry.

    Raises:
        DataError: a slice cannot be read or preprocessed, or the SEG cannot be written (nothing is written then).
    """
    slices = read_series(series)
    images = [preprocess_image(raw, settings, series.files[0]) for raw in slices]
    masks = _masks(predictor, images, [raw.shape[:2] for raw in slices])
    if target.name.endswith(SEG_DICOM):
        write_segmentation(series, masks, target, predictor.cfg.data.segment_codes(), predictor.cfg.name)
        return
    image = nib.Nifti1Image(np.stack(masks, axis=-1).astype(np.uint8), nifti_affine(series))
    image.set_data_dtype(np.uint8)
    with atomic_path(target, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)


def _write_skipped(path: Path, rows: list[tuple[str, str]]) -> None:
    """`skipped.csv` (`file,reason`) atomically; with no rows, remove one an earlier predict wrote (a run folder's
    own `skipped.csv`, `id,reason`, is left alone)."""
    if rows:
        write_csv(path, _SKIPPED_HEADER, rows)
    elif path.is_file():
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), None)
        if header == _SKIPPED_HEADER:
            path.unlink()
