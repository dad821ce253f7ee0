"""Checks on decoded pixels that every format shares: channels, finiteness, and mask values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import DataError

__all__ = ["binarize_mask", "check_finite", "to_channels"]


def to_channels(array: np.ndarray, channels: int, path: str | Path) -> np.ndarray:
    """Bring an `(H, W)` or `(H, W, C)` image to `(channels, H, W)` float32.

    Grey is repeated to 3 channels; several channels are averaged to 1.

    Args:
        array: the decoded image.
        channels: channels wanted (`data.channels`).
        path: the image's source, for messages.

    Raises:
        DataError: not 2-D, empty, non-numeric, beyond the float32 range, or channels that cannot be converted.
    """
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DataError(path, f"expected a 2-D image (H, W) or (H, W, C), got shape {array.shape}")
    if 0 in array.shape:
        raise DataError(path, f"image is {array.shape[0]}×{array.shape[1]}: empty; expected at least 1×1 pixels")
    if array.dtype.kind not in "biuf":
        raise DataError(path, f"pixel type {array.dtype} is not supported; expected integers, floats or booleans")
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        check_finite(array, path)
        if np.abs(array).max() > np.finfo(np.float32).max:
            raise DataError(path, f"image has values beyond ±{np.finfo(np.float32).max:.1e}, the float32 range")
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
    """Refuse NaN or infinite pixels.

    Args:
        image: any array.
        path: the image's source, for the message.

    Raises:
        DataError: some pixels are NaN or infinite.
    """
    if not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise DataError(path, f"image has {bad} NaN/inf pixels; expected finite values")


def binarize_mask(mask: np.ndarray, path: str | Path, num_classes: int = 2) -> np.ndarray:
    """Check a mask's values and return it as `(H, W)` uint8 class indices.

    Binary masks (num_classes=2) may be 0/1, 0/255 or 0/65535 (or boolean). Multi-class masks must hold
    integers in [0, num_classes).

    Raises:
        DataError: the mask is not 2-D, is empty or non-numeric, holds other values, or is not finite.
    """
    if mask.size == 0 or mask.dtype.kind not in "biuf":
        raise DataError(path, f"mask is empty or not numeric (shape {mask.shape}, type {mask.dtype})")
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
