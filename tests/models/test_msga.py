"""The multi-scale self-guided attention network: maps, guided attention structure (its losses:
tests/methods/test_msga.py)."""

import pytest
import torch

from medseg.models import build_model
from medseg.models.attention import ChannelSelfAttention, PositionAttention

SPEC = {"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}


def test_forward_maps_give_eight_maps_and_each_semantic_modules_code_and_reconstruction():
    model = build_model(SPEC)
    x = torch.randn(2, 1, 48, 40)
    maps = model.forward_maps(x)
    assert len(maps.logits) == 8 and all(logits.shape == (2, 1, 48, 40) for logits in maps.logits)
    assert len(maps.codes) == 4, "one pair of step-1 / step-2 codes per scale"
    assert all(first.shape == second.shape for first, second in maps.codes)
    assert len(maps.reconstructions) == 8, "one reconstruction per scale and step"
    assert all(decoded.shape == inputs.shape for decoded, inputs in maps.reconstructions)


def test_inference_averages_the_four_refined_maps():
    model = build_model(SPEC).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        refined = model.forward_maps(x).logits[4:]
        torch.testing.assert_close(model(x), torch.stack(refined).mean(0), atol=1e-5, rtol=1e-4)


def test_every_scale_and_step_has_its_own_position_and_channel_attention():
    model = build_model(SPEC)
    assert sum(isinstance(m, PositionAttention) for m in model.modules()) == 8
    assert sum(isinstance(m, ChannelSelfAttention) for m in model.modules()) == 8
    assert len(model.semantic) == 2, "one guiding encoder–decoder per step, shared by the scales"


def test_fused_map_runs_at_the_output_stride():
    seen = []
    model = build_model({**SPEC, "output_stride": 2})
    model.fuse.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    model(torch.randn(1, 1, 64, 64))
    assert seen == [(1, 4, 32, 32)]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("features", [4, 8], "needs 4 positive channel counts"), ("output_stride", 8, "2 or 4")],
)
def test_bad_options_are_named(option, value, message):
    with pytest.raises(ValueError, match=message):
        build_model({**SPEC, option: value})
