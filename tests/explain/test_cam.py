"""CAM identities, Grad-CAM(++) against MONAI, ACAM's axis attention, segmentation targets."""

import pytest
import torch
from monai.visualize import GradCAM as MonaiGradCAM
from monai.visualize.class_activation_maps import ModelWithHooks

from medseg.explain import EXPLAINERS, Request
from medseg.explain.targets import class_target, normalise, region_target
from medseg.models import build_model


def grad_cam(model, layer, images, target, plus_plus=False):
    """The registry's Grad-CAM (or Grad-CAM++) of one layer, at its resolution."""
    request = Request(model, images, target, layers=(layer,))
    return EXPLAINERS["gradcam++" if plus_plus else "gradcam"]().layer_maps(request)[0]


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(2, 1, 32, 32)


def _classifier(pool="avg", out_channels=3):
    torch.manual_seed(1)
    return build_model(
        {"name": "classifier", "features": [4, 8, 16], "pool": pool, "out_channels": out_channels}
    ).eval()


def test_cam_mean_is_the_logit_for_average_pooling(images):
    model = _classifier()
    with torch.no_grad():
        cam = model.class_activation_map(images, 2)
        torch.testing.assert_close(cam.mean((1, 2, 3)) + model.head.bias[2], model(images)[:, 2])


def test_grad_cam_equals_cam_up_to_a_constant_for_a_gap_linear_head(images):
    model = _classifier()
    layer = model.encoder.stages[-1]
    maps = grad_cam(model, layer, images, class_target(1))
    with torch.no_grad():
        cam = torch.relu(model.class_activation_map(images, 1))
    height, width = cam.shape[-2:]
    torch.testing.assert_close(maps * height * width, cam, atol=1e-5, rtol=1e-4)  # ∂y/∂F = w / (h·w)
    torch.testing.assert_close(normalise(maps), normalise(cam), atol=1e-4, rtol=1e-3)


def test_grad_cam_agrees_with_monai(images):
    """Same model, layer and class: our raw map equals MONAI's `GradCAM.compute_map` within 1e-5 (float32)."""
    model = _classifier()
    ours = grad_cam(model, model.encoder.stages[-1], images, class_target(2))
    theirs = MonaiGradCAM(nn_module=model, target_layers="encoder.stages.2").compute_map(images, class_idx=2)
    torch.testing.assert_close(ours, theirs.float(), atol=1e-5, rtol=1e-4)


def test_grad_cam_plus_plus_follows_the_papers_closed_form(images):
    """α = g² / (2g² + g³ Σ A), weights Σ α ReLU(g), computed here from MONAI's hooks as the reference."""
    model = _classifier()
    _, (activation,), (gradient,) = ModelWithHooks(
        model, "encoder.stages.2", register_forward=True, register_backward=True
    )(images, class_idx=1)
    alpha = gradient**2 / (2 * gradient**2 + gradient**3 * activation.sum((2, 3), keepdim=True))
    weights = (torch.nan_to_num(alpha) * torch.relu(gradient)).sum((2, 3), keepdim=True)
    expected = torch.relu((weights * activation).sum(1, keepdim=True))
    model.zero_grad(set_to_none=True)  # MONAI's reference pass left gradients behind; ours must not
    ours = grad_cam(model, model.encoder.stages[-1], images, class_target(1), plus_plus=True)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in model.parameters()), "no gradient left on the model"


def test_acam_weights_are_axis_softmaxes_and_decompose_the_logit(images):
    model = _classifier(pool="attention")
    with torch.no_grad():
        features = model.features(images)
        s_h, s_w = model.axis_attention(features)
        assert s_h.shape == (2, features.shape[2]) and s_w.shape == (2, features.shape[3])
        torch.testing.assert_close(s_h.sum(1), torch.ones(2))
        weights = model.pooling_weights(features)
        assert weights.shape == (2, 1, *features.shape[-2:])
        torch.testing.assert_close(weights.sum((1, 2, 3)), torch.ones(2))
        acam = model.class_activation_map(images, 0)
        torch.testing.assert_close(acam.mean((1, 2, 3)) + model.head.bias[0], model(images)[:, 0], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(acam, _cam_without_attention(model, images)), "attention must reweigh the map"


def _cam_without_attention(model, images):
    features = model.features(images)
    return torch.einsum("c,bchw->bhw", model.head.weight[0], features)[:, None]


def test_acam_attention_is_trained_with_the_classifier(images):
    model = _classifier(pool="attention", out_channels=1)
    model(images).sum().backward()
    assert model.axis_attention.score.weight.grad.abs().sum() > 0


def test_unknown_pooling_is_named():
    with pytest.raises(ValueError, match="model.pool must be avg, max or attention"):
        build_model({"name": "classifier", "pool": "mean"})


def test_segmentation_grad_cam_follows_the_region(images):
    torch.manual_seed(2)
    model = build_model({"name": "unet", "features": [4, 8, 16]}).eval()
    layer = model.encoder.stages[-1]
    region = torch.zeros(2, 32, 32)
    region[:, :8, :8] = 1
    everywhere = grad_cam(model, layer, images, region_target(0))
    corner = grad_cam(model, layer, images, region_target(0, region))
    assert everywhere.shape == corner.shape == (2, 1, 8, 8)
    assert (corner >= 0).all() and torch.isfinite(corner).all()
    assert not torch.allclose(normalise(everywhere), normalise(corner))
    assert not model.training, "grad_cam restores the mode it found"
