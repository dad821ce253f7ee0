"""Semi-supervised learning: labelled subsets, masks of unlabelled cases never read, CDMA and Mean Teacher."""

import csv

import pytest
import torch

from medseg.config import load_config
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.data.readers import READERS
from medseg.data.splits import UNLABELED
from medseg.engine import trainer
from medseg.methods.cdma import cross_distillation, mean_entropy
from medseg.methods.consistency import ConsistencySchedule
from tests.helpers import built_method as build_method


def _semi(phantom_config, method, model=None, **data):
    config = phantom_config(epochs=2)
    config["data"].update({"labeled_ratio": 0.25, **data})
    config["model"] = model or {"name": "mtnet", "features": [4, 8, 16]}
    config["method"] = method
    return config


def test_labelled_subset_is_drawn_by_group_and_unlabelled_masks_are_never_read(phantom_config, monkeypatch):
    opened = []
    reader_type = READERS["phantoms"]
    original = reader_type.load_mask
    monkeypatch.setattr(reader_type, "load_mask", lambda self, case: opened.append(case.id) or original(self, case))
    cfg = load_config(_semi(phantom_config, {"name": "supervised"}, {"name": "unet", "features": [4, 8]}))
    dataset = prepare_dataset(cfg.data, cfg.seed)
    unlabeled = {c.id for c in dataset.cases if dataset.assignment[c.id] == UNLABELED}
    train = {c.id for c in dataset.cases if dataset.assignment[c.id] == "train"}
    assert unlabeled and train and not unlabeled & set(opened), "no mask of an unlabelled case is opened"
    groups = {c.id: c.group for c in dataset.cases}
    assert not {groups[i] for i in unlabeled} & {groups[i] for i in train}, "a group is labelled or not, whole"
    assert len(train) <= 0.25 * (len(train) + len(unlabeled)) + 4  # phantoms come in groups of 4
    assert all(not dataset.store.has_mask(int(r)) for r in dataset.rows(UNLABELED))


def test_count_instead_of_ratio_and_both_together_are_refused(phantom_config):
    config = _semi(phantom_config, {"name": "supervised"}, {"name": "unet", "features": [4, 8]}, labeled_count=8)
    config["data"].pop("labeled_ratio")
    dataset = prepare_dataset(load_config(config).data, 0)
    assert len(dataset.rows("train")) == 8
    both = _semi(phantom_config, {"name": "supervised"}, {"name": "unet", "features": [4, 8]}, labeled_count=8)
    with pytest.raises(Exception, match="set one of data.labeled_ratio, data.labeled_count and data.labeled_file"):
        load_config(both)


def test_distillation_is_zero_when_branches_agree_and_positive_otherwise():
    z = torch.randn(2, 1, 6, 6)
    assert cross_distillation([z, z.clone(), z.clone()], 10.0) == pytest.approx(0.0, abs=1e-6)
    assert cross_distillation([z, -z, 2 * z], 10.0) > 0
    multi = torch.randn(2, 3, 6, 6)
    assert cross_distillation([multi, multi, multi], 2.0) == pytest.approx(0.0, abs=1e-6)
    confident, unsure = torch.full((1, 1, 4, 4), 8.0), torch.zeros(1, 1, 4, 4)
    assert mean_entropy([confident] * 3) < mean_entropy([unsure] * 3)


def test_schedule_ramps_up_or_steps():
    ramp = ConsistencySchedule(0.1, rampup=0.5)
    assert ramp.update(0.0, 1) == pytest.approx(0.1 * torch.exp(torch.tensor(-5.0)).item())
    assert ramp.update(0.5, 3) == pytest.approx(0.1) and ramp.update(0.9, 5) == pytest.approx(0.1)
    step = ConsistencySchedule(0.1, start_epoch=3)
    assert step.update(0.9, 2) == 0.0 and step.update(0.1, 3) == 0.1


@pytest.mark.parametrize(
    ("method", "model"),
    [
        ({"name": "cdma"}, {"name": "mtnet", "features": [4, 8, 16]}),
        ({"name": "mean_teacher", "rampup": 0.0}, {"name": "unet", "features": [4, 8, 16]}),
        ({"name": "ua_mt", "rampup": 0.0, "passes": 2}, {"name": "unet", "features": [4, 8, 16]}),
        ({"name": "entropy_minimization", "rampup": 0.0}, {"name": "unet", "features": [4, 8, 16]}),
        ({"name": "cps", "rampup": 0.0}, {"name": "unet", "features": [4, 8, 16]}),
        (
            {"name": "mcnet", "rampup": 0.0},
            {
                "name": "mtnet",
                "features": [4, 8, 16],
                "attentions": ["none", "none", "none"],
                "upsampling": ["transpose", "bilinear", "nearest"],
            },
        ),
        ({"name": "cct", "rampup": 0.0}, {"name": "mtnet", "features": [4, 8, 16]}),
        ({"name": "urpc", "rampup": 0.0}, {"name": "unet", "features": [4, 8, 16, 32], "pyramid": 2}),
        ({"name": "bcp"}, {"name": "unet", "features": [4, 8, 16]}),
        ({"name": "fixmatch", "threshold": 0.6}, {"name": "unet", "features": [4, 8, 16]}),
        (
            {"name": "fixmatch", "threshold": 0.6, "feature_perturbation": 0.5},
            {"name": "unet", "features": [4, 8, 16]},
        ),
        (
            {
                "name": "fixmatch",
                "threshold": 0.6,
                "feature_perturbation": 0.5,
                "align": True,
                "class_thresholds": True,
            },
            {"name": "unet", "features": [4, 8, 16]},
        ),
        (
            {"name": "fixmatch", "threshold": 0.6, "feature_perturbation": 0.5},
            {"name": "unet", "features": [4, 8, 16, 32], "pyramid": 2},
        ),
    ],
    ids=[
        "cdma",
        "mean_teacher",
        "ua_mt",
        "entropy_minimization",
        "cps",
        "mcnet",
        "cct",
        "urpc",
        "bcp",
        "fixmatch",
        "unimatch",
        "unimatch-balanced",
        "unimatch-deep-supervision",
    ],
)
def test_semi_supervised_loss_is_finite_and_falls(phantom_config, method, model):
    cfg = load_config(_semi(phantom_config, method, model))
    method = build_method(cfg)
    method.set_progress(1.0, 2)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    batch = next(iterate_batches(dataset.store, dataset.rows("train"), 6))
    batch["unlabeled_image"] = next(iterate_batches(dataset.store, dataset.rows(UNLABELED), 6))["image"]
    optimizer = torch.optim.AdamW(method.model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        terms = method.training_step(batch)
        assert all(torch.isfinite(v) for v in terms.values())
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        method.after_step()
        losses.append(terms["loss"].item())
    assert losses[-1] < 0.7 * losses[0]


def test_cdma_trains_end_to_end_and_predicts_the_branch_mean(tmp_path, phantom_config):
    cfg = load_config(_semi(phantom_config, {"name": "cdma"}))
    trainer.train(cfg, tmp_path / "run", show_progress=False)
    with (tmp_path / "run" / "splits.csv").open() as handle:
        assert UNLABELED in {row["split"] for row in csv.DictReader(handle)}
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss_supervised", "train_loss_distillation", "train_loss_entropy"} <= set(header)
    from medseg.inference import Predictor

    predictor = Predictor.load(tmp_path / "run")
    images = torch.randn(2, 1, 48, 48)
    with torch.no_grad():  # the model is on the predictor's device (a GPU where there is one)
        branches = [torch.sigmoid(z).cpu() for z in predictor.model.forward_branches(images.to(predictor.device))]
    torch.testing.assert_close(predictor.probabilities(images), torch.stack(branches).mean(0), atol=2e-2, rtol=0)


def test_a_semi_supervised_method_without_unlabelled_images_is_explained(tmp_path, phantom_config):
    config = _semi(phantom_config, {"name": "cdma"})
    config["data"].pop("labeled_ratio")
    with pytest.raises(ValueError, match="learns from unlabelled images, but there are none"):
        trainer.train(load_config(config), tmp_path / "run", show_progress=False)


def test_cps_twins_start_different_and_keep_the_global_random_state(phantom_config):
    cfg = load_config(_semi(phantom_config, {"name": "cps"}, {"name": "unet", "features": [4, 8]}))
    torch.manual_seed(5)
    method = build_method(cfg)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(1)), "building the twins leaves the global random state alone"
    first, second = method.model.first.state_dict(), method.model.second.state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first if first[k].is_floating_point())


def test_sharpening_pushes_probabilities_to_the_nearer_end():
    from medseg.methods.mcnet import sharpen

    probs = torch.tensor([0.3, 0.5, 0.8]).view(1, 1, 1, 3)
    sharp = sharpen(probs, 0.1)[0, 0, 0]
    assert sharp[0] < 0.01 and sharp[1] == pytest.approx(0.5) and sharp[2] > 0.99


def test_mean_teacher_state_survives_a_checkpoint(phantom_config):
    cfg = load_config(_semi(phantom_config, {"name": "mean_teacher"}, {"name": "unet", "features": [4, 8]}))
    method = build_method(cfg)
    assert method.state_dict() == {}
    method.ema.start(method.model)
    for p in method.teacher.parameters():
        p.data.add_(1.0)
    restored = build_method(cfg)
    restored.load_state_dict(method.state_dict())
    for a, b in zip(restored.teacher.parameters(), method.teacher.parameters(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["mean_teacher", "ua_mt"])
def test_mean_teachers_student_sees_the_images_as_loaded_and_only_the_teacher_sees_noise(phantom_config, name):
    """Noise on the student's passes would leave its BatchNorm running statistics (what prediction uses) describing
    noisy images."""
    cfg = load_config(_semi(phantom_config, {"name": name, "noise": 0.1}, {"name": "unet", "features": [4, 8]}))
    method = build_method(cfg)
    images, unlabeled = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    student_inputs, teacher_inputs = [], []
    method.ema.start(method.model).register_forward_pre_hook(lambda module, args: teacher_inputs.append(args[0]))
    method.model.register_forward_pre_hook(lambda module, args: student_inputs.append(args[0]))
    method.training_step({"image": images, "mask": (images[:, 0] > 0.5).long(), "unlabeled_image": unlabeled})
    assert len(student_inputs) == 2 and torch.equal(student_inputs[0], images)
    assert torch.equal(student_inputs[1], unlabeled)
    for seen in teacher_inputs:
        noise = seen - unlabeled
        assert 0 < noise.abs().max() <= 0.2 + 1e-6 and 0.05 < noise.std() < 0.15


def test_fixmatch_teaches_every_pyramid_head_the_labelled_masks(phantom_config):
    """With a deeply supervised U-Net, the labelled term is the heads' weighted mean (1, 1/2, 1/4): each pyramid
    head gets a gradient, and the term equals that mean of the heads' own losses."""
    method_section = {"name": "fixmatch", "threshold": 0.6, "feature_perturbation": 0.5}
    cfg = load_config(_semi(phantom_config, method_section, {"name": "unet", "features": [4, 8, 16, 32], "pyramid": 2}))
    method = build_method(cfg)
    dataset = prepare_dataset(cfg.data, cfg.seed)
    batch = next(iterate_batches(dataset.store, dataset.rows("train"), 4))
    batch["unlabeled_image"] = next(iterate_batches(dataset.store, dataset.rows(UNLABELED), 4))["image"]
    terms = method.training_step(batch)
    heads = [terms[f"loss_head{k}"] for k in (1, 2, 3)]
    expected = (heads[0] + 0.5 * heads[1] + 0.25 * heads[2]) / 1.75
    torch.testing.assert_close(terms["loss_supervised"], expected)
    terms["loss"].backward()
    for head in method.model.pyramid_heads:
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_pyramid_consistency_is_zero_when_scales_agree():
    from medseg.methods.urpc import rectified_pyramid_consistency

    z = torch.randn(2, 1, 6, 6)
    assert rectified_pyramid_consistency([z, z.clone(), z.clone()]) == pytest.approx(0.0, abs=1e-6)
    assert rectified_pyramid_consistency([z, -z, 3 * z]) > 0.01


def test_unet_pyramid_heads_give_full_size_logits_and_forward_keeps_the_main_head():
    from medseg.models.unet import UNet

    model = UNet(1, 1, [4, 8, 16, 32], pyramid=2).eval()
    x = torch.randn(2, 1, 37, 41)
    pyramid = model.forward_heads(x)
    assert len(pyramid) == 3 and all(z.shape == (2, 1, 37, 41) for z in pyramid)
    torch.testing.assert_close(pyramid[0], model(x))
    with pytest.raises(ValueError, match=r"model.pyramid must be 0\.\.1"):
        UNet(1, 1, [4, 8, 16], pyramid=2)


def test_cct_predicts_with_its_main_decoder_and_perturbs_only_the_auxiliary_ones(phantom_config):
    cfg = load_config(_semi(phantom_config, {"name": "cct"}))
    method = build_method(cfg)
    model = method.model.eval()
    assert len(model.decoders) == 4 and model.main_branch == 0
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(model(x), model.forward_branches(x)[0])
    torch.testing.assert_close(method.predict(model, x), torch.sigmoid(model.forward_branches(x)[0]))
    with pytest.raises(ValueError, match="method cct needs model mtnet with 4 decoders"):
        build_method(load_config(_semi(phantom_config, {"name": "cct"}, {"name": "unet", "features": [4, 8]})))


def test_steps_per_epoch_fixes_the_budget(tmp_path, phantom_config):
    config = _semi(phantom_config, {"name": "supervised"}, {"name": "unet", "features": [4, 8]})
    config["train"]["steps_per_epoch"] = 3
    trainer.train(load_config(config), tmp_path / "run", show_progress=False)
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [3, 6]
