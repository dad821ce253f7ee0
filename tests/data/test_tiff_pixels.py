"""TIFF pixels as stored: every dtype, channel count and page count kept or refused, never narrowed in silence."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg.data.readers.image_files import read_image_file
from medseg.data.store import normalize
from medseg.errors import DataError


@pytest.mark.parametrize(
    "array",
    [
        np.array([[2_883_401_929, 1]], np.uint32),  # read as int32 by Pillow: −1,411,565,367
        np.array([[-5, 3]], np.int8),  # read as uint8 by Pillow
        np.full((4, 4, 3), 40_000, np.uint16),  # 16-bit RGB: Pillow gives 8 bits
        np.arange(32, dtype=np.uint8).reshape(4, 4, 2),  # two channels: Pillow keeps one
    ],
)
def test_tiff_pixels_keep_their_dtype_and_channels(tmp_path, array):
    path = tmp_path / "x.tif"
    colour = array.ndim == 3 and array.shape[2] == 3
    tifffile.imwrite(path, array, photometric="rgb" if colour else "minisblack", planarconfig="contig")
    read = read_image_file(path)
    assert read.dtype == array.dtype and np.array_equal(read, array)


def test_a_stack_of_pages_is_refused_not_read_as_its_first_page(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"stack.tif: TIFF holds 5 page\(s\)"):
        read_image_file(path)
    pages = [Image.fromarray(np.full((8, 8), i, np.uint8)) for i in range(3)]
    pages[0].save(tmp_path / "lzw.tif", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    with pytest.raises(DataError, match="lzw.tif: TIFF holds 3"):
        read_image_file(tmp_path / "lzw.tif")


def test_an_lzw_tiff_without_imagecodecs_still_reads(tmp_path):
    image = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    Image.fromarray(image).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    assert np.array_equal(read_image_file(tmp_path / "lzw.tif"), image)


def test_a_float_image_spanning_the_float32_range_normalises_to_finite_values():
    image = np.linspace(-3e38, 3e38, 64, dtype=np.float32).reshape(1, 8, 8)
    for how in ("percentile", "zscore"):
        out = normalize(image, how)
        assert np.isfinite(out).all() and out.std() > 0
