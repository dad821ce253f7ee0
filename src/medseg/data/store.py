"""The preprocessed store: decode, check, resize and normalise every case once into memory-mapped arrays.

The store lives in `<cache_dir>/<key>/` where the key hashes the sources' fingerprints and the preprocessing
settings; a later epoch or run with the same key opens the arrays and never decodes an image file again.
It is built in a temporary folder and renamed into place, under a lock per key: a process that finds the store
being built waits for it, and the next build removes what a killed one left.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg.data.case import Case
from medseg.data.pixel_checks import binarize_mask, check_finite, to_channels
from medseg.data.readers.base import Reader
from medseg.errors import DataError
from medseg.folders import folder_umask, make_folder
from medseg.losses import IGNORE_INDEX

__all__ = ["Store", "Preprocessing", "open_store", "preprocess_image", "normalize"]

log = logging.getLogger(__name__)
STORE_VERSION = 2  # 2: flat arrays with per-row shapes (square or native resolution)


@dataclass(frozen=True)
class Preprocessing:
    """How source images become stored ones.

    Attributes:
        size: the side of the square every slice is resized to (`resolution: square`).
        resolution: "square" (resized to `size` × `size`) or "native" (each slice at its own size, times `scale`).
        scale: with `resolution: native`, one factor on both sides (the aspect ratio is kept).
    """

    size: int = 128
    channels: int = 1
    num_classes: int = 2
    normalize: str = "percentile"
    image_resize: str = "bilinear"
    resolution: str = "square"
    scale: float = 1.0

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """The stored (H, W) of a source slice of `height` × `width`."""
        if self.resolution == "square":
            return self.size, self.size
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))


def normalize(image: np.ndarray, how: str) -> np.ndarray:
    """Per-image, per-channel intensity normalisation of `(C, H, W)` float32.

    percentile: clip to the 0.5–99.5th percentiles and scale to [0, 1]; zscore: zero mean, unit std; none.
    """
    if how == "none":
        return image
    out = np.empty_like(image)
    for c, channel in enumerate(image):
        if float(channel.max()) - float(channel.min()) > float(np.finfo(np.float32).max):
            channel = channel.astype(np.float64)  # a span beyond float32 (±3e38) would overflow to inf and NaN
        if how == "percentile":
            low, high = np.percentile(channel, (0.5, 99.5))
            out[c] = (np.clip(channel, low, high) - low) / max(high - low, 1e-6)
        else:
            out[c] = (channel - channel.mean()) / max(float(channel.std()), 1e-6)
    return out


def resize_image(image: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
    """`(C, H, W)` float32 → `(C, *shape)`; bilinear with antialiasing, or area."""
    if image.shape[1:] == tuple(shape):
        return image
    tensor = torch.from_numpy(image)[None]
    if mode == "area":
        out = F.interpolate(tensor, size=shape, mode="area")
    else:
        out = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False, antialias=True)
    return out[0].numpy()


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`(H, W)` uint8 class indices → `shape` with nearest neighbour (pixel-centre aligned)."""
    if mask.shape == tuple(shape):
        return mask
    tensor = torch.from_numpy(mask)[None, None].float()
    return F.interpolate(tensor, size=shape, mode="nearest-exact")[0, 0].to(torch.uint8).numpy()


def preprocess_image(raw: np.ndarray, settings: Preprocessing, path: str) -> np.ndarray:
    """Raw decoded image → `(C, H', W')` float32, checked, normalised and resized (`settings.output_shape`)."""
    image = to_channels(raw, settings.channels, path)
    check_finite(image, path)
    return resize_image(
        normalize(image, settings.normalize), settings.output_shape(*image.shape[1:]), settings.image_resize
    )


@dataclass
class Store:
    """Memory-mapped preprocessed cases: every image and mask one after the other in two flat arrays, at each
    case's stored size.

    Attributes:
        ids: case ids, in row order.
        image_data: float16, the images `(C, H, W)` of every row, flattened and concatenated.
        mask_data: uint8, the masks `(H, W)` (class indices; `IGNORE_INDEX` everywhere for a case stored without
            mask), likewise.
        shapes: `(N, 3)` int64: each row's (C, H, W).
        skipped: `(case id, reason)` of the cases left out with `skip_bad`.
        spacing: `(N, 2)` float64 pixel spacing (mm, rows then columns) of the stored images, NaN where the source
            does not say.
    """

    ids: list[str]
    image_data: np.ndarray
    mask_data: np.ndarray
    shapes: np.ndarray
    skipped: list[tuple[str, str]]
    path: Path
    spacing: np.ndarray | None = None

    @cached_property
    def position(self) -> dict[str, int]:
        """case id → row."""
        return {case_id: i for i, case_id in enumerate(self.ids)}

    @cached_property
    def _offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each row's image and mask start in the flat arrays."""
        pixels = self.shapes[:, 1] * self.shapes[:, 2]
        image_sizes = self.shapes[:, 0] * pixels
        return np.concatenate([[0], np.cumsum(image_sizes)[:-1]]), np.concatenate([[0], np.cumsum(pixels)[:-1]])

    @cached_property
    def uniform(self) -> bool:
        """Whether every row has the same shape (a square store): then `images` and `masks` are arrays."""
        return bool((self.shapes == self.shapes[0]).all())

    @property
    def images(self) -> np.ndarray:
        """`(N, C, H, W)` float16 view of a uniform store.

        Raises:
            ValueError: rows of different sizes (a native-resolution store: use `image(i)`).
        """
        return self.image_data.reshape(len(self.ids), *self._uniform_shape())

    @property
    def masks(self) -> np.ndarray:
        """`(N, H, W)` uint8 view of a uniform store (see `images`)."""
        return self.mask_data.reshape(len(self.ids), *self._uniform_shape()[1:])

    def _uniform_shape(self) -> tuple[int, int, int]:
        if not self.uniform:
            raise ValueError(f"{self.path}: cases of different sizes (native resolution); read them one by one")
        return tuple(int(v) for v in self.shapes[0])

    def image(self, i: int) -> np.ndarray:
        """Row `i`'s image `(C, H, W)` float16."""
        start = self._offsets[0][i]
        return self.image_data[start : start + int(np.prod(self.shapes[i]))].reshape(*self.shapes[i])

    def mask(self, i: int) -> np.ndarray:
        """Row `i`'s mask `(H, W)` uint8."""
        start, (_, height, width) = self._offsets[1][i], self.shapes[i]
        return self.mask_data[start : start + height * width].reshape(height, width)

    def index(self, ids: Sequence[str]) -> np.ndarray:
        """Rows of the given ids (ids not in the store, e.g. skipped cases, are left out)."""
        return np.array([self.position[i] for i in ids if i in self.position], dtype=np.int64)

    def has_mask(self, i: int) -> bool:
        """Whether any pixel of row `i` has a known class (a case stored without mask has none)."""
        return bool((self.mask(i) != IGNORE_INDEX).any())


def _key(reader: Reader, cases: Sequence[Case], mask_ids: set[str], settings: Preprocessing, skip_bad: bool) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([STORE_VERSION, settings.__dict__, skip_bad]).encode())
    for case in cases:
        digest.update(f"{case.id}|{reader.fingerprint(case)}|{case.id in mask_ids}\n".encode())
    return digest.hexdigest()[:20]


def open_store(
    reader: Reader,
    cases: Sequence[Case],
    settings: Preprocessing,
    cache_dir: str | Path,
    mask_ids: set[str] | None = None,
    skip_bad: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Store:
    """Open the store for these cases, building it first if no store with the same key exists.

    Args:
        reader: decodes the cases.
        cases: the cases to store.
        settings: preprocessing settings (part of the key).
        cache_dir: where stores live.
        mask_ids: cases whose masks are read; None = every case that has a mask. Masks of other cases are
            never opened.
        skip_bad: leave out unusable cases (listed in `Store.skipped`) instead of failing on the first.
        progress: called with (done, total) while building.

    Raises:
        DataError: an unusable case (without `skip_bad`), or no usable case at all.
    """
    if mask_ids is None:
        mask_ids = {c.id for c in cases if c.mask is not None}
    if not cases:
        raise DataError(cache_dir, "no cases to store: the dataset is empty")
    path = make_folder(cache_dir, "data.cache_dir") / _key(reader, cases, mask_ids, settings, skip_bad)
    with _building(path):
        if not (path / "index.json").is_file():
            _build(path, reader, cases, settings, mask_ids, skip_bad, progress)
    index = json.loads((path / "index.json").read_text())
    return Store(
        ids=index["ids"],
        image_data=np.load(path / "images.npy", mmap_mode="r"),
        mask_data=np.load(path / "masks.npy", mmap_mode="r"),
        shapes=np.array(index["shapes"], dtype=np.int64).reshape(-1, 3),
        skipped=[tuple(s) for s in index["skipped"]],
        path=path,
        spacing=np.array(index["spacing"], dtype=np.float64).reshape(-1, 2),
    )


@contextmanager
def _building(path: Path) -> Iterator[None]:
    """Hold the lock of store `path` (waiting for another process that builds it), and remove the half-built
    folders of a build that was killed (`.<key>.*`, which nobody else can be writing while the lock is held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for stale in path.parent.glob(f".{path.name}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        yield


def _build(
    path: Path,
    reader: Reader,
    cases: Sequence[Case],
    settings: Preprocessing,
    mask_ids: set[str],
    skip_bad: bool,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Decode every case into flat raw files in a temporary folder, then turn them into `.npy` files and rename the
    folder into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        ids, skipped, shapes, spacing = [], [], [], []
        with open(tmp / "images.raw", "wb") as images, open(tmp / "masks.raw", "wb") as masks:
            for i, case in enumerate(cases):
                try:
                    image, mask = _load_case(reader, case, settings, case.id in mask_ids)
                except DataError as error:
                    if not skip_bad:
                        raise
                    skipped.append((case.id, str(error)))
                    log.warning("skipping %s", error)
                    continue
                images.write(image.astype(np.float16).tobytes())
                masks.write((np.full(image.shape[1:], IGNORE_INDEX, np.uint8) if mask is None else mask).tobytes())
                ids.append(case.id)
                shapes.append(list(image.shape))
                spacing.append(_stored_spacing(reader, case, settings))
                if progress:
                    progress(i + 1, len(cases))
        if not ids:
            raise DataError(path, f"no usable case among {len(cases)}: " + "; ".join(s[1] for s in skipped[:3]))
        for name, dtype in (("images", np.float16), ("masks", np.uint8)):
            _raw_to_npy(tmp / f"{name}.raw", tmp / f"{name}.npy", dtype)
        index = {"ids": ids, "skipped": skipped, "shapes": shapes, "spacing": spacing, "settings": settings.__dict__}
        (tmp / "index.json").write_text(json.dumps(index))
        tmp.chmod(0o777 & ~folder_umask())  # mkdtemp's 0700 → what mkdir gives: a colleague shares the cache
        with contextlib.suppress(OSError):  # another process built the same store meanwhile
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _raw_to_npy(raw: Path, npy: Path, dtype: type) -> None:
    """A flat raw file → a 1-D `.npy` of `dtype`, copied in chunks (a large store never sits whole in memory)."""
    count = raw.stat().st_size // np.dtype(dtype).itemsize
    out = np.lib.format.open_memmap(npy, "w+", dtype, (count,))
    source = np.memmap(raw, dtype=dtype, mode="r", shape=(count,))
    chunk = 1 << 24
    for start in range(0, count, chunk):
        out[start : start + chunk] = source[start : start + chunk]
    out.flush()
    del out, source
    raw.unlink()


def _stored_spacing(reader: Reader, case: Case, settings: Preprocessing) -> list[float]:
    """The stored image's pixel spacing in mm (NaN where the source does not give one, or the square resize
    changed it)."""
    source = None if settings.resolution == "square" else reader.spacing(case)
    if source is None:
        return [math.nan, math.nan]
    return [source[0] / settings.scale, source[1] / settings.scale]


def _load_case(
    reader: Reader, case: Case, settings: Preprocessing, with_mask: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    raw = reader.load_image(case)
    image = preprocess_image(raw, settings, case.image)
    if not with_mask:
        return image, None
    if case.mask is None:
        raise DataError(case.image, reader.no_mask_problem)
    raw_mask = reader.load_mask(case)
    mask = binarize_mask(np.asarray(raw_mask), case.mask, settings.num_classes)
    if mask.shape != raw.shape[:2]:
        raise DataError(case.mask, f"mask size {mask.shape} ≠ image size {raw.shape[:2]} ({case.image})")
    return image, resize_mask(mask, image.shape[1:])
