"""A run folder's config.yaml says exactly what was built: every model and method argument, so the model
rebuilds from it alone; and older checkpoints still load."""

from __future__ import annotations

import inspect

import pytest
import torch
import yaml

from medseg.checkpoint_io import save_checkpoint
from medseg.engine.trainer import train
from medseg.inference import Predictor
from medseg.methods import METHODS
from medseg.models import MODELS, build_model
from tests.helpers import resolved

CASES = {
    "unet-label-head": (
        {"name": "unet", "features": [4, 8, 16]},
        {"name": "supervised", "label_weight": 0.5, "classes": [0, 1]},
    ),
    "unetpp": ({"name": "unetpp", "features": [4, 8, 16]}, {"name": "supervised"}),
    "cct": ({"name": "mtnet", "features": [4, 8, 16]}, {"name": "cct"}),
    "urpc": ({"name": "unet", "features": [4, 8, 8, 16, 16]}, {"name": "urpc"}),
    "classifier": ({"name": "classifier", "features": [4, 8, 16], "pool": "attention"}, {"name": "classification"}),
}


def _arguments(constructor, skip=()) -> set[str]:
    params = inspect.signature(constructor).parameters
    return {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and k not in skip}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_yaml_rebuilds_the_model_without_code_defaults(tmp_path, phantom_config, case):
    model, method = CASES[case]
    config = {**phantom_config(epochs=1), "model": model, "method": method}
    if method["name"] == "urpc" or method["name"] == "cct":
        config["data"]["labeled_ratio"] = 0.5
    run = tmp_path / "run"
    train(resolved(config), run, show_progress=False)
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    spec, method_spec = recorded["model"], recorded["method"]
    constructor = MODELS[spec["name"]]
    assert set(spec) - {"name"} == _arguments(constructor), "every model argument, with its value"
    assert set(method_spec) - {"name"} == _arguments(METHODS[method_spec["name"]], skip=("model_spec",))
    rebuilt = constructor(**{k: v for k, v in spec.items() if k != "name"})  # no defaults come from code
    trained = torch.load(run / "best.pt", weights_only=True)["model"]
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == {
        k: tuple(v.shape) for k, v in trained.items()
    }


def test_a_resolved_config_resolves_to_itself(phantom_config):
    config = {**phantom_config(), "model": {"name": "mtnet", "features": [4, 8]}, "method": {"name": "cct"}}
    once = resolved(config)
    assert resolved(once.model_dump(mode="json")) == once


def test_a_method_refuses_a_model_spec_it_would_have_to_rewrite(phantom_config):
    config = {
        **phantom_config(),
        "model": {"name": "classifier", "out_channels": 3},
        "method": {"name": "classification"},
    }
    with pytest.raises(ValueError, match="model.out_channels is 3, but these labels need 1"):
        resolved(config)


def _old_checkpoint(path, config: dict, model: torch.nn.Module) -> None:
    """A checkpoint as medseg 0.1 wrote it: no format, the config as given, its own `inference_modes`."""
    save_checkpoint(path, {"config": config, "inference_modes": ["default"], "model": model.state_dict(), "epoch": 3})


def test_a_format_1_msga_checkpoint_loads_with_its_loss_weights_moved_to_the_method(tmp_path, phantom_config):
    torch.manual_seed(0)
    spec = {"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}
    model = build_model(spec).eval()
    old = {**phantom_config(), "model": {**spec, "guided_weight": 0.5, "reconstruction_weight": 0.2}}
    _old_checkpoint(tmp_path / "old.pt", old, model)
    predictor = Predictor.load(tmp_path / "old.pt", device="cpu")
    assert predictor.cfg.method == {
        **predictor.cfg.method,
        "name": "msga",
        "guided_weight": 0.5,
        "reconstruction_weight": 0.2,
    }
    images = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = torch.sigmoid(model(images))
    torch.testing.assert_close(predictor.probabilities(images), expected, atol=2e-2, rtol=0)  # bf16 where native


def test_a_format_1_wsr_checkpoint_takes_its_classifier_from_the_recorded_run(tmp_path, phantom_config):
    torch.manual_seed(0)
    classifier_spec = {"name": "classifier", "in_channels": 1, "out_channels": 1, "features": [4, 8, 16]}
    classifier = build_model(classifier_spec)
    _old_checkpoint(tmp_path / "classifier" / "best.pt", {**phantom_config(), "model": classifier_spec}, classifier)
    embedding = build_model({"name": "unet", "features": [4, 8, 16], "out_channels": 8})
    old = {
        **phantom_config(),
        "model": {"name": "unet", "features": [4, 8, 16], "in_channels": 1, "out_channels": 1},
        "method": {"name": "wsr", "classifier_run": str(tmp_path / "classifier"), "maps": "cam", "embedding_dim": 8},
    }
    _old_checkpoint(tmp_path / "wsr.pt", old, embedding)
    predictor = Predictor.load(tmp_path / "wsr.pt", device="cpu")
    torch.testing.assert_close(predictor.model.classifier.head.weight, classifier.head.weight)
    torch.testing.assert_close(predictor.model.embedding.head.weight, embedding.head.weight)
    assert predictor.probabilities(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)
    (tmp_path / "classifier" / "best.pt").unlink()
    with pytest.raises(FileNotFoundError, match="retrain the run"):
        Predictor.load(tmp_path / "wsr.pt", device="cpu")
