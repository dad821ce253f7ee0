"""Results files of JSON lines, one line per measured point: read, append, and record with the machine's provenance
(a rerun of a point replaces its earlier line). NaN (an undefined HD95, say) is written as null: JSON has none."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from medseg.atomic import write_text_atomic
from medseg.provenance import machine

__all__ = ["read_rows", "write_rows", "append_rows", "replace_rows", "record_rows"]


def read_rows(path: str | Path, **match: Any) -> list[dict[str, Any]]:
    """The lines of a JSON-lines file as dicts (none if it does not exist), only those whose fields equal `match`
    (`read_rows(path, dataset="lgg")`)."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() else []
    rows = [json.loads(line) for line in lines if line.strip()]
    return [row for row in rows if all(row.get(key) == value for key, value in match.items())]


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """`rows` as the whole file, one JSON line each, written atomically (a crash leaves the old file)."""
    write_text_atomic(Path(path), "".join(json.dumps(_without_nan(row), default=float) + "\n" for row in rows))


def append_rows(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Add `rows` after the file's lines."""
    write_rows(path, [*read_rows(path), *rows])


def replace_rows(
    path: str | Path,
    rows: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    unchanged: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None,
) -> None:
    """Add `rows`, each replacing the line of the same `key(row)`; where `unchanged(old, new)` holds, the old line is
    kept instead (a point kept, not retrained, keeps the machine and minutes of the run that trained it)."""
    old = read_rows(path)
    recorded = {key(row): row for row in old}
    if unchanged is not None:
        rows = [row for row in rows if not (key(row) in recorded and unchanged(recorded[key(row)], row))]
    new = {key(row) for row in rows}
    write_rows(path, [*(row for row in old if key(row) not in new), *rows])


def record_rows(
    path: str | Path,
    rows: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    unchanged: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None,
    **fields: Any,
) -> None:
    """`replace_rows` of `rows`, each with `fields` (the dataset, the config, ...) and the machine (CPU, whether it
    computes bf16 natively, threads, torch) added."""
    replace_rows(path, [{**row, **fields, **machine()} for row in rows], key, unchanged)


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return value
