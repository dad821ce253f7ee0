"""U-Net++ (Zhou et al., DLMIA 2018 / TMI 2019): nested dense skip paths, deep supervision, pruned inference.

Node X(i, j) sits at depth i (resolution H / 2**i) and column j. X(i, 0) is the encoder; for j ≥ 1,
X(i, j) = DoubleConv(concat[X(i, 0), ..., X(i, j-1), Up(X(i+1, j-1))]). The heads read X(0, 1..D).
Head L depends only on the nodes with i + j ≤ L, so `prune=L` computes exactly that sub-network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.models.attention import AttentionGate, make_attention
from medseg.models.base import register_model
from medseg.models.blocks import FOREGROUND_PRIOR, DoubleConv, check_features, init_head_bias
from medseg.models.unet import attention_layout, pad_to_multiple

__all__ = ["UNetPlusPlus"]


@register_model("unetpp")
class UNetPlusPlus(nn.Module):
    """U-Net++ with optional deep supervision.

    Args:
        in_channels: image channels.
        out_channels: logit channels per head.
        features: channels at each depth; depth D = len(features) - 1 (the paper's L1..L4 for D = 4).
        deep_supervision: a 1×1 head on every X(0, j), j = 1..D (needed for `ensemble`, `head` and `prune`);
            without it, one head on X(0, D).
        inference: what plain `forward` returns: "ensemble" (mean of the heads' logits), "head" (head
            `head`), or "prune" (the sub-network of head `head` only).
        head: the level 1..D used by "head" and "prune" (default D).
        attention: none, ca, sa, cbam (after nodes), dual (DANet PAM + CAM on X(D, 0)) or gate (an attention
            gate on each node's concatenated same-depth skips, driven by the node below).
        attention_at: where ca / sa / cbam go: encoder (X(i, 0)), decoder (X(i, j ≥ 1)) or both.
        foreground_prior: initial foreground probability of binary heads (as for U-Net).

    Any H, W work: inputs are padded to a multiple of 2**D and the logits cropped back.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        deep_supervision: bool = True,
        inference: str = "ensemble",
        head: int | None = None,
        attention: str = "none",
        attention_at: str = "decoder",
        foreground_prior: float | None = FOREGROUND_PRIOR,
    ) -> None:
        super().__init__()
        features = check_features(features)
        self.depth = len(features) - 1
        self.deep_supervision = deep_supervision
        self.pool = nn.MaxPool2d(2)
        channels = [in_channels, *features]
        encoder_kind, bottleneck_kind, decoder_kind = attention_layout(attention, attention_at)
        self.encoder = nn.ModuleList(DoubleConv(channels[i], channels[i + 1]) for i in range(self.depth + 1))
        self.encoder_attention = nn.ModuleList(
            make_attention(bottleneck_kind if i == self.depth else encoder_kind, features[i])
            for i in range(self.depth + 1)
        )
        self.ups = nn.ModuleDict()
        self.nodes = nn.ModuleDict()
        self.gates = nn.ModuleDict()
        self.node_attention = nn.ModuleDict()
        for j in range(1, self.depth + 1):
            for i in range(self.depth + 1 - j):
                name = f"x_{i}_{j}"
                self.ups[name] = nn.ConvTranspose2d(features[i + 1], features[i], kernel_size=2, stride=2)
                self.nodes[name] = DoubleConv((j + 1) * features[i], features[i])
                if decoder_kind == "gate":
                    self.gates[name] = AttentionGate(j * features[i], features[i + 1])
                else:
                    self.node_attention[name] = make_attention(decoder_kind, features[i])
        levels = range(1, self.depth + 1) if deep_supervision else [self.depth]
        self.heads = nn.ModuleDict({f"l{j}": nn.Conv2d(features[0], out_channels, kernel_size=1) for j in levels})
        for module in self.heads.values():
            init_head_bias(module, foreground_prior)
        self.set_inference(inference, head)

    @property
    def levels(self) -> list[int]:
        """The levels that have a head."""
        return [int(name[1:]) for name in self.heads]

    @property
    def head_weights(self) -> list[float]:
        """Deep-supervision weights: every head counts the same (the paper's)."""
        return [1.0] * len(self.heads)

    def set_inference(self, inference: str, head: int | None = None) -> None:
        """Choose what `forward` returns (see the class docstring).

        Raises:
            ValueError: an unknown mode, or a level without a head.
        """
        if inference not in ("ensemble", "head", "prune"):
            raise ValueError(f"model.inference must be ensemble, head or prune, got {inference!r}")
        level = self.depth if head is None else head
        if level not in self.levels:
            raise ValueError(
                f"no head at level {level}: heads exist at levels {self.levels}"
                + ("" if self.deep_supervision else " (train with deep_supervision=true for heads at every level)")
            )
        self.inference, self.head = inference, level

    def _columns(self, x: torch.Tensor, level: int) -> list[torch.Tensor]:
        """X(0, 1..level), computing only the nodes with i + j ≤ level. `x` is already padded."""
        grid: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(level + 1):
            grid[i, 0] = self.encoder_attention[i](self.encoder[i](x if i == 0 else self.pool(grid[i - 1, 0])))
        for j in range(1, level + 1):
            for i in range(level + 1 - j):
                name, below = f"x_{i}_{j}", grid[i + 1, j - 1]
                skips = torch.cat([grid[i, k] for k in range(j)], dim=1)
                if name in self.gates:
                    skips = self.gates[name](skips, below)
                node = self.nodes[name](torch.cat([skips, self.ups[name](below)], dim=1))
                grid[i, j] = self.node_attention[name](node) if name in self.node_attention else node
        return [grid[0, j] for j in range(1, level + 1)]

    def forward_heads(self, x: torch.Tensor, level: int | None = None) -> list[torch.Tensor]:
        """Logits of every head up to `level` (default D): list of `(B, C_out, H, W)`, shallow to deep."""
        level = self.depth if level is None else level
        height, width = x.shape[-2:]
        columns = self._columns(pad_to_multiple(x, 2**self.depth)[0], level)
        return [
            self.heads[f"l{j}"](columns[j - 1])[..., :height, :width]
            for j in range(1, level + 1)
            if f"l{j}" in self.heads
        ]

    def forward(self, x: torch.Tensor, prune: int | None = None) -> torch.Tensor:
        """`(B, C_in, H, W)` → logits `(B, C_out, H, W)`.

        Args:
            prune: compute only the sub-network of head `prune` (1..D) and return its logits; overrides the
                configured inference mode.
        """
        height, width = x.shape[-2:]
        if prune is not None or self.inference == "prune":
            level = self.head if prune is None else prune
            if f"l{level}" not in self.heads:
                raise ValueError(f"prune={level}: no head at that level; heads exist at levels {self.levels}")
            column = self._columns(pad_to_multiple(x, 2**self.depth)[0], level)[-1]
            return self.heads[f"l{level}"](column)[..., :height, :width]
        if self.inference == "head" or not self.deep_supervision:
            return self.forward(x, prune=self.head)
        return torch.stack(self.forward_heads(x)).mean(0)
