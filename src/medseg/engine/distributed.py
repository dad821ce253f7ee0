"""Data-parallel training across processes started by `torchrun` (one node or several): process group setup,
gradient averaging, batch sharding and a batch norm whose statistics span every process, also on CPU.

Every process draws the same global batch (same seed, same generator), augments it identically and trains on
its own contiguous slice, so the sampling is that of a `DistributedSampler` and a run with N processes sees
the same data as one process with the same global batch. Gradients are averaged with one all-reduce after
each backward pass: the same arithmetic as `DistributedDataParallel`, done explicitly because methods reach
the network through several entry points (decoder branches, twin networks, teachers) and DDP's reducer only
follows calls through its own `forward`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from medseg.engine.device import pick_device

__all__ = [
    "Distributed",
    "setup_distributed",
    "broadcast_weights",
    "broadcast_buffers",
    "average_gradients",
    "DistributedBatchNorm2d",
    "sync_batchnorm",
]


@dataclass(frozen=True)
class Distributed:
    """This process's place: `rank` of `world_size` processes, `local_rank` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This process's contiguous slice of every tensor in a global batch (first dimension)."""
        if not self.enabled:
            return batch
        return {key: value.chunk(self.world_size)[self.rank] for key, value in batch.items()}

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of `value` over the processes."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def from_main(self, value):
        """The main process's `value` (any picklable object), on every process."""
        if not self.enabled:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def average(self, values: torch.Tensor) -> float:
        """The mean of `values` `(N,)` pooled over the processes (each may hold a different N); NaN if none."""
        totals = torch.tensor([float(values.sum()), float(values.numel())], dtype=torch.float64)
        if self.enabled:
            dist.all_reduce(totals)
        return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")

    def any(self, flag: bool) -> bool:
        """True on every process if it is true on one (keeps decisions such as stopping early in step)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([int(flag)])
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


def setup_distributed(device: str = "auto") -> Distributed:
    """Join the process group `torchrun` describes (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`, `MASTER_ADDR`, ...): nccl
    with one GPU per process where the run trains on CUDA (`device`, the config's `train.device`), gloo on CPU. A
    single process returns the default.

    Raises:
        ValueError: the run trains on CUDA but this node has fewer GPUs than processes.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if pick_device(device).type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"torchrun started process {local_rank} on a node with {torch.cuda.device_count()} GPU(s), one GPU "
                    "per process: start at most that many processes per node (--nproc_per_node), or train on the "
                    "CPU with train.device=cpu"
                )
            torch.cuda.set_device(local_rank)
            # nccl for the model's CUDA tensors, gloo for the small CPU tensors (losses, scores, flags)
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group("gloo")
    return Distributed(rank, world_size, local_rank)


def broadcast_weights(model: nn.Module) -> None:
    """Every process starts from the main process's weights and buffers."""
    for tensor in model.state_dict().values():
        dist.broadcast(tensor, 0)


def broadcast_buffers(model: nn.Module) -> None:
    """Every process takes the main process's buffers (batch-norm running statistics drift apart when each
    process normalises its own shard)."""
    for buffer in model.buffers():
        dist.broadcast(buffer, 0)


def average_gradients(model: nn.Module, world_size: int) -> None:
    """Replace every parameter's gradient by its mean over the processes, in one flattened all-reduce. A
    parameter without a gradient here counts as zero, so every process sends the same layout; one without a
    gradient on every process keeps none (the optimiser then skips it, as in a single process)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    device = parameters[0].device
    has_grad = torch.tensor([p.grad is not None for p in parameters], dtype=torch.int32, device=device)
    dist.all_reduce(has_grad)
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for parameter, grad, anywhere in zip(parameters, grads, has_grad.tolist(), strict=True):
        size = grad.numel()
        # copied into the gradient itself, which keeps the parameter's memory layout (channels_last): the fused
        # optimiser reads gradient and parameter element by element in memory order
        parameter.grad = grad.copy_(flat[offset : offset + size].view_as(grad)) if anywhere else None
        offset += size


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are the mean and variance over the whole global batch (every
    process), through a differentiable all-reduce; works with gloo on CPU, where `nn.SyncBatchNorm` does not.
    Outside distributed training it is a plain BatchNorm2d. `(B, C, H, W)` → same shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        channels = x.shape[1]
        values = x.double()  # E[x²] − E[x]² from float64 sums: no cancellation when the mean is large
        count = torch.tensor([values.numel() / channels], dtype=torch.float64, device=x.device)
        totals = all_reduce(torch.cat([values.sum((0, 2, 3)), values.pow(2).sum((0, 2, 3)), count]))
        n = totals[-1]
        mean = totals[:channels] / n
        var = (totals[channels : 2 * channels] / n - mean.pow(2)).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = (1, channels, 1, 1)
        out = ((values - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)).float()
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d → statistics over all processes: `nn.SyncBatchNorm` on GPUs, `DistributedBatchNorm2d`
    elsewhere (weights and running statistics kept)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = DistributedBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(device)
            replacement.load_state_dict(child.state_dict())
            setattr(model, name, replacement)
        else:
            sync_batchnorm(child, device)
    return model
