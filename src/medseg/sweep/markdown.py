"""Markdown tables, and the blocks of a markdown file (RESULTS.md) they are regenerated into, never hand-edited:
the text between `<!-- generated KEY -->` and the next `<!-- /generated -->`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg.atomic import write_text_atomic

__all__ = ["table", "replace_block", "replace_marked_block"]

END = "<!-- /generated -->"


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """The lines of a markdown table: a header of `columns`, then one line per row of cells."""
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    return lines + ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]


def replace_block(text: str, key: str, lines: Sequence[str], where: str = "the text") -> str:
    """`text` with `lines` between its `<!-- generated KEY -->` line and the next `<!-- /generated -->`.

    Raises:
        ValueError: the opening marker is there other than once, or no closing marker follows it (names `where`).
    """
    begin = f"<!-- generated {key} -->"
    if text.count(begin) != 1:
        raise ValueError(f"{where}: expected one line {begin!r}, found {text.count(begin)}")
    start = text.index(begin) + len(begin)
    stop = text.find(END, start)
    if stop < 0:
        raise ValueError(f"{where}: {begin!r} has no closing {END!r} after it")
    return text[:start] + "\n" + "\n".join(lines) + "\n" + text[stop:]


def replace_marked_block(path: str | Path, key: str, lines: Sequence[str]) -> None:
    """`replace_block` in a file, written atomically (the file is left as it was when a marker is missing)."""
    path = Path(path)
    write_text_atomic(path, replace_block(path.read_text(), key, lines, str(path)))
