"""Markdown tables, and the blocks of a markdown file (RESULTS.md) they are regenerated into, never hand-edited:
the text between `<!-- generated KEY -->` and the next `<!-- /generated -->`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg.atomic import write_text_atomic

__all__ = ["table", "replace_marked_block"]

END = "<!-- /generated -->"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """The lines of a markdown table: a header of `columns`, then one line per row of cells."""
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    return lines + ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]


def replace_marked_block(path: str | Path, key: str, lines: Sequence[str]) -> None:
    """Put `lines` between the file's `<!-- generated KEY -->` line and the next `<!-- /generated -->`.

    Raises:
        ValueError: the file holds the opening marker other than once, or no closing marker after it.
    """
    path = Path(path)
    begin = f"<!-- generated {key} -->"
    text = path.read_text()
    if text.count(begin) != 1:
        raise ValueError(f"{path}: expected one line {begin!r}, found {text.count(begin)}")
    start = text.index(begin) + len(begin)
    stop = text.find(END, start)
    if stop < 0:
        raise ValueError(f"{path}: {begin!r} has no closing {END!r} after it")
    write_text_atomic(path, text[:start] + "\n" + "\n".join(lines) + "\n" + text[stop:])
