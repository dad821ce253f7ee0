"""Where a measurement was made: the machine's CPU, whether medseg computes bf16 natively there, threads, torch.

These machines differ by up to 3× in speed, so every benchmark row carries this."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from medseg.engine.device import autocast_dtype

__all__ = ["machine"]


def machine() -> dict[str, str | bool | int]:
    """The CPU's model name, whether medseg trains in bf16 on it, the torch threads and version."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    bf16 = autocast_dtype(torch.device("cpu"), True) == torch.bfloat16
    return {"cpu": model, "bf16": bf16, "threads": torch.get_num_threads(), "torch": torch.__version__}
