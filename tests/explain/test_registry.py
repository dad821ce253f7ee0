"""The explanation registry: a method is one class and one registry line, seen by every consumer; each method's
formula against an independent computation (MONAI's hooks, NumPy's SVD); every method on every model family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.visualize.class_activation_maps import ModelWithHooks
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import load_config
from medseg.errors import ConfigError
from medseg.explain import EXPLAINERS, Explainer, Request, map_methods, register_explainer
from medseg.explain.maps import lesion_maps
from medseg.explain.targets import class_target, region_target
from medseg.models import build_model
from medseg.resolve import resolve_config


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.randn(2, 1, 32, 32)


def _classifier(pool: str = "avg"):
    torch.manual_seed(1)
    return build_model({"name": "classifier", "features": [4, 8, 16], "pool": pool, "out_channels": 3}).eval()


@pytest.fixture
def toy():
    """A method registered for one test (the registry is left as it was)."""

    @register_explainer("toy-brightness")
    class Toy(Explainer):
        gradients = False

        def weigh(self, activation, gradient):
            return activation.mean(1, keepdim=True)

    yield Toy
    EXPLAINERS._items.pop("toy-brightness")


def test_a_toy_method_is_one_class_and_reaches_every_consumer(toy, images):
    help_text = CliRunner().invoke(app, ["explain", "--help"], terminal_width=200).output
    assert "toy-brightness" in help_text
    assert "toy-brightness" in map_methods()
    maps = lesion_maps(_classifier(), images, "toy-brightness")
    assert maps.shape == (2, 1, 32, 32) and float(maps.amax()) == pytest.approx(1.0)
    config = {"data": {"source": {"format": "phantoms"}}, "weak": {"maps": "toy-brightness"}}
    assert resolve_config(load_config(config)).weak.maps == "toy-brightness"
    with pytest.raises(ConfigError, match=r"weak.choose_maps: 'nope' is not an explanation method .*toy-brightness"):
        resolve_config(load_config({**config, "weak": {"choose_maps": ["gradcam", "nope"], "choose_thresholds": True}}))


def _hooks(model, images, class_index):
    """Activation A and gradient g of the classifier's deepest stage, from MONAI's hooks (the reference)."""
    _, (activation,), (gradient,) = ModelWithHooks(
        model, "encoder.stages.2", register_forward=True, register_backward=True
    )(images, class_idx=class_index)
    model.zero_grad(set_to_none=True)
    return activation, gradient


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("layercam", lambda a, g: (torch.relu(g) * a).sum(1, keepdim=True)),
        ("hirescam", lambda a, g: (g * a).sum(1, keepdim=True)),
        ("xgradcam", lambda a, g: ((g * a).sum((2, 3), True) / (a.sum((2, 3), True) + 1e-7) * a).sum(1, True)),
    ],
)
def test_gradient_methods_follow_their_published_formulas(images, name, formula):
    model = _classifier()
    activation, gradient = _hooks(model, images, 1)
    expected = torch.relu(formula(activation, gradient))
    request = Request(model, images, class_target(1), 1, (model.encoder.stages[-1],))
    (ours,) = EXPLAINERS[name]().layer_maps(request)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in model.parameters()), "no gradient left on the model"


def test_eigen_cam_is_the_first_principal_component(images):
    model = _classifier()
    with torch.no_grad():
        features = model.features(images).numpy()
    request = Request(model, images, class_target(0), 0, (model.encoder.stages[-1],))
    (ours,) = EXPLAINERS["eigencam"]().layer_maps(request)
    for index, image_features in enumerate(features):
        flat = image_features.reshape(image_features.shape[0], -1).T
        centred = flat - flat.mean(0)
        projection = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        projection = -projection if (projection * flat.sum(1)).sum() < 0 else projection
        expected = np.maximum(projection, 0).reshape(image_features.shape[1:])
        np.testing.assert_allclose(ours[index, 0].numpy(), expected, atol=1e-4)


def _families():
    torch.manual_seed(3)
    return {
        "classifier": _classifier(pool="attention"),
        "segmentation": build_model({"name": "unet", "features": [4, 8, 16]}).eval(),
        "attention": build_model({"name": "unet", "features": [4, 8, 16], "attention": "cbam"}).eval(),
        "nested": build_model({"name": "unetpp", "features": [4, 8, 16]}).eval(),
    }


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_every_method_runs_on_every_family_it_declares(images, name):
    explainer = EXPLAINERS[name]()
    assert explainer.families, f"{name} declares no model family"
    families = _families()
    for family in [*explainer.families, *(["nested"] if "segmentation" in explainer.families else [])]:
        model = families[family]  # "nested": a U-Net++, whose encoder is its list of stages
        target = class_target(1) if family == "classifier" else region_target(0)
        maps = explainer.named_maps(Request(model, images, target, 1 if family == "classifier" else 0))
        assert maps, (name, family)
        for value in maps.values():
            assert value.shape == (2, 1, 32, 32) and torch.isfinite(value).all() and (value >= 0).all(), (name, family)
        assert not model.training, f"{name} restores the mode it found"
    if explainer.classifier_only:
        with pytest.raises(ValueError, match="needs a classifier"):
            explainer.named_maps(Request(_families()["segmentation"], images, region_target(0)))
