"""Attention blocks: channel (CA), spatial (SA), CBAM (Woo et al. 2018); DANet's position (PAM) and channel
self-attention (Fu et al. 2019); attention gates (Oktay et al. 2018).

Every block maps `(B, C, H, W) -> (B, C, H, W)`. The recalibration blocks expose `weights(x)`, the map they
multiply with, so that explanations can draw it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import MemoryBudgetError
from medseg.resources import available_bytes

__all__ = [
    "ATTENTION_KINDS",
    "ChannelAttention",
    "SpatialAttention",
    "CBAM",
    "PositionAttention",
    "ChannelSelfAttention",
    "DualAttention",
    "AttentionGate",
    "make_attention",
]

ATTENTION_KINDS = ("none", "ca", "sa", "cbam", "dual", "gate")


class ChannelAttention(nn.Module):
    """Squeeze by average and max pooling, a shared two-layer MLP, sigmoid: one weight per channel.

    Args:
        channels: C.
        reduction: the MLP's hidden width is C / reduction (at least 1).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` → channel weights `(B, C, 1, 1)` in (0, 1)."""
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class SpatialAttention(nn.Module):
    """Channel-wise mean and max, a k×k conv, sigmoid: one weight per position."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` → spatial weights `(B, 1, H, W)` in (0, 1)."""
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class CBAM(nn.Module):
    """Channel attention, then spatial attention on the recalibrated features."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class PositionAttention(nn.Module):
    """DANet position attention: every position attends to every other one.

    `out = γ · V softmax(Qᵀ K)ᵀ + x` with Q, K of C / reduction channels and γ learnt from 0 (identity at
    start). The attention matrix is `(B, HW, HW)`: quadratic in the number of positions, so this block
    belongs on a coarse stage; `forward` refuses, with a message, a size whose matrix would not fit in memory.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self._fits: set[tuple] = set()  # input shapes already checked against free memory

    def check_memory(self, x: torch.Tensor) -> None:
        """Raise MemoryBudgetError if this block's `(B, HW, HW)` matrices of a forward/backward pass cannot fit.

        Checked once per input shape and device (the query costs a device sync on CUDA). A network with several
        such blocks (MSGA has eight) keeps all their matrices for the backward pass: this catches the sizes
        that cannot work at all, not every tight fit.
        """
        key = (tuple(x.shape), str(x.device))
        if key in self._fits:
            return
        batch, _, height, width = x.shape
        positions = height * width
        # energy, softmax and its gradient: three B×N×N float32 matrices (autocast keeps softmax in float32)
        needed = 3 * batch * positions**2 * 4
        free = available_bytes(x.device)
        if free is not None and needed > free:
            raise MemoryBudgetError(
                f"PositionAttention on a {height}×{width} map (batch {batch}) needs about {needed / 2**30:.1f} GiB "
                f"for its {positions}×{positions} attention matrices, but only {free / 2**30:.1f} GiB is free; "
                "apply it on a coarser stage, or lower data.size or train.batch_size"
            )
        self._fits.add(key)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` → `(B, N, N)` with N = HW: row n is how position n spreads its attention."""
        self.check_memory(x)
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C')
        key = self.key(x).flatten(2)  # (B, C', N)
        with torch.autocast(x.device.type, enabled=False):  # energies in float32: bf16 would round them coarsely
            return torch.softmax(torch.bmm(query.float(), key.float()), dim=-1).to(x.dtype)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The residual `γ · attention output`, `(B, C, H, W)`."""
        batch, channels, height, width = x.shape
        attention = self.attention(x)
        value = self.value(x).flatten(2)  # (B, C, N)
        out = torch.bmm(value, attention.transpose(1, 2)).view(batch, channels, height, width)
        return self.gamma * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)


class ChannelSelfAttention(nn.Module):
    """DANet channel attention: every channel attends to every other one, through the `(B, C, C)` Gram matrix.

    `out = γ · softmax(max(E) − E) X + x` with `E = X Xᵀ` (DANet subtracts from the row maximum so that
    dissimilar channels get the larger weight, and for numerical range); γ learnt from 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        with torch.autocast(x.device.type, enabled=False):  # X Xᵀ sums over every position: keep float32
            flat = x.flatten(2).float()  # (B, C, N)
            energy = torch.bmm(flat, flat.transpose(1, 2))  # (B, C, C)
            energy = energy.amax(-1, keepdim=True) - energy
            attention = torch.softmax(energy, dim=-1)
            out = torch.bmm(attention, flat).view(batch, channels, height, width)
        return self.gamma * out.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)


class DualAttention(nn.Module):
    """PAM and channel self-attention in parallel, their residuals summed: `x + PAM(x)' + CAM(x)'`."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.position = PositionAttention(channels, reduction)
        self.channel = ChannelSelfAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.position.attend(x) + self.channel.attend(x)


class AttentionGate(nn.Module):
    """Additive attention gate on a skip connection (Attention U-Net).

    The coarser decoder feature `g` decides which skip positions pass: `α = σ(ψ(ReLU(θ(x) + φ(g)↑)))`,
    output `α · x`. `x`: `(B, C_x, H, W)`; `g`: `(B, C_g, H', W')` (any size, resized to H, W).
    """

    def __init__(self, skip_channels: int, gate_channels: int, inner_channels: int | None = None) -> None:
        super().__init__()
        inner = inner_channels or max(skip_channels // 2, 1)
        self.theta = nn.Conv2d(skip_channels, inner, 1, bias=False)
        self.phi = nn.Conv2d(gate_channels, inner, 1)
        self.psi = nn.Conv2d(inner, 1, 1)

    def weights(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Gate coefficients `(B, 1, H, W)` in (0, 1)."""
        gate = F.interpolate(self.phi(g), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.psi(F.relu(self.theta(x) + gate)))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x, g)


def make_attention(kind: str, channels: int) -> nn.Module:
    """The block that recalibrates a `(B, channels, H, W)` stage output: ca, sa, cbam, dual or none (Identity).

    Raises:
        ValueError: an unknown kind, or `gate` (a gate sits on a skip connection, not on a stage).
    """
    if kind == "none":
        return nn.Identity()
    if kind == "ca":
        return ChannelAttention(channels)
    if kind == "sa":
        return SpatialAttention()
    if kind == "cbam":
        return CBAM(channels)
    if kind == "dual":
        return DualAttention(channels)
    raise ValueError(f"model.attention must be one of {list(ATTENTION_KINDS)}, got {kind!r}")
