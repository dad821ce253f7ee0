"""What a selection strategy picks from: the candidate cases (training cases without a mask yet), their images,
what is known about them, and the units it picks (single slices, or whole groups) under a per-group quota."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from medseg.data.case import Case

__all__ = ["Pool", "Unit", "Budget", "Pick", "units_of"]


@dataclass(frozen=True)
class Pick:
    """One picked case: its id, group, the strategy's score (higher = wanted more) and why, in words."""

    id: str
    group: str
    score: float
    why: str


@dataclass
class Pool:
    """The candidates of one selection round.

    Attributes:
        candidates: training cases whose masks are not used yet, in a fixed order (index i everywhere below).
        labelled: training cases already labelled (they count against the group quota; diversity covers them).
        image: candidate index → its preprocessed image `(C, H, W)` float32 (as the store holds it).
        labelled_image: labelled index → its preprocessed image `(C, H, W)`.
        foreground: `(N,)` bool, whether each candidate shows a lesion, where known (image labels, or in a simulated
            loop the hidden masks); None where unknown.
        model: signals of a trained model over the candidates (`medseg.selection.signals.ModelSignals`), or None
            at a cold start.
    """

    candidates: list[Case]
    labelled: list[Case]
    image: Callable[[int], np.ndarray]
    labelled_image: Callable[[int], np.ndarray]
    foreground: np.ndarray | None = None
    model: object | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @cached_property
    def labels(self) -> list[int | None]:
        return [case.label for case in self.candidates]

    def cached(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A per-pool value computed once (embeddings, uncertainty), shared by the strategies that use it."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


@dataclass(frozen=True)
class Unit:
    """What a strategy picks at once: one candidate, or with whole groups every candidate of one group."""

    members: tuple[int, ...]  # candidate indices
    group: str


def units_of(pool: Pool, whole_groups: bool) -> list[Unit]:
    """The pool's units: one per candidate, or one per group (its candidates in pool order)."""
    if not whole_groups:
        return [Unit((i,), case.group) for i, case in enumerate(pool.candidates)]
    members: dict[str, list[int]] = {}
    for i, case in enumerate(pool.candidates):
        members.setdefault(case.group, []).append(i)
    return [Unit(tuple(indices), group) for group, indices in members.items()]


class Budget:
    """How many cases are still to pick, and the per-group quota (at most `max_per_group` labelled cases per group,
    the already-labelled ones counted).

    Args:
        count: cases to pick (whole groups may overshoot it by less than one group).
        labelled: the already-labelled cases.
        max_per_group: None = no limit.
    """

    def __init__(self, count: int, labelled: list[Case], max_per_group: int | None) -> None:
        self.count = count
        self.max_per_group = max_per_group
        self.per_group = Counter(case.group for case in labelled)
        self.taken: set[Unit] = set()
        self.picked = 0
        self.parent: Budget | None = None  # a budget this one is a part of (`part`)

    def full(self) -> bool:
        return self.picked >= self.count

    def allows(self, unit: Unit) -> bool:
        if unit in self.taken or self.full():
            return False
        return self.max_per_group is None or self.per_group[unit.group] + len(unit.members) <= self.max_per_group

    def take(self, unit: Unit) -> None:
        self.taken.add(unit)
        self.per_group[unit.group] += len(unit.members)
        self.picked += len(unit.members)
        if self.parent is not None:
            self.parent.picked += len(unit.members)

    def part(self, count: int) -> Budget:
        """A budget for `count` of the cases still to pick, sharing this one's quotas and taken units: what it
        takes counts here too."""
        part = Budget(count, [], self.max_per_group)
        part.per_group, part.taken, part.parent = self.per_group, self.taken, self
        return part
