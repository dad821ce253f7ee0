"""The weakly supervised path end to end on phantoms: LayerCAM maps averaged over flips and scales, a CRF,
thresholds chosen on validation patients, self-training; true training masks never read; lesion types as labels."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from medseg.config import load_config
from medseg.data.readers.phantoms import make_phantom
from medseg.engine.trainer import train
from medseg.explain import EXPLAINERS, Request
from medseg.losses import IGNORE_INDEX
from medseg.models import build_model
from medseg.run_folder import RunFolder
from medseg.weak.choices import LOCALISATION_FLOOR, choose_classifier, chosen_maps, localisation_warning
from medseg.weak.pipeline import train_weak
from medseg.weak.pseudo_masks import make_pseudo_masks
from medseg.weak.refine import crf_refine
from medseg.weak.relabelling import _choose_confident, write_pseudo_masks
from medseg.weak.seeds import batch_maps
from medseg.weak.stages import classifier_config
from tests.conftest import write_png


def _phantom_folder(root, count=24, corrupt: bool = False, types: bool = False):
    """Phantom slices as a folder data set, 4 slices per group (labels.csv); with `corrupt`, every non-empty
    training-like mask is replaced by a one-pixel mask (same image label, other pixels)."""
    rows = []
    for index in range(count):
        image, mask = make_phantom(seed=5, index=index, size=48, lesion_fraction=1.0 if types else 0.6)
        if corrupt and mask.any():
            mask = np.zeros_like(mask)
            mask[0, 0] = 1
        write_png(root / "images" / f"{index:02d}.png", (image * 255).astype(np.uint8))
        write_png(root / "masks" / f"{index:02d}.png", mask * 255)
        rows.append([f"{index:02d}.png", 1 + index % 3, index // 4])
    with (root / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "label", "group"], *rows])
    return root


def _config(root, tmp_path, **weak):
    return {
        "name": "weak",
        "output_dir": str(tmp_path / "runs"),
        "supervision": "image-labels",
        "data": {
            "source": {
                "format": "folder",
                "root": str(root),
                "image_dir": "images",
                "mask_dir": "masks",
                "labels_csv": "labels.csv",
                "group_column": "group",
            },
            "size": 48,
            "cache_dir": str(tmp_path / "cache"),
            "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
        },
        "model": {"name": "unet", "features": [4, 8, 16]},
        "train": {"epochs": 1, "batch_size": 4, "lr": 0.003},
        "weak": {"classifier": {"name": "classifier", "features": [4, 8, 16]}, "epochs": 1, **weak},
    }


def test_the_whole_path_with_layercam_crf_chosen_thresholds_and_self_training(tmp_path, monkeypatch):
    root = _phantom_folder(tmp_path / "data")
    weak = {"maps": "layercam", "augment_maps": True, "body_margin": 0.05, "refine": "crf", "rounds": 2}
    weak.update(choose_thresholds=True, choose_maps=["cam", "layercam"], choose_postprocessing=True)
    weak.update(choose_confident=True)
    raw = _config(root, tmp_path, classifier_tries=2, **weak)
    cfg, run = load_config({**raw, "eval": {"checkpoint": "last"}}), tmp_path / "run"
    train_weak(cfg, run, show_progress=False)
    report = json.loads((run / "weak.json").read_text())
    choice = report["maps_choice"]
    assert set(choice["validation_dice"]) == {"cam", "layercam"}
    assert choice["maps"] == max(choice["validation_dice"], key=choice["validation_dice"].get)
    assert report["stage1"]["maps"] == choice["maps"], "stage 1's pseudo-masks come from the chosen maps"
    if choice["maps"] == "layercam":  # the tries are judged with weak.maps
        chosen = next(t for t in report["classifier_tries"] if t["folder"] == report["classifier"])
        assert chosen["val_pointing_game"] == pytest.approx(report["stage1"]["val"]["pointing_game"]), "same maps"
    monkeypatch.setattr("medseg.weak.choices.choose_maps", lambda *args: pytest.fail("measured again on resume"))
    assert chosen_maps(cfg, RunFolder(run), RunFolder(run).classifier).weak.maps == choice["maps"]
    thresholds = report["stage1"]["thresholds"]
    assert thresholds["validation_dice"] and thresholds["foreground"] == pytest.approx(4 * thresholds["background"])
    assert "pseudo_mask" in report["round2"]["train"], "round 2's pseudo-masks came from round 1's network"
    confident = report["round2"]["validation_dice"]
    assert report["round2"]["confident"] == float(max(confident, key=confident.get)), "chosen on validation"
    assert (run / "round1" / "last.pt").is_file() and (run / "last.pt").is_file()
    assert (run / "pseudo_masks_round2.npz").is_file()
    assert list((run / "weak_panels").glob("*.png"))
    postprocessing = report["postprocessing"]
    assert (postprocessing["split"], postprocessing["checkpoint"]) == ("val", "last"), "chosen on validation"
    settings = RunFolder(run).config.eval
    assert postprocessing["settings"] == settings.model_dump(include={"threshold", "tta", "largest_component"})
    assert RunFolder(run).classifier.config.eval.checkpoint == "best", "the classifier stands for its maps' weights"


def test_self_training_relabels_with_the_confidence_that_matches_the_validation_masks():
    truth = np.zeros((2, 8, 8), dtype=np.uint8)
    truth[0, 2:6, 2:6] = 1  # a 4×4 lesion; image 1 holds none
    probs = np.full((2, 8, 8), 0.05, dtype=np.float32)
    probs[0, 1:7, 1:7] = 0.75  # a ring the network is unsure of ...
    probs[0, 2:6, 2:6] = 0.97  # ... around the lesion it is sure of
    confident, scores = _choose_confident({"probs": probs, "truth": truth})
    assert confident == 0.8 and scores["0.8"] == pytest.approx(1.0) and scores["0.7"] < 1.0
    masks = make_pseudo_masks(torch.from_numpy(probs)[:, None], torch.tensor([1, 0]), confident, 1 - confident).numpy()
    assert (masks[0] == 1).sum() == 16 and (masks[0][probs[0] == 0.75] == IGNORE_INDEX).all(), "the ring is unknown"
    assert (masks[1] == 0).all(), "an image labelled without lesion stays background"


def test_pseudo_masks_never_read_a_true_training_mask_and_keep_negative_images_empty(tmp_path):
    """The same images and image labels, other lesion pixels in the training masks: the pseudo-masks must not change
    (the validation masks, which choosing thresholds may read, are the same in both). The CRF takes images and maps
    only (tested below)."""
    clean = _phantom_folder(tmp_path / "clean")
    corrupt = _phantom_folder(tmp_path / "corrupt", corrupt=True)
    cfg = load_config(_config(clean, tmp_path, maps="cam", foreground=0.8, background=0.3))
    classifier = tmp_path / "classifier"
    train(classifier_config(cfg), classifier, show_progress=False)
    splits = RunFolder(classifier).splits()
    for path in (corrupt / "masks").glob("*.png"):  # the corrupted set keeps the true validation and test masks
        if splits[path.stem] != "train":
            path.write_bytes((clean / "masks" / path.name).read_bytes())
    results = []
    for root in (clean, corrupt):
        raw = cfg.model_dump(mode="json")
        raw["data"]["source"]["root"] = str(root)
        raw["data"]["cache_dir"] = str(tmp_path / f"cache-{root.name}")
        write_pseudo_masks(RunFolder(classifier), load_config(raw), tmp_path / f"{root.name}.npz")
        with np.load(tmp_path / f"{root.name}.npz") as data:
            results.append((list(data["ids"]), data["masks"]))
    assert results[0][0] == results[1][0]
    lesion_share = (results[0][1] == 1).mean()
    assert 0 < lesion_share < 0.5, "pseudo-masks neither empty nor everything: the comparison can tell"
    np.testing.assert_array_equal(results[0][1], results[1][1])
    truth = {p.stem: np.asarray(Image.open(p)) for p in (clean / "masks").glob("*.png")}
    for case_id, pseudo in zip(*results[0], strict=True):
        if not truth[case_id].any():
            assert (pseudo == 0).all(), f"{case_id}: an image labelled without lesion stays background"


def test_the_crf_gives_a_probability_map_that_follows_the_image_and_leaves_negatives_empty():
    images = torch.zeros(2, 1, 32, 32)
    images[:, :, 8:20, 8:20] = 0.8
    maps = torch.zeros(2, 1, 32, 32)
    maps[:, :, 10:22, 10:22] = 0.6
    out = crf_refine(images, maps, torch.tensor([True, False]))
    assert out.shape == maps.shape and (out >= 0).all() and (out <= 1).all()
    assert out[0, 0, 14, 14] > 0.9 and out[0, 0, 20, 20] < 0.1, "the map's box moves to the image's edges"
    assert (out[1] == 0).all()


def test_layer_cam_at_the_last_stage_of_a_gap_classifier_is_the_cam_of_its_positive_weights():
    torch.manual_seed(0)
    model = build_model({"name": "classifier", "features": [4, 8, 16], "out_channels": 2}).eval()
    images = torch.randn(2, 1, 32, 32)
    request = Request(model, images, lambda logits: logits[:, 1], 1, (model.encoder.stages[-1],))
    maps = EXPLAINERS["layercam"]().maps(request)
    maps = maps / maps.amax((1, 2, 3), keepdim=True)
    with torch.no_grad():
        features = model.features(images)
        expected = torch.einsum("c,bchw->bhw", torch.relu(model.head.weight[1]), features)[:, None]
    expected = torch.nn.functional.interpolate(expected, size=(32, 32), mode="bilinear", align_corners=False)
    expected = expected / expected.amax((1, 2, 3), keepdim=True)
    torch.testing.assert_close(maps, expected, atol=1e-4, rtol=1e-3)


def test_lesion_types_as_labels_seed_each_image_with_its_own_class_map(tmp_path):
    root = _phantom_folder(tmp_path / "types", types=True)
    config = _config(root, tmp_path, label_from="case", classes=[1, 2, 3], maps="cam")
    run = tmp_path / "typed"
    train_weak(load_config(config), run, show_progress=False)
    stage1 = json.loads((run / "weak.json").read_text())["stage1"]
    assert stage1["train"]["lesion_images"] == stage1["train"]["images"]
    with np.load(run / "pseudo_masks.npz") as data:
        assert (data["masks"] == 1).reshape(len(data["masks"]), -1).any(1).all(), "every image is seeded"


def test_balanced_classification_weighs_each_class_equally(phantom_config):
    from tests.helpers import built_method

    config = phantom_config()
    config["model"] = {"name": "classifier", "features": [4, 8]}
    config["method"] = {"name": "classification", "balanced": True}
    method = built_method(config)
    logits = torch.tensor([[2.0], [2.0], [2.0], [-1.0]])
    labels = torch.tensor([1, 1, 1, 0])
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels.float(), reduction="none")
    expected = (losses[:3].mean() + losses[3]) / 2
    torch.testing.assert_close(method._loss(logits, labels), expected)


def test_maps_that_do_not_localise_on_validation_are_flagged():
    # the two LGG classifiers of benchmarks/RESULTS.md: one localised (0.65), one recognised a shortcut (0.17)
    assert localisation_warning({"val": {"pointing_game": 0.65}}) is None
    message = localisation_warning({"val": {"pointing_game": 0.17}})
    assert message is not None and "17%" in message and "do not localise" in message
    assert localisation_warning({"val": {"pointing_game": LOCALISATION_FLOOR}}) is None
    assert localisation_warning({"val": {"images": 4, "lesion_images": 0}}) is None  # no lesion image to judge by


def test_a_classifier_whose_maps_do_not_localise_is_retrained_with_another_seed_on_the_same_split(tmp_path):
    root = _phantom_folder(tmp_path / "data")
    cfg = load_config(_config(root, tmp_path, classifier_tries=3))
    run = RunFolder(tmp_path / "run")
    scores = iter([0.1, 0.5, 0.9])  # the first try points outside the lesions, the second localises
    chosen = choose_classifier(cfg, run, show_progress=False, pointing=lambda folder, _: next(scores))
    assert chosen.path == run.path / "classifier-try2" and run.classifier.path == chosen.path
    assert not (run.path / "classifier-try3").exists(), "the tries stop at the first that localises"
    assert chosen.splits_path.read_text() == run.classifier_try(1).splits_path.read_text()
    assert chosen.config.seed == cfg.seed + 1
    tries = json.loads(run.weak_path.read_text())["classifier_tries"]
    assert [(t["folder"], t["val_pointing_game"]) for t in tries] == [("classifier", 0.1), ("classifier-try2", 0.5)]


def test_when_no_classifier_localises_the_best_try_is_kept(tmp_path):
    root = _phantom_folder(tmp_path / "data")
    cfg = load_config(_config(root, tmp_path, classifier_tries=2))
    run = RunFolder(tmp_path / "run")
    scores = {"classifier": 0.2, "classifier-try2": 0.1}
    chosen = choose_classifier(cfg, run, show_progress=False, pointing=lambda folder, _: scores[folder.path.name])
    assert chosen.path.name == "classifier" and RunFolder(run.path).classifier.path.name == "classifier"
    assert (run.path / "classifier-try2" / "last.pt").is_file()


def test_with_choose_classifier_every_try_trains_and_the_best_maps_on_validation_win(tmp_path):
    root = _phantom_folder(tmp_path / "data")
    cfg = load_config(_config(root, tmp_path, classifier_tries=3, choose_classifier=True, choose_thresholds=True))
    run = RunFolder(tmp_path / "run")
    dice = {"classifier": 0.4, "classifier-try2": 0.7, "classifier-try3": 0.5}
    seen = []

    def maps_score(folder, _):
        seen.append(folder.path.name)
        return "cam", {"cam": dice[folder.path.name]}

    def pointing(folder, _):
        raise AssertionError("the pointing game does not decide here")

    chosen = choose_classifier(cfg, run, show_progress=False, pointing=pointing, maps_score=maps_score)
    assert seen == ["classifier", "classifier-try2", "classifier-try3"], "every try trains, even after one localises"
    assert chosen.path.name == "classifier-try2" and run.classifier.path == chosen.path
    report = json.loads(run.weak_path.read_text())
    assert report["maps_choice"] == {"maps": "cam", "validation_dice": {"cam": 0.7}}
    assert [t["maps_choice"]["validation_dice"]["cam"] for t in report["classifier_tries"]] == [0.4, 0.7, 0.5]
    seen.clear()  # a resumed run takes the recorded figures
    again = choose_classifier(cfg, run, show_progress=False, pointing=pointing, maps_score=maps_score)
    assert again.path == chosen.path
    assert seen == []
    with pytest.raises(ValueError, match="choose_thresholds"):
        load_config(_config(root, tmp_path, classifier_tries=3, choose_classifier=True))


def test_choosing_maps_needs_thresholds_chosen_on_validation(tmp_path):
    raw = _config(tmp_path / "data", tmp_path, choose_maps=["cam", "layercam"])
    with pytest.raises(ValueError, match="choose_thresholds"):
        load_config(raw)


def test_maps_are_kept_inside_the_body_unless_nothing_is_left_there(tmp_path, monkeypatch):
    """Two heads in the middle of a black frame, with given maps: one map peaks outside the head and has evidence
    inside it (masked, then peaks at 1 inside), the other lies wholly outside the head (kept as it was rather than
    turned into an all-background map)."""
    images = torch.zeros(2, 1, 48, 48)
    images[:, :, 8:40, 8:40] = 0.8  # the head; with a margin of 0.1, 5 pixels of its rim go too
    given = torch.zeros(2, 1, 48, 48)
    given[:, 0, 2, 2] = 1.0  # the air in a corner
    given[0, 0, 20:24, 20:24] = 0.3  # inside the head
    monkeypatch.setattr("medseg.weak.seeds.lesion_maps", lambda *args, **kwargs: given.clone())
    predictor = type("Predictor", (), {"model": None})()
    cfg = load_config(_config(tmp_path / "data", tmp_path, maps="cam", body_margin=0.1))
    maps = batch_maps(predictor, images, torch.ones(2, dtype=torch.long), cfg)
    assert maps[0, 0, 2, 2] == 0 and maps[0, 0, 20:24, 20:24].eq(1).all()
    assert torch.equal(maps[1], given[1])


def test_a_level_balanced_classifier_trains_with_weights_from_its_training_slices(tmp_path):
    root = _phantom_folder(tmp_path / "data")
    cfg = classifier_config(load_config(_config(root, tmp_path, level_balanced=True)))
    assert cfg.method["level_balanced"] is True
    result = train(cfg, tmp_path / "classifier", show_progress=False)  # the trainer attaches the training rows
    assert result.epochs_done == 1
