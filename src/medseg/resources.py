"""How much memory a device has free, for checks that must fail with a message rather than an OOM kill."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["available_bytes"]


def available_bytes(device: torch.device) -> int | None:
    """Bytes that can still be allocated on `device` (CUDA: free device memory; CPU: Linux `MemAvailable`),
    or None where that cannot be known."""
    if device.type == "cuda":
        # free on the device plus what PyTorch holds in its cache but has not handed out
        return (
            torch.cuda.mem_get_info(device)[0]
            + torch.cuda.memory_reserved(device)
            - torch.cuda.memory_allocated(device)
        )
    if device.type != "cpu":
        return None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
