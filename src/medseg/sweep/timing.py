"""Timing for the speed benchmarks: the median of repeated calls after warm-up, FLOPs counted by torch, and the
machine's matmul ceiling the measured speeds are compared with."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["median_seconds", "synchronize", "count_flops", "matmul_gflops"]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    call: Callable[[], object], repeats: int, warmup: int = 2, device: torch.device = torch.device("cpu")
) -> float:
    """The median wall time of `repeats` calls of `call`, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(call: Callable[[], object]) -> float:
    """The floating-point operations torch counts in one call (a multiply-add counts 2)."""
    with FlopCounterMode(display=False) as counter:
        call()
    return float(counter.get_total_flops())


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 10) -> float:
    """The GFLOP/s of an n×n matmul in `dtype` on the CPU: the ceiling a network's speed is a share of."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats) / 1e9
