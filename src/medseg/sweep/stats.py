"""Figures over seeds: mean ± sd, per-seed margins paired with a baseline on the same draw, and the cells and
machine notes of the tables made from them."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from medseg.convergence import checkpoint_for_change

__all__ = ["mean_sd", "cell", "points", "paired_margins", "machines", "drift_guarded"]


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd of the seeds' values (sd 0 for one seed).

    Raises:
        statistics.StatisticsError: no value.
    """
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cell(values: Iterable[float | None], digits: int = 4) -> str:
    """`0.6410 ± 0.0150` over the values that are not None, the value alone for one, `—` for none."""
    present = [value for value in values if value is not None]
    if not present:
        return "—"
    mean, spread = mean_sd(present)
    return f"{mean:.{digits}f}" if len(present) == 1 else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def points(differences: Iterable[float]) -> str:
    """Dice differences as signed points: `+12.8 ± 1.5`, `+3.1` for one, `—` for none."""
    values = [100 * value for value in differences]
    if not values:
        return "—"
    mean, spread = mean_sd(values)
    return f"{mean:+.1f}" if len(values) == 1 else f"{mean:+.1f} ± {spread:.1f}"


def paired_margins(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], key: str) -> list[float]:
    """`row[key]` minus the baseline's on the same seed (the same labelled draw), for the rows whose seed the baseline
    has; the baseline's rows are keyed by their `seed`. A row without a value under `key` (an older row lacking the
    lesion-slice figures) counts in no margin, on either side."""
    by_seed = {row["seed"]: row[key] for row in baseline if row.get(key) is not None}
    return [row[key] - by_seed[row["seed"]] for row in rows if row["seed"] in by_seed and row.get(key) is not None]


def drift_guarded(row: dict[str, Any], figure: str = "test_dice") -> float | None:
    """A row's test figure (`figure`: "test_dice", "test_dice_lesion") at the checkpoint `eval.checkpoint: auto`
    takes: the last, unless validation fell by more than 0.02 over the last 30% of training (the row's
    `val_change_last_30pct`), then the best-validated. None where the row lacks that figure."""
    return row.get(f"{figure}_{checkpoint_for_change(row.get('val_change_last_30pct'))}")


def machines(rows: Iterable[dict[str, Any]]) -> str:
    """The rows' CPUs, each with whether it computes bf16 natively: `AMD EPYC (bf16: yes); ...`."""
    found = sorted({(row["cpu"], row["bf16"]) for row in rows})
    return "; ".join(f"{cpu} (bf16: {'yes' if bf16 else 'no'})" for cpu, bf16 in found)
