"""Every registered model: forward shape, odd sizes, 1 and 3 input channels, backward."""

import pytest
import torch

from medseg.models import MODELS, build_model

SMALL = {"unet": {"features": [4, 8, 16]}, "unetpp": {"features": [4, 8, 16]}}


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize(("in_channels", "out_channels", "size"), [(1, 1, (32, 32)), (3, 4, (37, 45))])
def test_forward_shape_and_backward(name, in_channels, out_channels, size):
    model = build_model({"name": name, "in_channels": in_channels, "out_channels": out_channels, **SMALL.get(name, {})})
    x = torch.randn(2, in_channels, *size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, out_channels, *size)
    logits.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", MODELS.names())
def test_channels_last_gives_the_same_logits(name):
    model = build_model({"name": name, **SMALL.get(name, {})}).eval()
    x = torch.randn(2, 1, 32, 32)
    expected = model(x)
    fast = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, expected, atol=1e-4, rtol=1e-4)


def test_unknown_model_lists_names():
    with pytest.raises(ValueError, match=r"unknown model 'unte'; available: \['unet'"):
        build_model({"name": "unte"})


def test_unknown_option_suggests_the_nearest():
    with pytest.raises(ValueError, match=r"model.feature: unknown option for model 'unet'; did you mean 'features'"):
        build_model({"name": "unet", "feature": [8, 16]})


def test_binary_head_starts_at_low_foreground_probability():
    model = build_model({"name": "unet", "features": [4, 8]}).eval()
    probs = torch.sigmoid(model(torch.randn(1, 1, 16, 16)))
    assert probs.mean() < 0.1


def test_foreground_prior_sets_the_starting_probability():
    x = torch.randn(1, 1, 16, 16)
    dense = build_model({"name": "unet", "features": [4, 8], "foreground_prior": 0.75}).eval()
    assert torch.sigmoid(dense(x)).mean() > 0.5
    with pytest.raises(ValueError, match=r"model.foreground_prior must be in \(0, 1\)"):
        build_model({"name": "unet", "features": [4, 8], "foreground_prior": 1.5})
