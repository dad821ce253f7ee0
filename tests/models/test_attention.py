"""Attention blocks: shapes, identity at γ = 0, weights in (0, 1), gradients, memory guard, config errors."""

import pytest
import torch

from medseg.models import attention as att
from medseg.models import build_model


def _x(channels=8, size=12, batch=2):
    return torch.randn(batch, channels, size, size, requires_grad=True)


BLOCKS = {
    "ChannelAttention": lambda: att.ChannelAttention(8, reduction=4),
    "SpatialAttention": att.SpatialAttention,
    "CBAM": lambda: att.CBAM(8, reduction=4),
    "PositionAttention": lambda: att.PositionAttention(8),
    "ChannelSelfAttention": att.ChannelSelfAttention,
    "DualAttention": lambda: att.DualAttention(8),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_blocks_keep_the_shape_and_pass_gradients(name):
    torch.manual_seed(0)  # a random MLP with 2 hidden ReLUs can be dead for one input: fix the draw
    block = BLOCKS[name]()
    for p in block.parameters():  # move γ off 0 so the attention path itself gets a gradient
        if p.shape == (1,):
            torch.nn.init.constant_(p, 0.5)
    x = _x()
    out = block(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


@pytest.mark.parametrize(
    "block",
    [att.PositionAttention(8), att.ChannelSelfAttention(), att.DualAttention(8)],
    ids=lambda b: type(b).__name__,
)
def test_self_attention_starts_as_identity_and_gamma_switches_it_on(block):
    x = _x()
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    for p in block.parameters():
        if p.shape == (1,):
            torch.nn.init.constant_(p, 1.0)
    assert not torch.allclose(block(x), x)


def test_channel_and_spatial_weights_are_gates_of_the_right_shape():
    x = _x()
    channel = att.ChannelAttention(8, reduction=4).weights(x)
    spatial = att.SpatialAttention().weights(x)
    assert channel.shape == (2, 8, 1, 1) and spatial.shape == (2, 1, 12, 12)
    for w in (channel, spatial):
        assert (w > 0).all() and (w < 1).all()


def test_attention_gate_scales_the_skip_by_coefficients_from_the_coarse_signal():
    gate = att.AttentionGate(skip_channels=6, gate_channels=10)
    skip, coarse = _x(6, 16), torch.randn(2, 10, 8, 8, requires_grad=True)
    alpha = gate.weights(skip, coarse)
    assert alpha.shape == (2, 1, 16, 16) and (alpha > 0).all() and (alpha < 1).all()
    out = gate(skip, coarse)
    torch.testing.assert_close(out, skip * alpha)
    out.sum().backward()
    assert coarse.grad is not None and coarse.grad.abs().sum() > 0


def test_position_attention_refuses_a_map_too_large_for_memory(monkeypatch):
    monkeypatch.setattr(att, "available_bytes", lambda device: 2**20)
    with pytest.raises(MemoryError, match=r"PositionAttention on a 32×32 map \(batch 2\).*coarser stage"):
        att.PositionAttention(8)(torch.randn(2, 8, 32, 32))
    att.PositionAttention(8)(torch.randn(2, 8, 4, 4))  # 16 positions fit in 1 MiB


def test_unknown_attention_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"model.attention must be one of \['none', 'ca', 'sa', 'cbam', 'dual'"):
        build_model({"name": "unet", "attention": "cbma"})
    with pytest.raises(ValueError, match="model.attention_at must be encoder, decoder or both"):
        build_model({"name": "unet", "attention": "ca", "attention_at": "middle"})


def test_attention_placement_puts_blocks_where_asked():
    def kinds(model):
        return {type(m).__name__ for m in model.modules()}

    encoder_only = build_model({"name": "unet", "features": [4, 8, 16], "attention": "cbam", "attention_at": "encoder"})
    assert "CBAM" in kinds(encoder_only.encoder) and "CBAM" not in kinds(encoder_only.decoder)
    decoder_only = build_model({"name": "unet", "features": [4, 8, 16], "attention": "cbam"})
    assert "CBAM" not in kinds(decoder_only.encoder) and "CBAM" in kinds(decoder_only.decoder)
    dual = build_model({"name": "unet", "features": [4, 8, 16], "attention": "dual"})
    assert isinstance(dual.encoder.attention[-1], att.DualAttention)
    assert sum(isinstance(m, att.PositionAttention) for m in dual.modules()) == 1, "PAM only on the bottleneck"
    gated = build_model({"name": "unetpp", "features": [4, 8, 16], "attention": "gate"})
    assert sum(isinstance(m, att.AttentionGate) for m in gated.modules()) == 3  # one per decoder node


def test_plain_unet_checkpoint_keys_are_unchanged_by_the_attention_option():
    keys = set(build_model({"name": "unet", "features": [4, 8, 16]}).state_dict())
    assert all(".attention." not in k and ".gates." not in k for k in keys)
