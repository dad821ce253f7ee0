"""The multi-scale self-guided attention network: outputs, auxiliary losses, guided attention structure."""

import pytest
import torch

from medseg.models import build_model
from medseg.models.attention import ChannelSelfAttention, PositionAttention

SPEC = {"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}


def test_training_outputs_give_eight_maps_and_weighted_auxiliary_losses():
    model = build_model({**SPEC, "guided_weight": 0.5, "reconstruction_weight": 0.2})
    x = torch.randn(2, 1, 48, 40)
    outputs = model.training_outputs(x)
    assert len(outputs.logits) == 8 and all(logits.shape == (2, 1, 48, 40) for logits in outputs.logits)
    assert set(outputs.auxiliary) == {"guided", "reconstruction"}
    assert all(term.dim() == 0 and term > 0 for term in outputs.auxiliary.values())
    unweighted = build_model({**SPEC, "guided_weight": 1.0, "reconstruction_weight": 1.0})
    unweighted.load_state_dict(model.state_dict())
    plain = unweighted.training_outputs(x).auxiliary
    torch.testing.assert_close(outputs.auxiliary["guided"], 0.5 * plain["guided"])
    torch.testing.assert_close(outputs.auxiliary["reconstruction"], 0.2 * plain["reconstruction"])


def test_inference_averages_the_four_refined_maps():
    model = build_model(SPEC).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        refined = model.training_outputs(x).logits[4:]
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
    ("option", "value", "message"), [("features", [4, 8], "4 encoder stages"), ("output_stride", 8, "2 or 4")]
)
def test_bad_options_are_named(option, value, message):
    with pytest.raises(ValueError, match=message):
        build_model({**SPEC, option: value})
