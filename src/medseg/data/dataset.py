"""From a config's data section to split store rows: reader → cases → splits → store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from medseg.config import DataConfig
from medseg.data.case import Case
from medseg.data.levels import slice_levels
from medseg.data.mask_override import override_masks
from medseg.data.readers import Reader, build_reader
from medseg.data.splits import UNLABELED, draw_labeled, keep_labeled, read_labeled_ids, read_splits, split_by_group
from medseg.data.store import Preprocessing, Store, open_store
from medseg.errors import DataError

__all__ = ["Dataset", "prepare_dataset", "assign_splits", "iterate_batches", "preprocessing_of"]


def preprocessing_of(data: DataConfig) -> Preprocessing:
    return Preprocessing(
        data.size, data.channels, data.num_classes, data.normalize, data.image_resize, data.resolution, data.scale
    )


@dataclass
class Dataset:
    reader: Reader
    cases: list[Case]
    assignment: dict[str, str]
    store: Store

    @cached_property
    def labels(self) -> np.ndarray:
        """Image-level label of every store row, `(N,)` int64; -1 where the case has none."""
        by_id = {c.id: -1 if c.label is None else int(c.label) for c in self.cases}
        return np.array([by_id[case_id] for case_id in self.store.ids], dtype=np.int64)

    @cached_property
    def levels(self) -> np.ndarray:
        """Each store row's position in its group (patient / volume), `(N,)` float32 from 0 (first slice) to 1
        (last); see `medseg.data.levels.slice_levels`."""
        by_id = slice_levels(self.cases)
        return np.array([by_id[case_id] for case_id in self.store.ids], dtype=np.float32)

    def case(self, case_id: str) -> Case:
        """The case of an id."""
        return self._by_id[case_id]

    @cached_property
    def _by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}

    def rows(self, split: str) -> np.ndarray:
        """Store rows of the cases in `split`, in case order."""
        return self.store.index([c.id for c in self.cases if self.assignment.get(c.id) == split])

    def with_masks(self, rows: np.ndarray) -> np.ndarray:
        """The store rows among `rows` that have a mask, in their order."""
        return np.array([r for r in rows if self.store.has_mask(int(r))], dtype=np.int64)


def assign_splits(
    data: DataConfig, cases: Sequence[Case], seed: int, splits: dict[str, str] | None = None
) -> dict[str, str]:
    """The split training uses (case id → train / unlabeled / val / test): `splits` where given, else the config's
    split file or the seeded group split; then the config's labelled list, share or count.

    Raises:
        DataError: a split file of other cases, too few groups for the splits asked for, or a labelled list that
            names cases outside the training split.
    """
    root = data.source.get("root", data.source.get("format"))
    if splits is None and data.split_file:
        splits = read_splits(data.split_file)
        known = {c.id for c in cases}
        unknown = [case_id for case_id in splits if case_id not in known]
        if unknown:
            raise DataError(
                data.split_file,
                f"{len(unknown)} of its {len(splits)} id(s) are not cases of data.source, e.g. {unknown[:3]}: a split "
                "file of another data set (or of a changed one)",
            )
    if splits is None:
        ratios = data.splits.model_dump()
        splits = split_by_group(cases, ratios, seed, data.stratify_by_label)
        empty = [name for name, ratio in ratios.items() if ratio > 0 and name not in splits.values()]
        if empty:
            groups = len({c.group for c in cases})
            wanted = sum(ratio > 0 for ratio in ratios.values())
            raise DataError(
                root,
                f"{groups} group(s) (patients / volumes / blocks) cannot fill the {wanted} splits data.splits asks "
                f"for: {', '.join(empty)} would be empty; add data, or set their ratios to 0",
            )
    if data.labeled_file:
        splits = keep_labeled(splits, read_labeled_ids(data.labeled_file), data.labeled_file)
    semi = data.labeled_ratio is not None or data.labeled_count is not None
    if semi and UNLABELED not in splits.values():
        splits = draw_labeled(cases, splits, seed, data.labeled_ratio, data.labeled_count, data.stratify_by_label)
    return splits


def prepare_dataset(
    data: DataConfig,
    seed: int,
    splits: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    mask_ids: set[str] | None = None,
) -> Dataset:
    """Index the source, split it by group (or reuse `splits`), and open the preprocessed store.

    Args:
        mask_ids: the cases whose masks are read; None = every case, each of which must then have one.

    Raises:
        DataError: an empty dataset, too few groups for the splits asked for, or an unusable case (unless
            `data.skip_bad`).
    """
    reader = build_reader(data.source)
    cases = reader.cases()
    root = data.source.get("root", data.source.get("format"))
    if not cases:
        raise DataError(root, "no images found: the dataset is empty (check data.source)")
    splits = assign_splits(data, cases, seed, splits)
    cases = [c for c in cases if c.id in splits]
    if mask_ids is None:
        mask_ids = {c.id for c in cases if splits[c.id] != UNLABELED}  # unlabelled masks are never opened
    store = open_store(
        reader,
        cases,
        preprocessing_of(data),
        Path(data.cache_dir),
        mask_ids=mask_ids,
        skip_bad=data.skip_bad,
        progress=progress,
    )
    if data.mask_override:
        store = override_masks(store, data.mask_override, {c.id for c in cases if splits[c.id] in ("train", "val")})
    return Dataset(reader, cases, splits, store)


def iterate_batches(
    store: Store,
    rows: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    labels: np.ndarray | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches from the store: `{"image": (B, C, H, W) float32, "mask": (B, H, W) int64, "row": (B,)}`, and
    `"label": (B,)` int64 when `labels` (one per store row, e.g. `Dataset.labels`) is given.

    A native-resolution store's cases differ in size: a batch then holds consecutive rows of one size (whole
    images, for validation and evaluation; training draws patches, see `medseg.data.patches`)."""
    order = rows
    if shuffle:
        order = rows[torch.randperm(len(rows), generator=generator).numpy()]
    stop = len(order) - (len(order) % batch_size if drop_last and len(order) >= batch_size else 0)
    uniform = store.uniform
    for start in range(0, stop, batch_size):
        chunk = np.sort(order[start : start + batch_size]) if not shuffle else order[start : start + batch_size]
        for part in [chunk] if uniform else _same_shape_runs(store, chunk):
            yield _batch(store, part, labels)


def _same_shape_runs(store: Store, rows: np.ndarray) -> list[np.ndarray]:
    """`rows` cut where the stored shape changes."""
    runs, current = [], [rows[0]] if len(rows) else []
    for row in rows[1:]:
        if tuple(store.shapes[row]) == tuple(store.shapes[current[-1]]):
            current.append(row)
        else:
            runs.append(np.array(current))
            current = [row]
    return [*runs, np.array(current)] if current else runs


def _batch(store: Store, rows: np.ndarray, labels: np.ndarray | None) -> dict[str, torch.Tensor]:
    if store.uniform:
        images, masks = np.asarray(store.images[rows], np.float32), np.asarray(store.masks[rows], np.int64)
    else:
        images = np.stack([np.asarray(store.image(r), np.float32) for r in rows])
        masks = np.stack([np.asarray(store.mask(r), np.int64) for r in rows])
    batch = {"image": torch.from_numpy(images), "mask": torch.from_numpy(masks), "row": torch.from_numpy(rows)}
    if labels is not None:
        batch["label"] = torch.from_numpy(labels[rows])
    return batch
