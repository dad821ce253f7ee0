"""Method msga: the paper's loss over the network's eight maps, guided codes and reconstructions."""

import pytest
import torch

from tests.helpers import built_method, resolved

MSGA = {"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}


def _config(phantom_config, **method):
    config = phantom_config()
    config["model"] = MSGA
    if method:
        config["method"] = {"name": "msga", **method}
    return config


def _batch():
    torch.manual_seed(0)
    return {"image": torch.randn(4, 1, 32, 32), "mask": (torch.rand(4, 32, 32) > 0.8).long()}


def test_loss_is_the_sum_of_the_maps_plus_the_weighted_guidance(phantom_config):
    method = built_method(_config(phantom_config, guided_weight=0.5, reconstruction_weight=0.2))
    batch = _batch()
    terms = method.training_step(batch)
    expected = terms["loss_segmentation"] + terms["loss_guided"] + terms["loss_reconstruction"]
    torch.testing.assert_close(terms["loss"].detach(), expected)
    assert terms["loss_guided"] > 0 and terms["loss_reconstruction"] > 0
    plain = built_method(_config(phantom_config, guided_weight=1.0, reconstruction_weight=1.0))
    plain.model.load_state_dict(method.model.state_dict())
    unweighted = plain.training_step(batch)
    torch.testing.assert_close(terms["loss_guided"], 0.5 * unweighted["loss_guided"])
    torch.testing.assert_close(terms["loss_reconstruction"], 0.2 * unweighted["loss_reconstruction"])
    segmentation = sum(
        method.loss(logits, batch["mask"]) for logits in method.model.forward_maps(batch["image"]).logits
    )
    torch.testing.assert_close(terms["loss_segmentation"], segmentation.detach())


def test_an_msga_model_with_the_default_method_is_trained_by_msga_with_the_papers_weights(phantom_config):
    cfg = resolved(_config(phantom_config))
    assert cfg.method["name"] == "msga"
    assert (cfg.method["guided_weight"], cfg.method["reconstruction_weight"]) == (0.25, 0.1)


def test_loss_falls_in_a_few_steps(phantom_config):
    method = built_method(_config(phantom_config))
    batch = _batch()
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = method.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_msga_trains_only_an_msga_model(phantom_config):
    config = phantom_config()
    config["method"] = {"name": "msga"}
    with pytest.raises(ValueError, match="method msga trains model msga, got 'unet'"):
        built_method(config)
