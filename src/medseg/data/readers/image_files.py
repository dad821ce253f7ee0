"""Reading 2-D image files (PNG, TIFF, JPEG, BMP; 8/16-bit; grey or RGB).

Decoding limits: only these four formats are decoded (whatever the suffix says), an image above `MAX_PIXELS`
is refused from its header before any pixel is decoded (a tiny file can claim a huge size), and an image with
a zero-sized side, more than 4 channels or a non-numeric pixel type is refused. Every problem is a `DataError`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from medseg.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "check_image_size", "read_image_file"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
MAX_PIXELS = 89_478_485  # Pillow's own default limit (about 0.25 GB as 24-bit RGB): H × W above it is refused
MAX_CHANNELS = 4
_PILLOW_FORMATS = ("PNG", "TIFF", "JPEG", "BMP")  # never hand a file to another plugin (e.g. EPS runs Ghostscript)
_TO_RGB = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBa")
_TO_GREY = ("LA", "La")


def read_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file, within the limits above.

    Args:
        path: a PNG, TIFF, JPEG or BMP file.

    Returns:
        `(H, W)` or `(H, W, C)` array with C ≤ 3 (a fourth, alpha channel is dropped), in the file's own numeric
        dtype.

    Raises:
        DataError: the file is missing, truncated, not an image, empty, too large, or not a 2-D image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    if _is_tiff(path):
        array = _read_tiff(path)  # tifffile keeps every dtype, channel and page; Pillow narrows or drops some
    else:
        try:
            array = _read_with_pillow(path)
        except DataError:
            raise
        except Exception as error:  # Pillow raises many types (OSError, SyntaxError, struct.error...) on bad files
            raise DataError(path, f"cannot decode image (truncated or not an image file): {error}") from None
    array = _checked_layout(path, array)
    if array.ndim == 3 and array.shape[2] == 4:  # drop alpha
        array = array[..., :3]
    return array


def _read_with_pillow(path: Path) -> np.ndarray:
    """Decode with Pillow, refusing a too large or empty image from its header, before `load()`.

    Raises:
        DataError: too large or empty (then no other decoder is tried).
        Exception: whatever Pillow raises for a file it cannot decode.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow warns at 1×, raises at 2× its limit
        try:
            img = Image.open(path, formats=_PILLOW_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            limit = _mpx(MAX_PIXELS)
            raise DataError(path, f"image is above the {limit} this reader decodes (Pillow: {error})") from None
        with img:
            check_image_size(path, img.height, img.width)
            img.load()
            if img.mode in _TO_RGB:
                img = img.convert("RGB")
            elif img.mode in _TO_GREY:
                img = img.convert("L")
            return np.asarray(img)


def check_image_size(path: str | Path, height: int, width: int) -> None:
    """Refuse an empty image or one above `MAX_PIXELS`, from the size its header claims.

    Args:
        path: the file, for the message.
        height: rows.
        width: columns.

    Raises:
        DataError: a side is 0, or height × width is above `MAX_PIXELS`.
    """
    if height <= 0 or width <= 0:
        raise DataError(path, f"image is {height}×{width}: empty; expected at least 1×1 pixels")
    if height * width > MAX_PIXELS:
        raise DataError(
            path,
            f"image is {height}×{width} ({_mpx(height * width)}), above the {_mpx(MAX_PIXELS)} this reader decodes",
        )


def _mpx(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} Mpx"


def _is_tiff(path: Path) -> bool:
    """A TIFF by its first bytes (little- or big-endian, classic or BigTIFF), whatever the suffix says."""
    with path.open("rb") as handle:
        head = handle.read(4)
    return head[:2] in (b"II", b"MM") and head[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+")


_IMAGE_AXES = ("YX", "YXS", "SYX", "CYX", "YXC")  # one 2-D image, its samples (channels) last or first


def _read_tiff(path: Path) -> np.ndarray:
    """A TIFF's one image, in its own dtype and channels; sizes are checked before decoding.

    Raises:
        DataError: unreadable, empty, too large, or not one 2-D image (a stack of pages or a volume).
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            _check_tiff_shape(path, shape)
            if len(tif.series) > 1 or len(tif.pages) > 1 or axes not in _IMAGE_AXES:
                raise DataError(
                    path,
                    f"TIFF holds {len(tif.pages)} page(s) of shape {shape} (axes {axes}); expected one 2-D image "
                    "(a stack of pages or a volume is not one image: save each slice as its own file)",
                )
            array = series.asarray()
    except DataError:
        raise
    except Exception as error:  # tifffile raises many types for broken files
        if "imagecodecs" in str(error):  # LZW or JPEG compression, without the imagecodecs package: Pillow decodes it
            return _read_one_page_with_pillow(path)
        raise DataError(path, f"cannot decode TIFF (truncated or corrupt): {error}") from None
    if axes in ("SYX", "CYX"):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) → (H, W, C)
    return array


def _read_one_page_with_pillow(path: Path) -> np.ndarray:
    """A single-page TIFF through Pillow (its one page checked first).

    Raises:
        DataError: more than one page, or undecodable.
    """
    try:
        with Image.open(path, formats=("TIFF",)) as img:
            pages = img.n_frames
        if pages > 1:
            raise DataError(path, f"TIFF holds {pages} pages; expected one 2-D image (save each slice as its own file)")
        return _read_with_pillow(path)
    except DataError:
        raise
    except Exception as error:  # Pillow raises many types on bad files
        raise DataError(path, f"cannot decode TIFF (truncated or corrupt): {error}") from None


def _check_tiff_shape(path: Path, shape: tuple[int, ...]) -> None:
    if 0 in shape:
        raise DataError(path, f"image is {'×'.join(map(str, shape))}: empty; expected at least 1×1 pixels")
    if len(shape) > 3 or math.prod(shape) > MAX_PIXELS * MAX_CHANNELS:
        raise DataError(
            path,
            f"TIFF holds an array of shape {shape}; expected one 2-D image (H, W) or (H, W, C) of at most "
            f"{_mpx(MAX_PIXELS)} with at most {MAX_CHANNELS} channels",
        )


def _checked_layout(path: Path, array: np.ndarray) -> np.ndarray:
    """The promise of `read_image_file`: a non-empty `(H, W)` or `(H, W, C ≤ 4)` numeric array."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > MAX_CHANNELS):
        raise DataError(
            path,
            f"image has shape {array.shape}; expected a 2-D image (H, W) or (H, W, C) with at most "
            f"{MAX_CHANNELS} channels (a stack of pages or a volume is not one image)",
        )
    if 0 in array.shape:
        raise DataError(path, f"image is {'×'.join(map(str, array.shape))}: empty; expected at least 1×1 pixels")
    if array.dtype.kind not in "biuf":
        raise DataError(path, f"pixel type {array.dtype} is not supported; expected integers, floats or booleans")
    return array
