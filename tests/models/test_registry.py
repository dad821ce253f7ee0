"""Every registered model and attention variant: forward shape, odd sizes, 1 and 3 input channels, backward."""

import pytest
import torch

from medseg.models import MODELS, DeepSupervised, build_model
from medseg.models.msga import MSGA

SMALL = {
    "unet": {"features": [4, 8, 16]},
    "unetpp": {"features": [4, 8, 16]},
    "msga": {"features": [4, 8, 16, 16], "width": 4, "blocks": 1},
    "mtnet": {"features": [4, 8, 16]},
}
CLASSIFIERS = {"classifier"}  # image logits, not maps: tested in tests/explain/test_cam.py
VARIANTS = [
    *({"name": name, **SMALL[name]} for name in MODELS.names() if name not in CLASSIFIERS),
    *({"name": "unet", "features": [4, 8, 16], "attention": kind} for kind in ["ca", "sa", "cbam", "dual", "gate"]),
    {"name": "unet", "features": [4, 8, 16], "attention": "cbam", "attention_at": "both"},
    *({"name": "unetpp", "features": [4, 8, 16], "attention": kind} for kind in ["cbam", "dual", "gate"]),
    {
        "name": "mtnet",
        "features": [4, 8, 16],
        "attentions": ["none", "none", "none"],
        "upsampling": ["transpose", "bilinear", "nearest"],
    },
]


def test_every_registered_model_is_covered():
    assert set(MODELS.names()) == set(SMALL) | CLASSIFIERS


def _all_logits(model, x):
    """The outputs every parameter contributes to: every head, and MSGA's maps, codes and reconstructions."""
    if isinstance(model, MSGA):
        maps = model.forward_maps(x)
        return [*maps.logits, *(code for pair in maps.codes for code in pair), *(d for d, _ in maps.reconstructions)]
    if isinstance(model, DeepSupervised):
        return model.forward_heads(x)
    return [model(x)]


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: "-".join(str(v) for k, v in s.items() if k != "features"))
@pytest.mark.parametrize(("in_channels", "out_channels", "size"), [(1, 1, (32, 32)), (3, 4, (37, 45))])
def test_forward_shape_and_backward(spec, in_channels, out_channels, size):
    model = build_model({**spec, "in_channels": in_channels, "out_channels": out_channels})
    x = torch.randn(2, in_channels, *size, requires_grad=True)
    assert model(x).shape == (2, out_channels, *size)
    sum(out.float().mean() for out in _all_logits(model, x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing[:5]}"


@pytest.mark.parametrize("spec", VARIANTS, ids=lambda s: "-".join(str(v) for k, v in s.items() if k != "features"))
def test_channels_last_gives_the_same_logits(spec):
    model = build_model(spec).eval()
    x = torch.randn(2, 1, 32, 32)
    expected = model(x)
    fast = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, expected, atol=1e-4, rtol=1e-4)


def test_unknown_model_lists_names():
    with pytest.raises(ValueError, match=r"unknown model 'unte'; available: \['classifier', 'msga', 'mtnet', 'unet'"):
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
