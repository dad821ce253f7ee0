"""Predict masks for new images: 2-D image files (mask + overlay PNGs), figshare `.mat` files, NIfTI volumes
(a NIfTI mask volume with the input's affine), with a PyTorch checkpoint or an exported ONNX model. Outputs are
written atomically; existing outputs are kept, so an interrupted run picks up where it stopped. This module
imports no model, method or training code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from medseg.atomic import atomic_path
from medseg.config import Config
from medseg.data.dataset import preprocessing_of
from medseg.data.image_io import IMAGE_SUFFIXES, read_image_file
from medseg.data.readers.figshare import read_cjdata
from medseg.data.readers.nifti import load_volume, nifti_stem
from medseg.data.store import preprocess_image
from medseg.errors import DataError
from medseg.overlay import overlay, save_png

__all__ = ["SlicePredictor", "predict_paths", "expand_inputs", "read_slice"]


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given; folders → the images, `.mat` and NIfTI files inside (sorted, recursive).

    Raises:
        DataError: an input does not exist, or nothing predictable was found.
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and _predictable(p))
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(item, "input not found")
    if not files:
        raise DataError(
            ", ".join(map(str, inputs)), f"no input images found (looked for {', '.join(IMAGE_SUFFIXES)}, .mat, .nii)"
        )
    return files


def read_slice(path: Path) -> np.ndarray:
    """A 2-D input as decoded: figshare `.mat` → `(H, W)`; image file → `(H, W)` or `(H, W, C)`."""
    return read_cjdata(path, ("image",))["image"] if path.suffix.lower() == ".mat" else read_image_file(path)


def _predictable(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + (".mat",) or _is_nifti(path)


class SlicePredictor(Protocol):
    """What prediction needs of a model: the PyTorch `Predictor` or the ONNX `OnnxPredictor`."""

    cfg: Config

    def probabilities(self, images: torch.Tensor) -> torch.Tensor: ...

    def masks_from(self, probs: torch.Tensor) -> np.ndarray: ...


def _masks(predictor: SlicePredictor, slices: list[np.ndarray], sources: list[str]) -> list[np.ndarray]:
    """Raw 2-D slices (any sizes) → `(H, W)` uint8 masks at each slice's own resolution, in device batches."""
    settings = preprocessing_of(predictor.cfg.data)
    images = [preprocess_image(raw, settings, source) for raw, source in zip(slices, sources, strict=True)]
    batch = torch.from_numpy(np.stack(images))
    probs = torch.cat([predictor.probabilities(chunk) for chunk in batch.split(predictor.cfg.train.batch_size)])
    masks = []
    for raw, prob in zip(slices, probs, strict=True):
        height, width = raw.shape[:2]
        if prob.shape[-2:] != (height, width):
            prob = F.interpolate(prob[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        masks.append(predictor.masks_from(prob[None])[0])
    return masks


def predict_paths(
    predictor: SlicePredictor, inputs: list[str | Path], out_dir: str | Path, overwrite: bool = False
) -> Iterator[Path]:
    """Predict every input, streaming: 2-D files are read and predicted `train.batch_size` at a time, a volume's
    slices in batches; yields each mask file written (or already present and kept).

    Args:
        predictor: a loaded `Predictor` (PyTorch) or `OnnxPredictor`.
        inputs: files or folders.
        out_dir: where `<stem>_mask.png` + `<stem>_overlay.png` (2-D) or `<stem>_mask.nii.gz` go.
        overwrite: recompute outputs that already exist (otherwise they are kept: an interrupted run resumes).
    """
    out_dir = Path(out_dir)
    scale = 255 if predictor.cfg.data.num_classes == 2 else 1
    pending: list[tuple[Path, np.ndarray]] = []

    def flush() -> Iterator[Path]:
        masks = _masks(predictor, [raw for _, raw in pending], [str(path) for path, _ in pending])
        for (path, raw), mask in zip(pending, masks, strict=True):
            channels_first = np.moveaxis(raw, -1, 0) if raw.ndim == 3 else raw
            save_png(out_dir / f"{path.stem}_overlay.png", overlay(channels_first, mask))
            mask_path = out_dir / f"{path.stem}_mask.png"
            save_png(mask_path, mask * scale)  # the mask last: its presence marks the case done
            yield mask_path
        pending.clear()

    for path in expand_inputs(inputs):
        if _is_nifti(path):
            target_path = out_dir / f"{nifti_stem(path)}_mask.nii.gz"
            if overwrite or not target_path.exists():
                _predict_volume(predictor, path, target_path)
            yield target_path
            continue
        mask_path = out_dir / f"{path.stem}_mask.png"
        if not overwrite and mask_path.exists():
            yield mask_path
            continue
        pending.append((path, read_slice(path)))
        if len(pending) == predictor.cfg.train.batch_size:
            yield from flush()
    if pending:
        yield from flush()


def _predict_volume(predictor: SlicePredictor, path: Path, target: Path) -> None:
    axis = int(predictor.cfg.data.source.get("axis", 2))
    volume = load_volume(str(path))
    slices = [np.take(volume, i, axis=axis) for i in range(volume.shape[axis])]
    mask_volume = np.moveaxis(np.stack(_masks(predictor, slices, [str(path)] * len(slices))), 0, axis)
    source = nib.load(str(path))
    image = nib.Nifti1Image(mask_volume.astype(np.uint8), source.affine, source.header)
    image.set_data_dtype(np.uint8)
    with atomic_path(target, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)
