"""Folders a setting names (`output_dir`, `data.cache_dir`, an output folder): made if missing, or one line naming
the setting when the path, or a folder above it, is a file."""

from __future__ import annotations

import os
from pathlib import Path

from medseg.errors import ConfigError

__all__ = ["make_folder", "folder_umask"]


def make_folder(path: str | Path, setting: str) -> Path:
    """`path` as an existing folder (created with its parents where missing).

    Raises:
        ConfigError: `path` or a folder above it is a file (or cannot be created), naming `setting`.
    """
    path = Path(path)
    for above in [path, *path.parents]:
        if above.exists() and not above.is_dir():
            where = "is a file" if above == path else f"lies below a file ({above})"
            raise ConfigError(f"{setting}: {path} {where}; expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{setting}: cannot create the folder {path} ({error.strerror})") from None
    return path


def folder_umask() -> int:
    """The process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
