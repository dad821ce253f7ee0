"""Predict masks for new images: 2-D image files (mask + overlay PNGs), figshare `.mat` files, NIfTI volumes
(a NIfTI mask volume with the input's affine), DICOM series (a NIfTI mask volume with the series' geometry, or a
DICOM-SEG object referencing the series), with a PyTorch checkpoint or an exported ONNX model.

Each format reads its inputs and writes its outputs (`Reader.read_input`, `Reader.write_prediction`, found by
`medseg.data.readers.inputs`); this module plans names, batches slices and predicts. A DICOM series' outputs are
named by a hash of its SeriesInstanceUID (`s1a2b3c4d5e6f_mask.nii.gz` or `_seg.dcm`, at the top of the output
folder): file and folder names in a PACS export often hold the patient's name.

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
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from medseg.config import Config
from medseg.csv_cells import write_csv
from medseg.data.dataset import preprocessing_of
from medseg.data.readers.base import DicomOutput, InputUnit, OutputSettings, Prediction
from medseg.data.readers.inputs import input_format, input_kinds, input_units, output_suffixes
from medseg.data.store import preprocess_image
from medseg.errors import DataError
from medseg.locking import locked, remove_temporary_files

__all__ = [
    "SKIPPED_CSV",
    "DicomOutput",
    "PlannedOutput",
    "SlicePredictor",
    "expand_inputs",
    "output_settings",
    "plan_outputs",
    "predict_paths",
    "read_input",
]

SKIPPED_CSV = "skipped.csv"
_SKIPPED_HEADER = ["file", "reason"]


class PlannedOutput(NamedTuple):
    """One input and where its outputs go."""

    unit: InputUnit
    mask: Path
    overlay: Path | None  # None for a volume (NIfTI, DICOM series): its mask is a volume, drawn nowhere
    stem: Path  # the outputs' path without their suffixes (other outputs, e.g. explain's maps, go beside them)

    @property
    def source(self) -> Path:
        return self.unit.source


def _is_own_output(path: PurePath, suffixes: tuple[str, ...] | None = None) -> bool:
    """Named as `predict` names what it writes (a mask or an overlay, in any format; `suffixes` where the caller
    has them)."""
    return path.name.endswith(suffixes or tuple(output_suffixes()))


def _predictable(path: Path) -> bool:
    return input_format(path) is not None


def expand_inputs(inputs: Sequence[str | Path], out_dir: str | Path | None = None) -> list[Path]:
    """Files as given; folders → the files inside that a format reads (images, `.mat`, NIfTI, DICOM by content;
    sorted, recursive). The same file given twice (a file and a folder holding it) comes once.

    A folder's hidden files and folders, files named like `predict`'s outputs (`*_mask.png`, `*_overlay.png`,
    `*_mask.nii.gz`, `*_seg.dcm`) and, when `out_dir` lies inside the folder, everything under `out_dir` are not
    inputs; a file argument is one unless it is such an output inside `out_dir`.

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
            f"no input images found (looked for {input_kinds()}; hidden files and "
            "medseg's own *_mask / *_overlay outputs are not inputs)",
        )
    return unique


def _scan(folder: Path, out: Path | None) -> list[Path]:
    """The predictable files under `folder`, sorted: no hidden files or folders, no outputs of `predict`, nothing
    under `out` when it lies inside `folder`."""
    root = folder.resolve()
    prune = out if out is not None and out != root and out.is_relative_to(root) else None
    files, suffixes = [], tuple(output_suffixes())
    for here, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".") and Path(here, name).resolve() != prune]
        for name in names:
            path = Path(here, name)
            if not name.startswith(".") and _predictable(path) and not _is_own_output(path, suffixes):
                files.append(path)
    return sorted(files)


def plan_outputs(
    inputs: Sequence[str | Path], out_dir: str | Path, dicom_output: DicomOutput = "nifti"
) -> list[PlannedOutput]:
    """Every input unit of `expand_inputs(inputs, out_dir)` and its outputs, no two units sharing one.

    Files are sniffed by the format registry and grouped into units (a DICOM series' files are one; DICOM-SEG and
    other non-image objects are not inputs). A unit's name is its path relative to its folder argument (a file
    argument: its file name) without the format's suffix (a DICOM series: a hash of its UID); its outputs are
    `<out_dir>/<name><suffix>`, the suffixes its format gives (`_mask.png` + `_overlay.png` for a 2-D file,
    `_mask.nii.gz` for a volume, `_seg.dcm` for a series with `dicom_output="dicom-seg"`). Units that would share
    those (`5.png` and `5.tif`; names are compared ignoring case, as some filesystems do) keep their suffix instead
    (`5.png_mask.png`, `5.tif_mask.png`); any that still share one (the same name under two arguments) get `-2`,
    `-3`, ... after it, in argument order (`1.png_mask.png`, `1.png-2_mask.png`).

    Args:
        inputs: files or folders.
        out_dir: the output folder.
        dicom_output: a DICOM series' mask as a NIfTI volume or as a DICOM-SEG.

    Raises:
        DataError: an input does not exist, or nothing predictable was found.
    """
    out_dir = Path(out_dir)
    found = _collect(inputs, out_dir)
    relative = {path: rel for path, rel in found}
    units = input_units(found)
    settings = OutputSettings(dicom_output=dicom_output)
    suffixes = [unit.reader.output_suffixes(settings) for unit in units]
    plain = [unit.name.as_posix() for unit in units]
    full = [relative[unit.source].as_posix() if unit.parts is None else unit.name.as_posix() for unit in units]
    names = _unique_names(plain, full, [mask for mask, _ in suffixes])
    return [
        PlannedOutput(
            unit, out_dir / f"{name}{mask}", out_dir / f"{name}{overlay}" if overlay else None, out_dir / name
        )
        for unit, name, (mask, overlay) in zip(units, names, suffixes, strict=True)
    ]


def _unique_names(plain: list[str], full: list[str], kinds: list[str]) -> list[str]:
    """The rule of `plan_outputs`: `plain` where no other input of the same kind (its mask suffix) has it, else
    `full`, else `full-2`, `full-3`, ... (the first free one, in input order)."""

    def key(name: str, kind: str) -> tuple[str, str]:
        return name.casefold(), kind

    counts = Counter(key(name, kind) for name, kind in zip(plain, kinds, strict=True))
    taken = {key(name, kind) for name, kind in zip(plain, kinds, strict=True) if counts[key(name, kind)] == 1}
    names = []
    for short, long, kind in zip(plain, full, kinds, strict=True):
        if counts[key(short, kind)] == 1:
            names.append(short)
            continue
        name, number = long, 1
        while key(name, kind) in taken:
            number += 1
            name = f"{long}-{number}"
        taken.add(key(name, kind))
        names.append(name)
    return names


def output_settings(cfg: Config, dicom_output: DicomOutput = "nifti") -> OutputSettings:
    """What the formats need of a run to read its inputs and write its predictions."""
    return OutputSettings(
        num_classes=cfg.data.num_classes,
        source=cfg.data.source,
        segments=tuple(cfg.data.segment_codes()),
        algorithm=cfg.name,
        dicom_output=dicom_output,
    )


def read_input(unit: InputUnit, settings: OutputSettings) -> list[np.ndarray]:
    """A unit's slices as decoded by its format: `(H, W)` or `(H, W, C)` each (a 2-D file: one)."""
    return unit.reader.read_input(unit, settings)


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
        outputs = output_settings(predictor.cfg, dicom_output)
        yield from _predict_planned(predictor, plan, outputs, overwrite, skip_bad, bad)
        _write_skipped(out_dir / SKIPPED_CSV, bad)
    if skipped is not None:
        skipped.extend(bad)


def _predict_planned(
    predictor: SlicePredictor,
    plan: list[PlannedOutput],
    outputs: OutputSettings,
    overwrite: bool,
    skip_bad: bool,
    bad: list[tuple[str, str]],
) -> Iterator[Path]:
    """`predict_paths` once the folder is locked; appends each skipped input's `(file, reason)` to `bad`."""
    settings = preprocessing_of(predictor.cfg.data)
    pending: list[tuple[PlannedOutput, list[np.ndarray], list[np.ndarray]]] = []  # (job, raw slices, preprocessed)
    for job in plan:
        if not overwrite and job.mask.exists():
            yield job.mask
            continue
        try:
            slices = read_input(job.unit, outputs)
            images = [preprocess_image(raw, settings, str(job.source)) for raw in slices]
        except DataError as error:
            if not skip_bad:
                yield from _write_batch(predictor, pending, outputs)  # nothing already read is lost
                raise DataError(
                    error.path, f"{error.problem} (stopped here; --skip-bad skips such inputs and lists them)"
                ) from None
            bad.append((str(job.source), error.problem))
            continue
        pending.append((job, slices, images))
        if job.unit.volume or len(pending) == predictor.cfg.train.batch_size:
            yield from _write_batch(predictor, pending, outputs)
    yield from _write_batch(predictor, pending, outputs)


def _write_batch(
    predictor: SlicePredictor,
    pending: list[tuple[PlannedOutput, list[np.ndarray], list[np.ndarray]]],
    outputs: OutputSettings,
) -> Iterator[Path]:
    """Predict the pending units' slices and have each unit's format write its outputs (the mask last); yields the
    masks and empties `pending`."""
    if not pending:
        return
    images = [image for _, _, unit_images in pending for image in unit_images]
    sizes = [raw.shape[:2] for _, slices, _ in pending for raw in slices]
    masks = iter(_masks(predictor, images, sizes))
    for job, slices, _ in pending:
        unit_masks = [next(masks) for _ in slices]
        prediction = Prediction(job.unit, slices, unit_masks, job.mask, job.overlay)
        job.unit.reader.write_prediction(prediction, outputs)
        yield job.mask
    pending.clear()


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
