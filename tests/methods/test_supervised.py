import torch

from medseg.config import load_config
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.methods import METHODS
from tests.helpers import built_method as build_method


def _first_eight(cfg):
    """The first 8 preprocessed cases of `cfg`'s data as one batch, with their image-level labels."""
    dataset = prepare_dataset(cfg.data, cfg.seed)
    return next(iterate_batches(dataset.store, torch.arange(8).numpy(), 8, labels=dataset.labels))


def test_registry_has_supervised():
    assert "supervised" in METHODS


def test_loss_is_finite_and_falls_in_a_few_steps(phantom_config):
    cfg = load_config(phantom_config())
    method = build_method(cfg)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    batch = next(iterate_batches(dataset.store, dataset.rows("train"), 8))
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = method.training_step(batch)["loss"]
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    probs = method.predict(method.model.eval(), batch["image"])
    assert probs.shape == (8, 1, 48, 48) and probs.min() >= 0 and probs.max() <= 1


def _two_head_step(phantom_config, model: dict, method: dict | None = None):
    """One training step of a model with two supervised heads: (method, batch, loss terms)."""
    config = phantom_config()
    config["model"] = model
    if method is not None:
        config["method"] = method
    cfg = load_config(config)
    built = build_method(cfg)
    batch = _first_eight(cfg)
    terms = built.training_step(batch)
    assert set(terms) == {"loss", "loss_head1", "loss_head2"}
    return built, batch, terms


def test_deep_supervision_trains_every_head(phantom_config):
    unetpp = {"name": "unetpp", "features": [4, 8, 16]}
    _, _, terms = _two_head_step(phantom_config, unetpp, {"name": "supervised", "head_weights": [1.0, 3.0]})
    expected = (terms["loss_head1"] + 3 * terms["loss_head2"]) / 4
    torch.testing.assert_close(terms["loss"].detach(), expected)


def test_unet_pyramid_heads_are_supervised_with_halving_weights(phantom_config):
    unet = {"name": "unet", "features": [4, 8, 16], "pyramid": 1}
    method, batch, terms = _two_head_step(phantom_config, unet)
    expected = (terms["loss_head1"] + 0.5 * terms["loss_head2"]) / 1.5
    torch.testing.assert_close(terms["loss"].detach(), expected)
    terms["loss"].backward()
    assert method.model.pyramid_heads[0].weight.grad.abs().sum() > 0
    assert method.predict(method.model.eval(), batch["image"]).shape == (8, 1, 48, 48)


def test_head_weights_must_match_the_heads(phantom_config):
    import pytest

    config = phantom_config()
    config["model"] = {"name": "unetpp", "features": [4, 8, 16]}
    config["method"] = {"name": "supervised", "head_weights": [1.0]}
    with pytest.raises(ValueError, match="method.head_weights needs 2 non-negative weights"):
        build_method(load_config(config))


def _label_config(phantom_config, method: dict, model: dict | None = None):
    config = phantom_config()
    config["model"] = model or {"name": "unet", "features": [4, 8, 16], "pyramid": 1}
    config["method"] = {"name": "supervised", **method}
    return load_config(config)


def test_label_head_adds_its_weighted_cross_entropy_and_learns(phantom_config):
    cfg = _label_config(phantom_config, {"label_weight": 0.5, "classes": [0, 1]})
    method = build_method(cfg)
    batch = _first_eight(cfg)
    assert set(batch["label"].tolist()) == {0, 1}
    terms = method.training_step(batch)
    segmentation = (terms["loss_head1"] + 0.5 * terms["loss_head2"]) / 1.5
    torch.testing.assert_close(terms["loss_segmentation"], segmentation)
    torch.testing.assert_close(terms["loss"].detach(), segmentation + 0.5 * terms["loss_label"])
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=3e-3)
    first = terms["loss_label"]
    for _ in range(20):
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        terms = method.training_step(batch)
    assert terms["loss_label"] < 0.5 * first
    # a predictor rebuilds the method from the config: the head is there to load, and inference ignores it
    build_method(cfg).model.load_state_dict(method.model.state_dict())
    assert method.predict(method.model.eval(), batch["image"]).shape == (8, 1, 48, 48)


def test_label_weight_needs_classes_and_a_unet(phantom_config):
    import pytest

    with pytest.raises(ValueError, match="method.label_weight needs method.classes"):
        build_method(_label_config(phantom_config, {"label_weight": 0.5}))
    with pytest.raises(ValueError, match=r"2 or more distinct label values; got \[1, 1\]"):
        build_method(_label_config(phantom_config, {"label_weight": 0.5, "classes": [1, 1]}))
    with pytest.raises(ValueError, match="method.classes is used only with method.label_weight > 0"):
        build_method(_label_config(phantom_config, {"classes": [0, 1]}))
    with pytest.raises(ValueError, match="instead of model.label_classes"):
        build_method(_label_config(phantom_config, {}, {"name": "unet", "features": [4, 8], "label_classes": 2}))
    unetpp = {"name": "unetpp", "features": [4, 8, 16]}
    with pytest.raises(ValueError, match="method.label_weight needs model.name: unet, got 'unetpp'"):
        build_method(_label_config(phantom_config, {"label_weight": 0.5, "classes": [0, 1]}, unetpp))


def test_label_head_refuses_a_case_without_a_label(phantom_config):
    import pytest

    cfg = _label_config(phantom_config, {"label_weight": 0.5, "classes": [0, 1]})
    batch = _first_eight(cfg)
    batch["label"][3] = -1
    with pytest.raises(ValueError, match=r"image labels \['none'\] are missing or not in method.classes \[0, 1\]"):
        build_method(cfg).training_step(batch)
