"""Folder layouts that several formats share: an image folder and a mask folder side by side."""

from __future__ import annotations

from pathlib import Path

__all__ = ["image_and_mask_folders"]

_IMAGE_NAMES = ("images", "image", "imgs", "img")
_MASK_NAMES = ("masks", "mask", "labels", "label", "seg", "segmentations")


def image_and_mask_folders(root: Path) -> tuple[str, str] | None:
    """An image folder and a sibling mask folder ("" if none), at most two levels under root, relative to it."""
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        names = {p.name.lower(): p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else {}
        image = next((names[n] for n in _IMAGE_NAMES if n in names), None)
        mask = next((names[n] for n in _MASK_NAMES if n in names), None)
        if image:
            prefix = "" if folder == root else folder.name + "/"
            return prefix + image, (prefix + mask) if mask else ""
    return None
