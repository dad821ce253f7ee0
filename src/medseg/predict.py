"""Predict masks for new images: 2-D image files (mask + overlay PNGs), figshare `.mat` files, NIfTI volumes
(a NIfTI mask volume with the input's affine). Outputs are written atomically; existing outputs are kept,
so an interrupted run picks up where it stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from medseg.atomic import atomic_path
from medseg.data.dataset import preprocessing_of
from medseg.data.image_io import IMAGE_SUFFIXES, read_image_file
from medseg.data.readers.figshare import read_cjdata
from medseg.data.readers.nifti import load_volume, nifti_stem
from medseg.data.store import preprocess_image
from medseg.errors import DataError
from medseg.inference import Predictor
from medseg.overlay import overlay, save_png

__all__ = ["predict_paths", "expand_inputs", "read_slice"]


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


def _probabilities(predictor: Predictor, slices: list[np.ndarray], sources: str) -> torch.Tensor:
    """Raw 2-D slices (same shape) → probabilities `(N, K, H, W)` at their own resolution."""
    settings = preprocessing_of(predictor.cfg.data)
    batch = torch.from_numpy(np.stack([preprocess_image(s, settings, sources) for s in slices]))
    probs = torch.cat([predictor.probabilities(chunk) for chunk in batch.split(predictor.cfg.train.batch_size)])
    height, width = slices[0].shape[:2]
    if probs.shape[-2:] != (height, width):
        probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
    return probs


def predict_paths(
    target: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    threshold: float | None = None,
    overwrite: bool = False,
    mode: str | None = None,
) -> Iterator[Path]:
    """Predict every input; yields each mask file written (or already present and kept).

    Args:
        target: a run folder (uses best.pt) or a checkpoint file.
        inputs: files or folders.
        out_dir: where `<stem>_mask.png` + `<stem>_overlay.png` (2-D) or `<stem>_mask.nii.gz` go.
        threshold: probability threshold for binary models (default: the run's eval.threshold).
        overwrite: recompute outputs that already exist.
        mode: inference mode of a multi-head model ("ensemble", "head=K", "prune=L").
    """
    predictor = Predictor.load(target, mode=mode)
    if threshold is not None:
        predictor.cfg.eval.threshold = threshold
    out_dir = Path(out_dir)
    scale = 255 if predictor.cfg.data.num_classes == 2 else 1
    for path in expand_inputs(inputs):
        if _is_nifti(path):
            target_path = out_dir / f"{nifti_stem(path)}_mask.nii.gz"
            if overwrite or not target_path.exists():
                _predict_volume(predictor, path, target_path)
            yield target_path
            continue
        mask_path = out_dir / f"{path.stem}_mask.png"
        if overwrite or not mask_path.exists():
            raw = read_slice(path)
            mask = predictor.masks_from(_probabilities(predictor, [raw], str(path)))[0]
            channels_first = np.moveaxis(raw, -1, 0) if raw.ndim == 3 else raw
            save_png(out_dir / f"{path.stem}_overlay.png", overlay(channels_first, mask))
            save_png(mask_path, mask * scale)  # the mask last: its presence marks the case done
        yield mask_path


def _predict_volume(predictor: Predictor, path: Path, target: Path) -> None:
    axis = int(predictor.cfg.data.source.get("axis", 2))
    volume = load_volume(str(path))
    slices = [np.take(volume, i, axis=axis) for i in range(volume.shape[axis])]
    masks = predictor.masks_from(_probabilities(predictor, slices, str(path)))  # (N, H, W)
    mask_volume = np.moveaxis(masks, 0, axis)
    source = nib.load(str(path))
    image = nib.Nifti1Image(mask_volume.astype(np.uint8), source.affine, source.header)
    image.set_data_dtype(np.uint8)
    with atomic_path(target, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)
