"""`medseg data inspect`: what a dataset holds and what is wrong with it, before any training."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from medseg.data.pixel_checks import binarize_mask, check_finite, to_channels
from medseg.data.readers import build_reader
from medseg.data.readers.inputs import input_kinds, source_of_folder
from medseg.errors import DataError
from medseg.ui import labelled

__all__ = ["source_for", "inspect_source", "print_report", "Inspection"]

_IMAGE_NAMES = ("images", "image", "imgs", "img")
_MASK_NAMES = ("masks", "mask", "labels", "label", "seg", "segmentations")


def source_for(path: str | Path, format: str | None = None, **options: Any) -> dict[str, Any]:
    """The `data.source` for a config file or a dataset folder (format guessed unless given).

    Raises:
        DataError: the path does not exist.
    """
    path = Path(path)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from medseg.config import load_config

        return load_config(path).data.source
    if not path.is_dir():
        raise DataError(path, "not a folder or a config file")
    given = {k: v for k, v in options.items() if v is not None}
    if format:
        return {"format": format, "root": str(path), **given}
    return {**source_of_folder(path), **given}


@dataclass
class Inspection:
    source: dict[str, Any]
    cases: int = 0
    with_mask: int = 0
    nonempty_masks: int = 0
    groups: int = 0
    sizes: Counter = field(default_factory=Counter)
    dtypes: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    mask_classes: dict[int, str] = field(default_factory=dict)  # a dataset.json's class names


def inspect_config(path: str | Path) -> Inspection:
    """`inspect_source` of a config's `data.source`, with what the config adds that training checks: its
    `data.channels` and `data.num_classes`, and whether its cases fill the splits it asks for (and its labelled
    list names training cases).

    Raises:
        ConfigError: the config does not load.
        DataError: the source folder or an index file is unusable.
    """
    from medseg.config import load_config
    from medseg.data.splits import keep_labeled, read_labeled_ids, split_by_group

    cfg = load_config(path)
    data = cfg.data
    result = inspect_source(data.source, data.num_classes, channels=data.channels)
    cases = build_reader(data.source).cases()
    if not cases:
        return result
    ratios = data.splits.model_dump()
    try:
        assignment = split_by_group(cases, ratios, cfg.seed, data.stratify_by_label)
        empty = [name for name, ratio in ratios.items() if ratio > 0 and name not in assignment.values()]
        if empty:
            result.problems.append(
                f"{path}: {result.groups} group(s) cannot fill the splits data.splits asks for: {', '.join(empty)} "
                "would be empty"
            )
        if data.labeled_file:
            keep_labeled(assignment, read_labeled_ids(data.labeled_file), data.labeled_file)
    except ValueError as error:  # DataError and ConfigError are ValueErrors
        result.problems.append(str(error))
    return result


def inspect_source(
    source: dict[str, Any], num_classes: int = 2, limit: int | None = None, channels: int | None = None
) -> Inspection:
    """Decode every case (or the first `limit`) and collect statistics and problems.

    A bad file does not stop the inspection: each is reported once (a volume's slices share one line), and the
    statistics count the cases that decode.

    Args:
        source: a `data.source` section.
        num_classes: classes the masks may hold.
        limit: inspect only the first cases.
        channels: the channels training converts each image to (`data.channels`); None: each image's own.

    Raises:
        DataError: the source folder or an index file is unusable.
    """
    reader = build_reader(source)
    cases = reader.cases()
    result = Inspection(source=source, cases=len(cases), groups=len({c.group for c in cases}))
    result.mask_classes = reader.class_names()  # an nnU-Net dataset.json's
    if result.mask_classes:
        num_classes = max(len(result.mask_classes), 2)
    if not cases:
        result.problems.append(f"{source.get('root')}: no images found ({input_kinds()}): the dataset is empty")
        return result
    seen: set[str] = set()

    def problem(text: str) -> None:
        if text not in seen:
            seen.add(text)
            result.problems.append(text)

    for case in cases[:limit]:
        try:
            image = reader.load_image(case)
        except DataError as error:
            problem(str(error))
            continue
        result.labels[case.label] += 1
        result.sizes[f"{image.shape[0]}×{image.shape[1]}"] += 1
        result.dtypes[str(image.dtype)] += 1
        result.channels[1 if image.ndim == 2 else image.shape[2]] += 1
        try:  # the pixel checks training makes (finite, within float32), whatever channels the config asks for
            to_channels(image, channels or (1 if image.ndim == 2 else image.shape[2]), case.image)
            check_finite(image, case.image)
        except DataError as error:
            problem(str(error))
        if case.mask is None:
            if reader.expects_masks():
                problem(f"{case.image}: image has no mask")
            continue
        try:
            mask = binarize_mask(np.asarray(reader.load_mask(case)), case.mask, num_classes)
        except DataError as error:
            problem(str(error))
            continue
        result.with_mask += 1
        result.nonempty_masks += int(mask.any())
        if mask.shape != image.shape[:2]:
            problem(f"{case.mask}: mask size {mask.shape} ≠ image size {image.shape[:2]}")
    return result


def print_report(result: Inspection, console: Console) -> None:
    table = Table(title=f"{result.source.get('root', '')} ({result.source['format']})", show_header=False)
    table.add_row("cases (2-D slices)", str(result.cases))
    table.add_row("groups (patients / volumes / blocks)", str(result.groups))
    table.add_row("with a mask", str(result.with_mask))
    if result.mask_classes:
        names = ", ".join(f"{k}: {v}" for k, v in sorted(result.mask_classes.items()))
        table.add_row("mask classes (dataset.json)", f"{names} → data.num_classes: {max(len(result.mask_classes), 2)}")
    if result.with_mask:
        share = result.nonempty_masks / result.with_mask
        table.add_row(
            "masks with foreground",
            f"{result.nonempty_masks} ({share:.0%}); empty {result.with_mask - result.nonempty_masks}",
        )
    table.add_row("image sizes", ", ".join(f"{k}: {v}" for k, v in result.sizes.most_common(5)))
    table.add_row("pixel types", ", ".join(f"{k}: {v}" for k, v in result.dtypes.most_common()))
    table.add_row("channels", ", ".join(f"{k}: {v}" for k, v in sorted(result.channels.items())))
    if any(k is not None for k in result.labels):
        table.add_row("image-level labels", ", ".join(f"{k}: {v}" for k, v in sorted(result.labels.items(), key=str)))
    table.add_row("problems", str(len(result.problems)))
    console.print(table)
    for problem in result.problems[:20]:
        console.print(labelled("  problem:", "red", str(problem)), soft_wrap=True)
    if len(result.problems) > 20:
        console.print(f"  ... and {len(result.problems) - 20} more")
    console.print(f"data.source for a config: {result.source}", highlight=False, soft_wrap=True)
