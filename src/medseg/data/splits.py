"""Group-aware train/val/test splits: a pure function of (cases, ratios, seed), saved as splits.csv."""

from __future__ import annotations

import csv
import io
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.csv_cells import read_cell, write_csv
from medseg.data.case import Case
from medseg.errors import ConfigError, DataError

__all__ = [
    "SPLITS",
    "UNLABELED",
    "split_by_group",
    "draw_labeled",
    "keep_labeled",
    "read_labeled_ids",
    "write_splits",
    "read_splits",
]

SPLITS = ("train", "val", "test")
UNLABELED = "unlabeled"  # training cases used without their masks (semi-supervised runs)


def split_by_group(
    cases: Sequence[Case], ratios: dict[str, float], seed: int, stratify: bool = False
) -> dict[str, str]:
    """Assign each case to a split so that no group is on two sides.

    Groups are shuffled with `seed`, then filled greedily so that each split's share of *cases* approaches
    its ratio (groups differ in size). Every split with a positive ratio gets at least one group when there
    are enough groups. With `stratify`, this is done within each stratum (the groups whose most common image
    label is the same), so that every split holds the labels in about the dataset's proportions.

    Returns:
        case id → split name.
    """
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for groups in _strata(cases, stratify):
        assignment.update(_fill_splits(groups, ratios, rng))
    return assignment


def _fill_splits(groups: dict[str, list[Case]], ratios: dict[str, float], rng: np.random.Generator) -> dict[str, str]:
    """The greedy fill of `split_by_group` over one set of groups (group name → its cases)."""
    names = sorted(groups)
    order = rng.permutation(len(names))
    total = sum(len(members) for members in groups.values())
    wanted = [s for s in SPLITS if ratios.get(s, 0) > 0]
    targets = {s: ratios.get(s, 0) * total for s in SPLITS}
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


def _strata(cases: Sequence[Case], stratify: bool) -> list[dict[str, list[Case]]]:
    """The cases' groups (group name → cases), all in one stratum, or with `stratify` one stratum per most common
    image label of a group (a tie goes to the label that sorts first as text), in that order."""
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    if not stratify:
        return [groups]
    if all(case.label is None for case in cases):
        raise ConfigError(
            "data.stratify_by_label: no case has an image label to stratify by; give the reader the labels "
            "(e.g. data.source.labels_csv) or leave it off"
        )
    strata: dict[str, dict[str, list[Case]]] = {}
    for name, members in groups.items():
        labels = Counter(str(case.label) for case in members)
        label = min(labels, key=lambda value: (-labels[value], value))
        strata.setdefault(label, {})[name] = members
    return [strata[label] for label in sorted(strata)]


def draw_labeled(
    cases: Sequence[Case],
    assignment: dict[str, str],
    seed: int,
    ratio: float | None = None,
    count: int | None = None,
    stratify: bool = False,
) -> dict[str, str]:
    """Keep the masks of a share (`ratio`) or a number (`count`) of the training cases, drawn by group; the
    other training cases move to the `unlabeled` split. At least one group stays labelled. With `stratify`, the
    draw takes groups from each stratum (see `split_by_group`) in turn, the one with the smallest labelled share
    next, so that the labelled cases hold the image labels in about the training set's proportions.

    A seed's draws are nested: its labelled cases at a smaller share are among those at a larger one.

    Returns:
        the new assignment (case id → split).
    """
    training = [case for case in cases if assignment.get(case.id) == "train"]
    rng = np.random.default_rng(seed + 7919)
    queues = []  # per stratum: its groups' case ids, still to draw, in the order they are drawn
    for groups in _strata(training, stratify):
        names = sorted(groups)
        queues.append(deque([case.id for case in groups[names[i]]] for i in rng.permutation(len(names))))
    sizes = [sum(len(ids) for ids in queue) for queue in queues]
    wanted = count if count is not None else round((ratio or 1.0) * sum(sizes))
    drawn = [0] * len(queues)  # cases drawn per stratum
    kept: list[str] = []
    while (len(kept) < wanted or not kept) and any(queues):
        stratum = min((i for i, queue in enumerate(queues) if queue), key=lambda i: drawn[i] / sizes[i])
        ids = queues[stratum].popleft()
        kept += ids
        drawn[stratum] += len(ids)
    keep = set(kept)
    return {
        case_id: UNLABELED if split == "train" and case_id not in keep else split
        for case_id, split in assignment.items()
    }


def read_labeled_ids(path: str | Path) -> list[str]:
    """The ids of a labelled list: one per line, or a CSV whose header has an `id` column (`medseg select`'s
    picks.csv); blank lines and lines starting with `#` are ignored.

    Raises:
        DataError: the file is missing, unreadable as text, empty, or lists an id twice.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "labelled list not found (data.labeled_file)")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as error:
        raise DataError(path, f"labelled list is not UTF-8 text ({error.reason})") from None
    lines = [line for line in lines if line and not line.startswith("#")]
    if lines and "," in lines[0]:
        rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
        if "id" not in (rows[0] if rows else {}):
            raise DataError(path, f"a CSV labelled list needs an 'id' column; found {lines[0]!r}")
        lines = [read_cell(row["id"]) for row in rows]
    if not lines:
        raise DataError(path, "labelled list holds no id")
    twice = sorted(case_id for case_id, n in Counter(lines).items() if n > 1)
    if twice:
        raise DataError(path, f"labelled list names {len(twice)} id(s) twice, e.g. {twice[:3]}")
    return lines


def keep_labeled(assignment: dict[str, str], ids: Sequence[str], source: str | Path) -> dict[str, str]:
    """Keep the masks of exactly the training cases `ids` (read from `source`); the other training cases move to
    the `unlabeled` split.

    Raises:
        DataError: an id that is not a training case (unknown, or in validation or test: their masks must not
            train), naming `source` and a few of them.
    """
    keep = set(ids)
    outside = sorted(case_id for case_id in keep if assignment.get(case_id) not in ("train", UNLABELED))
    if outside:
        where = Counter(assignment.get(case_id, "no case") for case_id in outside)
        raise DataError(
            source,
            f"{len(outside)} labelled id(s) are not training cases ({dict(where)}), e.g. {outside[:3]}: pick from the "
            "training split (medseg select does), or check the file belongs to this data set and split",
        )
    return {
        case_id: (("train" if case_id in keep else UNLABELED) if split in ("train", UNLABELED) else split)
        for case_id, split in assignment.items()
    }


def write_splits(path: str | Path, cases: Sequence[Case], assignment: dict[str, str]) -> None:
    rows = [[case.id, case.group, assignment[case.id]] for case in cases if case.id in assignment]
    write_csv(path, ["id", "group", "split"], rows)


def read_splits(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "splits file not found")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"id", "split"} <= set(reader.fieldnames or ()):
                raise DataError(path, f"expected columns id,group,split; found {reader.fieldnames}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(path, f"not a splits CSV ({error})") from None
    known = (*SPLITS, UNLABELED)
    for line, row in enumerate(rows, start=2):
        if row["split"] not in known:
            raise DataError(path, f"line {line}: split {row['split']!r} is not one of {list(known)}")
    return {read_cell(row["id"]): row["split"] for row in rows}
