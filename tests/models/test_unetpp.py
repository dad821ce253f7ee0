"""U-Net++: nested nodes, heads, and pruned inference that really skips the deeper nodes."""

import pytest
import torch
from torch import nn

from medseg.models import build_model

FEATURES = [4, 8, 16, 32, 64]


def _model(**kwargs):
    torch.manual_seed(0)
    return build_model({"name": "unetpp", "features": FEATURES, **kwargs}).eval()


def _conv_calls(model, **forward_kwargs):
    calls = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: calls.append(m))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model(torch.randn(1, 1, 32, 32), **forward_kwargs)
    for hook in hooks:
        hook.remove()
    return len(calls)


def test_pruned_levels_run_strictly_fewer_convs():
    model = _model()
    counts = [_conv_calls(model, prune=level) for level in (1, 2, 3, 4)]
    full = _conv_calls(model)  # ensemble: every node and every head
    assert counts[0] < counts[1] < counts[2] < counts[3] < full
    # L1 = X(0,0), X(1,0), X(0,1): 3 DoubleConvs (6 convs) + 1 up-conv + 1 head
    assert counts[0] == 8


def test_pruned_output_equals_the_full_networks_head():
    model = _model()
    x = torch.randn(2, 1, 40, 36)
    with torch.no_grad():
        heads = model.forward_heads(x)
        for level in (1, 2, 3, 4):
            torch.testing.assert_close(model(x, prune=level), heads[level - 1])
        torch.testing.assert_close(model(x), torch.stack(heads).mean(0))
    assert all(h.shape == (2, 1, 40, 36) for h in heads)


def test_inference_modes_from_config():
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        reference = _model().forward_heads(x)
        torch.testing.assert_close(_model(inference="head", head=2)(x), reference[1])
        torch.testing.assert_close(_model(inference="prune", head=3)(x), reference[2])


def test_without_deep_supervision_there_is_one_head():
    model = _model(deep_supervision=False)
    assert model.levels == [4]
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match=r"no head at level 2: heads exist at levels \[4\]"):
        model.set_inference("prune", 2)
    with pytest.raises(ValueError, match="no head at that level"):
        model(torch.randn(1, 1, 32, 32), prune=2)


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="model.inference must be ensemble, head or prune"):
        _model(inference="fast")


def test_node_names_follow_the_paper():
    model = _model()
    assert set(model.nodes) == {f"x_{i}_{j}" for j in range(1, 5) for i in range(5 - j)}
