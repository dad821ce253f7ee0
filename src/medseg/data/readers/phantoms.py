"""Synthetic brain-like slices, some with a textured lesion: seeded, for the demo and fast tests."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from medseg.data.case import Case
from medseg.data.readers.base import READERS, Reader, ReaderOptions

__all__ = ["PhantomReader", "make_phantom"]


class PhantomOptions(ReaderOptions):
    count: int = 120
    size: int = 128
    seed: int = 0
    lesion_fraction: float = 0.7
    slices_per_group: int = 6


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float, angle: float) -> np.ndarray:
    """Normalised radius of every pixel w.r.t. a rotated ellipse (< 1 inside)."""
    cos, sin = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    return np.sqrt((u / rx) ** 2 + (v / ry) ** 2)


def make_phantom(seed: int, index: int, size: int, lesion_fraction: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """One phantom slice.

    Args:
        seed: dataset seed; with `index` it fixes the slice exactly.
        index: slice number.
        size: side in pixels.
        lesion_fraction: probability that the slice holds a lesion.

    Returns:
        image `(size, size)` float32 in about [0, 1], mask `(size, size)` uint8 (1 = lesion, may be empty).
    """
    rng = np.random.default_rng([seed, index])
    coords = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    angle = rng.uniform(-0.3, 0.3)
    ry, rx = rng.uniform(0.75, 0.9), rng.uniform(0.6, 0.75)
    head = _ellipse(yy, xx, 0.0, 0.0, ry, rx, angle)
    brain = head < 0.88
    smooth = gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), size / 32)
    image = np.where(head < 1.0, 0.85, 0.0).astype(np.float32)  # skull ring
    image[brain] = 0.42 + 0.6 * smooth[brain]
    for side in (-1, 1):  # ventricles
        ventricle = _ellipse(yy, xx, rng.uniform(-0.15, 0.05), side * 0.12, 0.22, 0.07, side * 0.3 + angle)
        image[ventricle < 1.0] = 0.15
    mask = np.zeros((size, size), np.uint8)
    if rng.random() < lesion_fraction:
        radius = rng.uniform(0.1, 0.22)
        distance = rng.uniform(0.15, 0.55 - radius / 2)
        theta = rng.uniform(0, 2 * np.pi)
        cy, cx = distance * np.sin(theta) * ry, distance * np.cos(theta) * rx
        phi = np.arctan2(yy - cy, xx - cx)
        wobble = 1.0 + sum(rng.uniform(-0.15, 0.15) * np.cos(k * phi + rng.uniform(0, 6.3)) for k in (2, 3, 5))
        inside = (np.hypot(yy - cy, xx - cx) / (radius * wobble) < 1.0) & brain
        texture = gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.0)
        image[inside] = rng.uniform(0.7, 0.85) + 0.25 * texture[inside]
        mask[inside] = 1
    bias = 1.0 + 0.15 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))
    image = image * bias + rng.normal(0.0, 0.03, image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


@READERS.register("phantoms")
class PhantomReader(Reader):
    """`count` phantom slices; every `slices_per_group` consecutive slices form one group ("subject").

    Options:
        count, size, seed, lesion_fraction, slices_per_group: see `make_phantom`.
    """

    Options = PhantomOptions
    options: PhantomOptions

    def cases(self) -> list[Case]:
        opts = self.options
        cases = []
        for index in range(opts.count):
            source = f"phantom:{opts.seed}:{index}"
            _, mask = self._make(index)
            cases.append(
                Case(
                    id=f"phantom_{index:04d}",
                    image=source,
                    mask=source,
                    label=int(mask.any()),
                    group=f"subject_{index // opts.slices_per_group:03d}",
                )
            )
        return cases

    def _make(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        opts = self.options
        return make_phantom(opts.seed, index, opts.size, opts.lesion_fraction)

    @staticmethod
    def _index(case: Case) -> int:
        return int(case.image.rsplit(":", 1)[1])

    def load_image(self, case: Case) -> np.ndarray:
        return self._make(self._index(case))[0]

    def load_mask(self, case: Case) -> np.ndarray:
        return self._make(self._index(case))[1]

    def fingerprint(self, case: Case) -> str:
        opts = self.options
        return f"{case.image}:{opts.size}:{opts.lesion_fraction}"
