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
from medseg.data.image_io import binarize_mask, check_finite, to_channels
from medseg.data.readers.base import Reader
from medseg.errors import DataError
from medseg.losses import IGNORE_INDEX

__all__ = ["Store", "Preprocessing", "open_store", "preprocess_image", "normalize"]

log = logging.getLogger(__name__)
STORE_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    size: int = 128
    channels: int = 1
    num_classes: int = 2
    normalize: str = "percentile"
    image_resize: str = "bilinear"


def normalize(image: np.ndarray, how: str) -> np.ndarray:
    """Per-image, per-channel intensity normalisation of `(C, H, W)` float32.

    percentile: clip to the 0.5–99.5th percentiles and scale to [0, 1]; zscore: zero mean, unit std; none.
    """
    if how == "none":
        return image
    out = np.empty_like(image)
    for c, channel in enumerate(image):
        if how == "percentile":
            low, high = np.percentile(channel, (0.5, 99.5))
            out[c] = (np.clip(channel, low, high) - low) / max(high - low, 1e-6)
        else:
            out[c] = (channel - channel.mean()) / max(float(channel.std()), 1e-6)
    return out


def resize_image(image: np.ndarray, size: int, mode: str) -> np.ndarray:
    """`(C, H, W)` float32 → `(C, size, size)`; bilinear with antialiasing, or area."""
    if image.shape[1:] == (size, size):
        return image
    tensor = torch.from_numpy(image)[None]
    if mode == "area":
        out = F.interpolate(tensor, size=(size, size), mode="area")
    else:
        out = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """`(H, W)` uint8 class indices → `(size, size)` with nearest neighbour (pixel-centre aligned)."""
    if mask.shape == (size, size):
        return mask
    tensor = torch.from_numpy(mask)[None, None].float()
    return F.interpolate(tensor, size=(size, size), mode="nearest-exact")[0, 0].to(torch.uint8).numpy()


def preprocess_image(raw: np.ndarray, settings: Preprocessing, path: str) -> np.ndarray:
    """Raw decoded image → `(C, size, size)` float32, checked, normalised and resized."""
    image = to_channels(raw, settings.channels, path)
    check_finite(image, path)
    return resize_image(normalize(image, settings.normalize), settings.size, settings.image_resize)


@dataclass
class Store:
    """Memory-mapped preprocessed cases.

    Attributes:
        ids: case ids, in array order.
        images: `(N, C, S, S)` float16.
        masks: `(N, S, S)` uint8 class indices; `IGNORE_INDEX` (unknown) everywhere for a case stored
            without mask.
        skipped: `(case id, reason)` of the cases left out with `skip_bad`.
    """

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    skipped: list[tuple[str, str]]
    path: Path

    @cached_property
    def position(self) -> dict[str, int]:
        """case id → row."""
        return {case_id: i for i, case_id in enumerate(self.ids)}

    def index(self, ids: Sequence[str]) -> np.ndarray:
        """Rows of the given ids (ids not in the store, e.g. skipped cases, are left out)."""
        return np.array([self.position[i] for i in ids if i in self.position], dtype=np.int64)

    def has_mask(self, i: int) -> bool:
        """Whether any pixel of row `i` has a known class (a case stored without mask has none)."""
        return bool((self.masks[i] != IGNORE_INDEX).any())


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
    path = Path(cache_dir) / _key(reader, cases, mask_ids, settings, skip_bad)
    with _building(path):
        if not (path / "index.json").is_file():
            _build(path, reader, cases, settings, mask_ids, skip_bad, progress)
    index = json.loads((path / "index.json").read_text())
    return Store(
        ids=index["ids"],
        images=np.load(path / "images.npy", mmap_mode="r"),
        masks=np.load(path / "masks.npy", mmap_mode="r"),
        skipped=[tuple(s) for s in index["skipped"]],
        path=path,
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        size, n = settings.size, len(cases)
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.float16, (n, settings.channels, size, size))
        masks = np.lib.format.open_memmap(tmp / "masks.npy", "w+", np.uint8, (n, size, size))
        ids, skipped = [], []
        for i, case in enumerate(cases):
            try:
                image, mask = _load_case(reader, case, settings, case.id in mask_ids)
            except DataError as error:
                if not skip_bad:
                    raise
                skipped.append((case.id, str(error)))
                log.warning("skipping %s", error)
                continue
            row = len(ids)
            images[row] = image
            masks[row] = IGNORE_INDEX if mask is None else mask
            ids.append(case.id)
            if progress:
                progress(i + 1, n)
        if not ids:
            raise DataError(path, f"no usable case among {n}: " + "; ".join(s[1] for s in skipped[:3]))
        images.flush()
        masks.flush()
        del images, masks
        if len(ids) < n:  # compact away the rows of skipped cases
            for name in ("images.npy", "masks.npy"):
                full = np.load(tmp / name, mmap_mode="r")
                np.save(tmp / f"compact-{name}", full[: len(ids)])
                del full
                os.replace(tmp / f"compact-{name}", tmp / name)
        (tmp / "index.json").write_text(json.dumps({"ids": ids, "skipped": skipped, "settings": settings.__dict__}))
        with contextlib.suppress(OSError):  # another process built the same store meanwhile
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_case(
    reader: Reader, case: Case, settings: Preprocessing, with_mask: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    raw = reader.load_image(case)
    image = preprocess_image(raw, settings, case.image)
    if not with_mask:
        return image, None
    if case.mask is None:
        raise DataError(case.image, "image has no mask, but one is required here")
    raw_mask = reader.load_mask(case)
    mask = binarize_mask(np.asarray(raw_mask), case.mask, settings.num_classes)
    if mask.shape != raw.shape[:2]:
        raise DataError(case.mask, f"mask size {mask.shape} ≠ image size {raw.shape[:2]} ({case.image})")
    return image, resize_mask(mask, settings.size)
