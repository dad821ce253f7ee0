"""Image-level supervision: labels from masks or from the readers, loss, validation scores."""

import numpy as np
import pytest
import torch

from medseg.config import load_config
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.methods.classification import image_labels
from tests.helpers import built_method as build_method


def _config(phantom_config, **method):
    config = phantom_config()
    config["model"] = {"name": "classifier", "features": [4, 8, 16]}
    config["method"] = {"name": "classification", **method}
    return load_config(config)


def test_lesion_present_comes_from_the_mask():
    mask = torch.zeros(3, 8, 8, dtype=torch.long)
    mask[1, 2, 3] = 1
    assert image_labels({"mask": mask}, "mask", None).tolist() == [0, 1, 0]


def test_reader_labels_map_to_class_indices_and_unknown_ones_are_named():
    batch = {"label": torch.tensor([3, 1, 2])}
    assert image_labels(batch, "case", [1, 2, 3]).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"image labels \[4, 'none'\]|image labels \['none', 4\]"):
        image_labels({"label": torch.tensor([4, -1])}, "case", [1, 2, 3])
    with pytest.raises(ValueError, match="method.classes must list"):
        image_labels(batch, "case", None)


@pytest.mark.parametrize("method", [{"label_from": "mask"}, {"label_from": "case", "classes": [0, 1]}])
def test_classifier_loss_falls_and_validation_scores_are_per_image(phantom_config, method):
    cfg = _config(phantom_config, **method)
    method = build_method(cfg)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    batch = next(iterate_batches(dataset.store, dataset.rows("train"), 16, labels=dataset.labels))
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
    scores = method.validation_scores(method.model.eval(), batch)
    assert scores.shape == (16,) and set(scores.tolist()) <= {0.0, 1.0}


def test_three_classes_get_three_logits_and_a_segmentation_model_is_refused(phantom_config):
    assert build_method(_config(phantom_config, label_from="case", classes=[1, 2, 3])).model.head.out_features == 3
    config = phantom_config()
    config["method"] = {"name": "classification"}
    with pytest.raises(ValueError, match="trains model.name: classifier, got 'unet'"):
        build_method(load_config(config))


def test_unknown_pixels_do_not_make_an_image_positive():
    mask = torch.full((2, 4, 4), 255, dtype=torch.long)
    mask[1, 0, 0] = 1
    assert image_labels({"mask": mask}, "mask", None).tolist() == [0, 1]


def test_level_balanced_loss_weighs_each_training_image_by_its_level_and_class(phantom_config):
    from medseg.methods.level_balance import level_balanced_weights

    cfg = _config(phantom_config, level_balanced=True, level_bins=2)
    method = build_method(cfg)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    batch = next(iterate_batches(dataset.store, dataset.rows("train"), 8, labels=dataset.labels))
    with pytest.raises(RuntimeError, match="call attach_data first"):
        method.training_step(batch)
    train = dataset.rows("train")[::-1].copy()  # in any order
    method.attach_data(dataset, train)
    labels = np.array([int((dataset.store.mask(int(r)) == 1).any()) for r in train])
    assert 0 < labels.sum() < len(labels)
    expected = level_balanced_weights(dataset.levels[train], labels, 2)
    np.testing.assert_allclose(method.row_weights[train].numpy(), expected, rtol=1e-6)
    assert (method.row_weights[dataset.rows("val")] == 0).all(), "only training images weigh"
    logits, labels = torch.randn(8, 1), image_labels(batch, "mask", None)
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), reduction="none")
    weighted = (losses * method.row_weights[batch["row"]]).sum() / 8
    torch.testing.assert_close(method._loss(logits, labels, batch["row"]), weighted)
    with pytest.raises(ValueError, match="the batch has no 'row'"):
        method._loss(logits, labels)


def test_level_balancing_refuses_patches_that_may_not_hold_the_lesion(phantom_config):
    config = phantom_config()
    config["data"]["resolution"] = "native"
    config["augment"] = {"patch": 32}
    config["weak"] = {"level_balanced": True}
    with pytest.raises(ValueError, match="weak.level_balanced weighs each slice"):
        load_config(config)


def test_a_level_balanced_classifier_is_also_scored_with_the_level_evidence_added_back(
    phantom_config, tmp_path, monkeypatch
):
    """With an image part that says nothing (p = 0.5 everywhere), the score with the prior is the training images'
    level log-odds alone: its ROC AUC is theirs, while the classifier's own is 0.5. Lesion slices lie high here, half
    of the others low."""
    from types import SimpleNamespace

    from monai.metrics import compute_roc_auc

    from medseg.evaluation_classifier import evaluate_classifier
    from medseg.methods.level_balance import level_bins, level_log_odds
    from medseg.run_folder import RunFolder

    cfg = _config(phantom_config, level_balanced=True, level_bins=2)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    predictor = SimpleNamespace(
        method=build_method(cfg), cfg=cfg, probabilities=lambda images: torch.full((len(images), 1), 0.5)
    )
    label = lambda rows: np.array([int((dataset.store.mask(int(r)) == 1).any()) for r in rows])  # noqa: E731
    every = np.arange(len(dataset.store.ids))
    levels = np.where(label(every) == 1, 0.75, np.where(every % 2 == 1, 0.25, 0.75))
    monkeypatch.setattr(type(dataset), "levels", property(lambda self: levels))
    test = dataset.rows("test")
    summary = evaluate_classifier(predictor, dataset, test, RunFolder(tmp_path / "run"), {"split": "test"})
    train = dataset.rows("train")
    odds = level_log_odds(dataset.levels[train], label(train), 2)[level_bins(dataset.levels[test], 2)]
    expected = float(compute_roc_auc(torch.from_numpy(odds), torch.from_numpy(label(test))))
    assert summary["metrics"]["roc_auc"]["mean"] == 0.5 and expected != 0.5, "the phantoms' levels tell something"
    assert summary["metrics"]["roc_auc_with_level_prior"]["mean"] == pytest.approx(expected)
    plain = _config(phantom_config)
    predictor.method, predictor.cfg = build_method(plain), plain
    summary = evaluate_classifier(predictor, dataset, test, RunFolder(tmp_path / "plain"), {"split": "test"})
    assert "roc_auc_with_level_prior" not in summary["metrics"]
