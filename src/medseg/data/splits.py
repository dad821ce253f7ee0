"""Group-aware train/val/test splits: a pure function of (cases, ratios, seed), saved as splits.csv."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.atomic import write_text_atomic
from medseg.data.case import Case
from medseg.errors import DataError

__all__ = ["SPLITS", "UNLABELED", "split_by_group", "draw_labeled", "write_splits", "read_splits"]

SPLITS = ("train", "val", "test")
UNLABELED = "unlabeled"  # training cases used without their masks (semi-supervised runs)


def split_by_group(cases: Sequence[Case], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """Assign each case to a split so that no group is on two sides.

    Groups are shuffled with `seed`, then filled greedily so that each split's share of *cases* approaches
    its ratio (groups differ in size). Every split with a positive ratio gets at least one group when there
    are enough groups.

    Returns:
        case id → split name.
    """
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    wanted = [s for s in SPLITS if ratios.get(s, 0) > 0]
    targets = {s: ratios.get(s, 0) * len(cases) for s in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    assignment: dict[str, str] = {}
    for rank, index in enumerate(order):
        group = names[index]
        remaining = len(order) - rank
        empty = [s for s in wanted if counts[s] == 0]
        if empty and remaining <= len(empty):
            split = empty[0]  # guarantee each requested split one group
        else:
            split = max(wanted, key=lambda s: (targets[s] - counts[s]) / max(targets[s], 1e-9))
        counts[split] += len(groups[group])
        for case in groups[group]:
            assignment[case.id] = split
    return assignment


def draw_labeled(
    cases: Sequence[Case], assignment: dict[str, str], seed: int, ratio: float | None = None, count: int | None = None
) -> dict[str, str]:
    """Keep the masks of a share (`ratio`) or a number (`count`) of the training cases, drawn by group; the
    other training cases move to the `unlabeled` split. At least one group stays labelled.

    Returns:
        the new assignment (case id → split).
    """
    groups: dict[str, list[str]] = {}
    for case in cases:
        if assignment.get(case.id) == "train":
            groups.setdefault(case.group, []).append(case.id)
    names = sorted(groups)
    total = sum(len(ids) for ids in groups.values())
    wanted = count if count is not None else round((ratio or 1.0) * total)
    kept, labeled = 0, set()
    for index in np.random.default_rng(seed + 7919).permutation(len(names)):
        if kept >= wanted and labeled:
            break
        labeled.add(names[index])
        kept += len(groups[names[index]])
    keep = {case_id for name in labeled for case_id in groups[name]}
    return {
        case_id: UNLABELED if split == "train" and case_id not in keep else split
        for case_id, split in assignment.items()
    }


def write_splits(path: str | Path, cases: Sequence[Case], assignment: dict[str, str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "group", "split"])
    for case in cases:
        if case.id in assignment:
            writer.writerow([case.id, case.group, assignment[case.id]])
    write_text_atomic(path, buffer.getvalue())


def read_splits(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "splits file not found")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"id", "split"} <= set(rows[0]):
        raise DataError(path, f"expected columns id,group,split; found {list(rows[0])}")
    known = (*SPLITS, UNLABELED)
    for line, row in enumerate(rows, start=2):
        if row["split"] not in known:
            raise DataError(path, f"line {line}: split {row['split']!r} is not one of {list(known)}")
    return {row["id"]: row["split"] for row in rows}
