"""Where each slice lies in its volume: the slice level, a cue a classifier can learn instead of the lesion."""

from __future__ import annotations

import re
from collections.abc import Iterable

from medseg.data.case import Case

__all__ = ["slice_levels"]


def _natural_key(case_id: str) -> list[int | str]:
    """`"p_2"` before `"p_10"`: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", case_id)]


def slice_levels(cases: Iterable[Case]) -> dict[str, float]:
    """Each case's relative position in its group, 0 (first slice) to 1 (last).

    Slices are ordered by `Case.slice` where every case of the group has one, else by their ids with numbers
    compared as numbers (`TCGA_x_2` before `TCGA_x_10`, as slices of a folder are named). A group of one case is
    at 0.5. Where a group's slices are not one volume (figshare's patients), the ranks mean nothing.
    """
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group or case.id, []).append(case)
    levels = {}
    for members in groups.values():
        if all(c.slice is not None for c in members):
            members = sorted(members, key=lambda c: (c.slice, _natural_key(c.id)))
        else:
            members = sorted(members, key=lambda c: _natural_key(c.id))
        last = len(members) - 1
        for rank, case in enumerate(members):
            levels[case.id] = rank / last if last else 0.5
    return levels
