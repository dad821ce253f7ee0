"""Reading 2-D image files (PNG, TIFF, JPEG, BMP; 8/16-bit; grey or RGB) and checking their pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medseg.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "read_image_file", "to_channels", "check_finite", "binarize_mask"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def read_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file.

    Returns:
        `(H, W)` or `(H, W, C)` array in the file's own dtype.

    Raises:
        DataError: the file is missing, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "P":
                img = img.convert("RGB")
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as pil_error:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise DataError(path, f"cannot decode image (truncated or not an image file): {pil_error}") from None
        array = _read_tiff(path, pil_error)
    if array.ndim == 3 and array.shape[2] == 4:  # drop alpha
        array = array[..., :3]
    return array


def _read_tiff(path: Path, pil_error: Exception) -> np.ndarray:
    """Fallback for TIFFs Pillow does not decode (float, multi-sample 16-bit)."""
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for broken files
        raise DataError(path, f"cannot decode TIFF (truncated or corrupt): {error or pil_error}") from None
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) → (H, W, C)
    return array


def to_channels(array: np.ndarray, channels: int, path: str | Path) -> np.ndarray:
    """Bring an `(H, W)` or `(H, W, C)` image to `(channels, H, W)` float32.

    Grey is repeated to 3 channels; several channels are averaged to 1.
    """
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DataError(path, f"expected a 2-D image (H, W) or (H, W, C), got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    have = array.shape[2]
    if have == channels:
        pass
    elif channels == 1:
        array = array.mean(axis=2, keepdims=True)
    elif have == 1:
        array = np.repeat(array, channels, axis=2)
    else:
        raise DataError(path, f"image has {have} channels; cannot convert to data.channels={channels}")
    return np.ascontiguousarray(np.moveaxis(array, 2, 0))


def check_finite(image: np.ndarray, path: str | Path) -> None:
    if not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise DataError(path, f"image has {bad} NaN/inf pixels; expected finite values")


def binarize_mask(mask: np.ndarray, path: str | Path, num_classes: int = 2) -> np.ndarray:
    """Check a mask's values and return it as `(H, W)` uint8 class indices.

    Binary masks (num_classes=2) may be 0/1, 0/255 or 0/65535 (or boolean). Multi-class masks must hold
    integers in [0, num_classes).

    Raises:
        DataError: the mask is not 2-D, holds other values, or is not finite.
    """
    if mask.ndim == 3:
        if mask.shape[2] > 1 and not all(np.array_equal(mask[..., 0], mask[..., c]) for c in range(mask.shape[2])):
            raise DataError(path, f"mask has {mask.shape[2]} different channels; expected a single-channel mask")
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataError(path, f"expected a 2-D mask, got shape {mask.shape}")
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise DataError(path, "mask has NaN/inf values")
    values = np.unique(mask)
    if num_classes == 2:
        nonzero = values[values != 0]
        if len(nonzero) > 1 or (len(nonzero) == 1 and nonzero[0] not in (1, 255, 65535)):
            shown = values[:8].tolist()
            raise DataError(path, f"mask is not binary: values {shown}; expected 0/1 or 0/255")
        return (mask != 0).astype(np.uint8)
    if (values < 0).any() or (values >= num_classes).any() or (values != np.round(values)).any():
        raise DataError(path, f"mask values {values[:8].tolist()} are not class indices in [0, {num_classes})")
    return mask.astype(np.uint8)
