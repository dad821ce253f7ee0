"""Folder locks and the clean-up of killed atomic writes, shared by training (run folders) and prediction (output
folders). Standard library only (and medseg.errors), so importing it pulls in no model, method or training code."""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path

from medseg.errors import RunFolderError

__all__ = ["LOCK_NAME", "locked", "remove_temporary_files", "remove_temporary_copies"]

LOCK_NAME = ".lock"
# `medseg.atomic.atomic_path`'s names: `.<target>.tmp.<mkstemp's 8 characters><suffix>`; nothing else is removed
TEMPORARY_NAME = re.compile(r"\..+\.tmp\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)*")


@contextmanager
def locked(folder: str | Path, what: str = "training") -> Iterator[None]:
    """Hold an exclusive lock on `folder/.lock` for the block; another process asking for it fails at once.

    Args:
        folder: the folder to lock (created if missing).
        what: what the holder does there, for the message another process gets ("training", "predicting").

    Raises:
        RunFolderError: another process holds the lock.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_NAME, "a+")  # noqa: SIM115  (held open for the lock's lifetime)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(
                f"{folder}: another medseg process is {what} here (it holds {folder / LOCK_NAME}); wait for it to "
                "finish or choose another folder"
            ) from None
        yield
    finally:
        handle.close()  # releases the lock


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Remove the `.<name>.tmp.<8 characters>[suffix]` files that atomic writes leave when a process is killed
    mid-write, anywhere under `folder` (a user's own `.notes.tmp.txt` does not match); call it only while holding
    the folder's lock.

    Args:
        folder: the folder to clean (a missing one has nothing to clean).

    Returns:
        The files removed.
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp.*"):
        if path.is_file() and TEMPORARY_NAME.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_temporary_copies(target: str | Path) -> list[Path]:
    """Remove what killed atomic writes of `target` left beside it (`.<target name>.tmp.<8 characters>[suffix]`):
    a writer of one file (an export) that holds no folder lock cleans only its own file's leftovers.

    Returns:
        The files removed.
    """
    target = Path(target)
    removed = []
    for path in target.parent.glob(f".{glob_escape(target.name)}.tmp.*"):
        if path.is_file() and TEMPORARY_NAME.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
