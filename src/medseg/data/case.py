"""The Case: the unit every reader produces and every split respects."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One 2-D slice and what is known about it.

    Attributes:
        id: unique name, used in splits.csv, metrics and output file names.
        image: the image source (a path, or `phantom:SEED:INDEX`).
        mask: the mask source, or None when the case has no mask.
        label: image-level label (e.g. 1 = lesion present), or None.
        group: patient / volume / block; a group never crosses a split.
        slice: index along the slicing axis for slices of a volume, else None.
    """

    id: str
    image: str
    mask: str | None = None
    label: int | None = None
    group: str = ""
    slice: int | None = None
