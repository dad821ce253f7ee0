"""Native resolution: slices stored at their own sizes, patches with foreground oversampling, sliding-window
inference that matches a whole-image pass, odd non-square images predicted at their own size, metrics in mm."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import load_config
from medseg.data.dataset import iterate_batches, prepare_dataset
from medseg.data.patches import sample_patches
from medseg.losses import IGNORE_INDEX
from medseg.models import build_model
from medseg.windows import window_probabilities
from tests.conftest import write_png

runner = CliRunner()


def _native_config(root, tmp_path, **train) -> dict:
    return {
        "name": "native",
        "output_dir": str(tmp_path / "runs"),
        "data": {
            "source": {"format": "folder", "root": str(root), "image_dir": "images", "mask_dir": "masks"},
            "resolution": "native",
            "channels": 3,
            "cache_dir": str(tmp_path / "cache"),
            "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
        },
        "augment": {"patch": 32},
        "model": {"name": "unet", "features": [4, 8, 16]},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.003, **train},
    }


def test_the_store_keeps_each_slice_at_its_own_size_or_one_scale(tmp_path, rgb_folder):
    config = _native_config(rgb_folder, tmp_path)
    store = prepare_dataset(load_config(config).data, 0).store
    assert not store.uniform
    assert {tuple(store.image(i).shape) for i in range(len(store.ids))} == {
        (3, 45, 61),
        (3, 52, 40),
        (3, 61, 47),
        (3, 40, 56),
    }
    assert store.mask(0).shape == store.image(0).shape[1:]
    config["data"]["scale"] = 0.5
    half = prepare_dataset(load_config(config).data, 0).store
    assert tuple(half.image(half.position["case00"]).shape) == (3, 22, 30), "one factor, the aspect ratio kept"
    with pytest.raises(ValueError, match="different sizes"):
        _ = half.images


def test_foreground_oversampling_draws_the_configured_share(tmp_path):
    """Slices with one 2×2 lesion: a uniform 16×16 window of a 128×128 slice holds it about 2% of the time, so the
    share of windows that do is the share drawn on purpose."""
    for index in range(8):
        mask = np.zeros((128, 128), np.uint8)
        mask[10 + 12 * index : 12 + 12 * index, 70:72] = 255
        write_png(tmp_path / "small" / "images" / f"{index}.png", np.full((128, 128), 80, np.uint8))
        write_png(tmp_path / "small" / "masks" / f"{index}.png", mask)
    config = _native_config(tmp_path / "small", tmp_path)
    config["data"]["channels"] = 1
    store = prepare_dataset(load_config(config).data, 0).store
    rows = np.arange(len(store.ids))
    generator = torch.Generator().manual_seed(0)
    for share in (0.0, 0.25, 0.5, 1.0):
        with_lesion = []
        for _ in range(40):
            batch = sample_patches(store, rows, 16, share, generator)
            with_lesion += ((batch["mask"] == 1).flatten(1).any(1)).tolist()
        drawn = np.mean(with_lesion)
        assert share <= drawn <= share + 0.05, (share, drawn)


def test_a_slice_smaller_than_the_patch_is_padded_and_the_padding_is_unknown(tmp_path, rgb_folder):
    store = prepare_dataset(load_config(_native_config(rgb_folder, tmp_path)).data, 0).store
    batch = sample_patches(store, np.array([store.position["case01"]]), 64, 0.0, torch.Generator().manual_seed(0))
    assert batch["image"].shape == (1, 3, 64, 64)
    assert (batch["mask"][0, 52:, :] == IGNORE_INDEX).all() and (batch["mask"][0, :, 40:] == IGNORE_INDEX).all()


def test_sliding_windows_equal_a_whole_image_pass_when_one_window_covers_the_image():
    torch.manual_seed(0)
    model = build_model({"name": "unet", "features": [4, 8, 16], "in_channels": 3}).eval()
    images = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        whole = torch.sigmoid(model(images))
        windowed = window_probabilities(lambda x: torch.sigmoid(model(x)), images, 48, 0.5)
    torch.testing.assert_close(windowed, whole, atol=1e-5, rtol=1e-4)
    pixelwise = torch.nn.Conv2d(3, 1, 1).eval()  # no context: windows of any overlap give the same map
    with torch.no_grad():
        bigger = torch.rand(1, 3, 61, 45)
        torch.testing.assert_close(
            window_probabilities(pixelwise, bigger, 32, 0.5), pixelwise(bigger), atol=1e-5, rtol=0
        )


def test_a_native_run_trains_on_patches_and_predicts_an_odd_non_square_image_at_its_own_size(tmp_path, rgb_folder):
    config = _native_config(rgb_folder, tmp_path)
    path = tmp_path / "native.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert summary["resolution"] == "native"
    odd = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    write_png(tmp_path / "new" / "odd.png", odd)
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "new"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "out" / "odd_mask.png")).shape == (37, 53)


def test_a_native_config_needs_a_patch_and_a_square_one_no_patch(tmp_path, rgb_folder):
    config = _native_config(rgb_folder, tmp_path)
    del config["augment"]
    with pytest.raises(ValueError, match="native trains on patches: set augment.patch"):
        load_config(config)


def test_whole_slices_of_one_size_are_batched_together(tmp_path, rgb_folder):
    store = prepare_dataset(load_config(_native_config(rgb_folder, tmp_path)).data, 0).store
    batches = list(iterate_batches(store, np.arange(len(store.ids)), 8))
    assert sum(len(b["row"]) for b in batches) == len(store.ids)
    assert all(len({tuple(store.shapes[r]) for r in b["row"].tolist()}) == 1 for b in batches)


def test_a_square_run_is_measured_against_the_source_masks_as_drawn(tmp_path, image_folder):
    """Stored at 32×32, measured at the 40×40 the masks were drawn at: the predicted probabilities upsampled."""
    import csv

    import torch.nn.functional as F

    from medseg.evaluation import evaluate_run
    from medseg.inference import Predictor
    from medseg.metrics import case_metrics

    config = {
        "data": {
            "source": {"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"},
            "size": 32,
            "cache_dir": str(tmp_path / "cache"),
            "splits": {"train": 0.5, "val": 0.17, "test": 0.33},
        },
        "model": {"name": "unet", "features": [4, 8]},
        "train": {"epochs": 2, "batch_size": 2},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--quiet", "--no-evaluate"]).exit_code == 0
    summary = evaluate_run(run, "test", overrides=["eval.resolution=source"], label="test-source")
    assert summary["resolution"].startswith("source")
    with (run / "eval" / "test-source" / "cases.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    predictor = Predictor.load(run)
    dataset = prepare_dataset(predictor.cfg.data, 0, {r["id"]: "test" for r in rows})
    for row in rows:
        case = dataset.case(row["id"])
        image = torch.from_numpy(dataset.store.image(dataset.store.position[row["id"]]).astype(np.float32))[None]
        probs = F.interpolate(predictor.probabilities(image), size=(40, 40), mode="bilinear", align_corners=False)
        truth = np.asarray(Image.open(case.mask)) > 0
        expected = case_metrics(predictor.masks_from(probs)[0], truth.astype(np.uint8))
        assert float(row["dice"]) == pytest.approx(expected["dice"], abs=1e-6)


def test_the_native_rgb_template_trains_from_the_config_alone(tmp_path, rgb_folder):
    from tests.conftest import REPO

    overrides = [
        f"data.source.root={rgb_folder}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'runs'}",
        "augment.patch=32",
        "model.features=[4,8,16]",
        "train.epochs=1",
        "train.batch_size=4",
        "train.max_minutes=null",
    ]
    template = REPO / "configs" / "template-native-rgb.yaml"
    result = runner.invoke(app, ["train", str(template), *overrides, "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "eval" / "test" / "summary.json").read_text())["resolution"] == "native"
