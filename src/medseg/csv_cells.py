"""CSV files medseg writes for people to open in a spreadsheet: text cells that a spreadsheet would run as a
formula (`=HYPERLINK(...)` in a file or group name) are written with a leading `'`, which spreadsheets show as
text; `read_cell` undoes it, so ids round-trip exactly through `splits.csv` or `picks.csv`."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg.atomic import write_text_atomic

__all__ = ["write_csv", "safe_cell", "read_cell"]

_ACTIVE = ("=", "+", "-", "@", "\t", "\r", "'")  # a formula's first characters, and the escape itself


def safe_cell(value: Any) -> Any:
    """A text cell that starts like a formula (or with the escape) gets a leading `'`; other values are kept."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_ACTIVE) else value


def read_cell(text: str) -> str:
    """A text cell as written by `safe_cell`, back to its value."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_ACTIVE) else text


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """`header` and `rows` to `path`, atomically, every text cell through `safe_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    write_text_atomic(path, buffer.getvalue())
