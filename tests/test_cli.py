"""The command line end to end on tiny data: train → evaluate → predict → report, inspect, and error lines."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from medseg.cli import app
from tests.conftest import ISBI, LGG, need, write_png

runner = CliRunner()


def _config_file(tmp_path, config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def trained_run(tmp_path, phantom_config):
    path = _config_file(tmp_path, phantom_config())
    result = runner.invoke(app, ["train", str(path), "train.epochs=2", "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def test_train_evaluates_and_writes_report(trained_run):
    summary = json.loads((trained_run / "eval" / "test" / "summary.json").read_text())
    assert summary["cases"] > 0 and 0 <= summary["metrics"]["dice"]["mean"] <= 1
    split = summary["by_truth"]  # every case is a lesion case or a lesion-free one
    assert split["lesion"]["n"] + split["lesion_free"]["n"] == summary["cases"]
    if split["lesion_free"]["n"] == 0:
        assert split["lesion"]["dice"]["mean"] == pytest.approx(summary["metrics"]["dice"]["mean"])
    assert (trained_run / "eval" / "test" / "cases.csv").read_text().startswith("id,dice,iou")
    assert list((trained_run / "eval" / "test" / "overlays").glob("worst_*.png"))
    page = (trained_run / "report.html").read_text()
    assert "data:image/png;base64," in page and "Validation Dice" not in page or "<table>" in page


def test_evaluate_other_split_with_eval_overrides(trained_run):
    result = runner.invoke(app, ["evaluate", str(trained_run), "eval.tta=true", "--split", "val"])
    assert result.exit_code == 0, result.output
    summary = json.loads((trained_run / "eval" / "val" / "summary.json").read_text())
    assert summary["eval"]["tta"] is True
    refused = runner.invoke(app, ["evaluate", str(trained_run), "model.features=[2]"])
    assert refused.exit_code == 2 and "only eval.* overrides" in refused.output


def test_eval_checkpoint_picks_the_weights_a_run_folder_stands_for(tmp_path, phantom_config):
    import torch

    from medseg.inference import Predictor, resolve_checkpoint

    config = {**phantom_config(), "eval": {"checkpoint": "last"}}
    run = tmp_path / "run"
    args = ["train", str(_config_file(tmp_path, config)), "train.epochs=3", "--run-dir", str(run), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert summary["checkpoint"] == "last.pt" and summary["epoch"] == 3
    assert resolve_checkpoint(run) == run / "last.pt" and Predictor.load(run).epoch == 3
    assert resolve_checkpoint(run, "best") == run / "best.pt"

    result = runner.invoke(app, ["evaluate", str(run), "eval.checkpoint=best"])
    assert result.exit_code == 0, result.output
    assert "best.pt" in result.output
    summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert summary["checkpoint"] == "best.pt"
    assert summary["epoch"] == torch.load(run / "best.pt", weights_only=True)["epoch"]


def test_predict_png_writes_mask_and_overlay_at_input_size(trained_run, tmp_path):
    write_png(tmp_path / "in" / "slice.png", (np.random.default_rng(0).random((70, 50)) * 255).astype(np.uint8))
    result = runner.invoke(app, ["predict", str(trained_run), str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(tmp_path / "out" / "slice_mask.png"))
    assert mask.shape == (70, 50) and set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(tmp_path / "out" / "slice_overlay.png")).shape == (70, 50, 3)


def test_predict_resumes_without_redoing_done_outputs(trained_run, tmp_path):
    for i in range(2):
        write_png(tmp_path / "in" / f"s{i}.png", np.full((32, 32), 40 * i, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (out / "s0_mask.png").write_bytes(b"kept")  # as if done before an interruption
    result = runner.invoke(app, ["predict", str(trained_run), str(tmp_path / "in"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "s0_mask.png").read_bytes() == b"kept" and (out / "s1_mask.png").is_file()


def test_predict_nifti_in_nifti_out(trained_run, tmp_path):
    volume = np.random.default_rng(0).random((40, 44, 3)).astype(np.float32)
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    (tmp_path / "vol").mkdir()
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "vol" / "case.nii.gz")
    result = runner.invoke(
        app, ["predict", str(trained_run), str(tmp_path / "vol" / "case.nii.gz"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    out = nib.load(tmp_path / "out" / "case_mask.nii.gz")
    assert out.shape == (40, 44, 3) and np.allclose(out.affine, affine)
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1}


def test_resume_via_cli(trained_run):
    result = runner.invoke(app, ["train", str(trained_run), "--resume", "--quiet", "--no-evaluate"])
    assert result.exit_code == 0, result.output
    assert "trained 2 epochs" in result.output


def test_config_typo_is_one_clear_line(tmp_path, phantom_config):
    config = phantom_config()
    config["train"]["epoch"] = 3
    result = runner.invoke(app, ["train", str(_config_file(tmp_path, config))])
    assert result.exit_code == 2
    assert "train.epoch: unknown key; did you mean 'epochs'?" in result.output
    assert "Traceback" not in result.output


def test_missing_run_folder_is_explained(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such run folder or checkpoint" in result.output


def test_data_inspect_reports_counts_and_exits_non_zero_on_problems(image_folder):
    clean = runner.invoke(app, ["data", "inspect", str(image_folder)])
    assert clean.exit_code == 0, clean.output
    write_png(image_folder / "masks" / "case3.png", np.full((40, 40), 7, np.uint8))
    result = runner.invoke(app, ["data", "inspect", str(image_folder)])
    assert result.exit_code == 1, "a script can use inspect as a gate"
    assert "cases (2-D slices)" in result.output and "40×40: 6" in result.output
    assert "case3.png: mask is not binary" in result.output


def test_data_inspect_lgg_and_isbi_folders():
    for root, expected in ((need(LGG), "'mask_suffix': '_mask'"), (need(ISBI), "'mask_dir': 'train/label'")):
        result = runner.invoke(app, ["data", "inspect", str(root)])
        assert result.exit_code == 0, result.output
        assert expected in result.output and "problems" in result.output


def test_data_inspect_empty_folder(tmp_path):
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 1 and "the dataset is empty" in result.output


def test_skip_bad_flag_lists_skipped_cases(tmp_path, image_folder):
    write_png(image_folder / "masks" / "case2.png", np.zeros((30, 30), np.uint8))  # size ≠ image
    config = {
        "data": {
            "source": {"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"},
            "size": 32,
            "cache_dir": str(tmp_path / "cache"),
            "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
        },
        "model": {"name": "unet", "features": [4, 8]},
        "train": {"epochs": 1, "batch_size": 2},
    }
    path = _config_file(tmp_path, config)
    failed = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "a"), "--quiet"])
    assert failed.exit_code == 2 and "case2.png: mask size (30, 30) ≠ image size (40, 40)" in failed.output
    result = runner.invoke(app, ["train", str(path), "--skip-bad", "--run-dir", str(tmp_path / "b"), "--no-evaluate"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unusable cases: case2" in result.output


def test_tta_and_largest_component_options(trained_run, tmp_path):
    import torch

    from medseg.inference import Predictor
    from medseg.postprocess import keep_largest_component

    masks = np.zeros((1, 10, 10), np.uint8)
    masks[0, 1:3, 1:3] = 1
    masks[0, 5:9, 5:9] = 1
    kept = keep_largest_component(masks)
    assert kept.sum() == 16 and kept[0, 1, 1] == 0

    predictor = Predictor.load(trained_run)
    images = torch.randn(2, 1, 48, 48)
    plain = predictor.probabilities(images)
    flipped_w = predictor.probabilities(images.flip(-1)).flip(-1)
    flipped_h = predictor.probabilities(images.flip(-2)).flip(-2)
    predictor.cfg.eval.tta = True
    expected = (plain + flipped_w + flipped_h) / 3
    torch.testing.assert_close(predictor.probabilities(images), expected, atol=2e-3, rtol=1e-3)


def test_summary_is_strict_json(trained_run):
    text = (trained_run / "eval" / "test" / "summary.json").read_text()
    assert "NaN" not in text
    json.loads(text)


def test_unetpp_run_predicts_pruned_and_remembers_its_modes(tmp_path, phantom_config):

    config = phantom_config(epochs=1)
    config["model"] = {"name": "unetpp", "features": [4, 8, 16]}
    run = tmp_path / "upp"
    result = runner.invoke(
        app, ["train", str(_config_file(tmp_path, config)), "--run-dir", str(run), "--quiet", "--no-evaluate"]
    )
    assert result.exit_code == 0, result.output
    from medseg.inference import Predictor
    from medseg.models import inference_modes

    modes = inference_modes(Predictor.load(run).model)
    assert modes == ["ensemble", "head=1", "head=2", "prune=1", "prune=2"]
    write_png(tmp_path / "in" / "a.png", np.full((48, 48), 90, np.uint8))
    result = runner.invoke(
        app, ["predict", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--prune", "L1"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "a_mask.png").is_file()
    result = runner.invoke(app, ["evaluate", str(run), "--prune", "L3"])
    assert result.exit_code == 2 and "'prune=3' is not supported" in result.output and "prune=2" in result.output
    result = runner.invoke(app, ["evaluate", str(run), "--head", "1"])
    assert result.exit_code == 0, result.output


def test_prune_on_a_unet_is_refused(trained_run, tmp_path):
    result = runner.invoke(
        app, ["predict", str(trained_run), str(tmp_path), "--out", str(tmp_path / "o"), "--prune", "2"]
    )
    assert result.exit_code == 2 and "supported: ['default']" in result.output


@pytest.mark.parametrize(
    ("model", "maps"),
    [
        ({"name": "unet", "features": [4, 8, 16], "attention": "cbam"}, 2),  # one spatial map per decoder stage
        ({"name": "unet", "features": [4, 8, 16], "attention": "gate"}, 2),
        ({"name": "msga", "features": [4, 8, 16, 16], "width": 4, "blocks": 1}, 8),  # PAM per scale and step
    ],
    ids=["cbam", "gate", "msga"],
)
def test_attention_models_train_and_explain_their_maps(tmp_path, phantom_config, model, maps):
    config = phantom_config(epochs=1)
    config["model"] = model
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(_config_file(tmp_path, config)), "--run-dir", str(run), "--quiet", "--no-evaluate"]
    )
    assert result.exit_code == 0, result.output
    image = np.zeros((48, 48), np.uint8)
    image[10:30, 12:28] = 200
    write_png(tmp_path / "in" / "a.png", image)
    result = runner.invoke(app, ["explain", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "maps")])
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "maps").glob("a_*.png"))
    assert len(written) == maps and f"{maps} attention maps" in result.output
    assert len(list((tmp_path / "maps").glob("a_*.npy"))) == maps
    picture = np.asarray(Image.open(written[0]))
    assert picture.ndim == 3 and picture.shape[1] > 1.8 * picture.shape[0] and picture.std() > 0  # image | map


def test_explain_refuses_a_model_without_spatial_attention(trained_run, tmp_path):
    write_png(tmp_path / "in" / "a.png", np.full((48, 48), 90, np.uint8))
    result = runner.invoke(app, ["explain", str(trained_run), str(tmp_path / "in"), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "has no spatial attention to draw" in result.output


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_explain_grad_cam_of_a_segmentation_run(trained_run, tmp_path, method):
    write_png(tmp_path / "in" / "a.png", np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8))
    out = tmp_path / "cams"
    result = runner.invoke(
        app, ["explain", str(trained_run), str(tmp_path / "in"), "--out", str(out), "--method", method]
    )
    assert result.exit_code == 0, result.output
    stem = f"a_{method.replace('+', 'p')}"
    values = np.load(out / f"{stem}.npy")
    assert values.shape == (48, 48) and values.min() >= 0 and values.max() <= 1
    assert (out / f"{stem}.png").is_file()


def test_explain_cam_needs_a_classifier(trained_run, tmp_path):
    write_png(tmp_path / "in" / "a.png", np.full((48, 48), 90, np.uint8))
    result = runner.invoke(app, ["explain", str(trained_run), str(tmp_path / "in"), "--method", "cam"])
    assert result.exit_code == 2 and "needs a classifier" in result.output


@pytest.mark.parametrize(("pool", "method"), [("avg", "cam"), ("attention", "acam")])
def test_classifier_run_trains_on_image_labels_evaluates_and_explains(tmp_path, phantom_config, pool, method):
    config = phantom_config(epochs=2)
    config["model"] = {"name": "classifier", "features": [4, 8, 16], "pool": pool}
    config["method"] = {"name": "classification", "label_from": "mask"}
    run = tmp_path / "cls"
    result = runner.invoke(app, ["train", str(_config_file(tmp_path, config)), "--run-dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "val accuracy" in result.output and "test: accuracy" in result.output
    assert (run / "metrics.csv").read_text().splitlines()[0].endswith("val_accuracy,seconds")
    summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert summary["task"] == "classification" and 0 <= summary["metrics"]["accuracy"]["mean"] <= 1
    assert "<th>roc_auc</th>" in (run / "report.html").read_text()
    write_png(tmp_path / "in" / "a.png", np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8))
    result = runner.invoke(
        app, ["explain", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "m"), "--method", method]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / f"a_{method}.npy").is_file()


def test_image_labels_only_run_the_weak_pipeline(tmp_path, phantom_config):
    config = phantom_config(epochs=2)
    config["supervision"] = "image-labels"
    config["weak"] = {"classifier": {"name": "classifier", "features": [4, 8, 16], "pool": "attention"}, "epochs": 2}
    config["model"] = {"name": "unet", "features": [4, 8, 16]}
    run = tmp_path / "weak"
    result = runner.invoke(app, ["train", str(_config_file(tmp_path, config)), "--run-dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run / "classifier" / "best.pt").is_file() and (run / "pseudo_masks.npz").is_file()
    quality = json.loads((run / "weak.json").read_text())["stage1"]
    assert quality["maps"] == "acam" and 0 <= quality["train"]["pseudo_mask"]["precision"] <= 1
    assert len(list((run / "weak_panels").glob("panel_*.png"))) >= 1
    assert "From image labels" in (run / "report.html").read_text()
    assert "test: Dice" in result.output  # the segmentation stage is evaluated on the true test masks
    with np.load(run / "pseudo_masks.npz") as pseudo:
        test_ids = {
            line.split(",")[0] for line in (run / "splits.csv").read_text().splitlines() if line.endswith(",test")
        }
        assert test_ids and not test_ids & {str(i) for i in pseudo["ids"]}, "no pseudo-mask for a test image"


def test_weak_pipeline_with_region_growing(tmp_path, phantom_config):
    config = phantom_config(epochs=1)
    config["supervision"] = "image-labels"
    config["weak"] = {
        "classifier": {"name": "classifier", "features": [4, 8, 16], "pool": "avg"},
        "epochs": 1,
        "maps": "cam",
        "stage2": "wsr",
        "pairs": 64,
    }
    config["model"] = {"name": "unet", "features": [4, 8, 16]}
    run = tmp_path / "wsr"
    result = runner.invoke(app, ["train", str(_config_file(tmp_path, config)), "--run-dir", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
    assert 0 <= summary["metrics"]["dice"]["mean"] <= 1
    # the checkpoint carries the classifier it grows from: the run predicts from anywhere, its classifier run gone
    moved = tmp_path / "elsewhere" / "wsr"
    moved.parent.mkdir()
    shutil.move(run, moved)
    shutil.rmtree(moved / "classifier")
    write_png(tmp_path / "in" / "a.png", np.full((48, 48), 90, np.uint8))
    result = runner.invoke(app, ["predict", str(moved), str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "a_mask.png").is_file()
    result = runner.invoke(app, ["evaluate", str(moved)])
    assert result.exit_code == 0, result.output


def test_weak_pipeline_refuses_non_binary_image_labels(tmp_path, phantom_config):
    config = phantom_config(epochs=1)
    config["supervision"] = "image-labels"
    config["weak"] = {"label_from": "case", "classes": [1]}
    result = runner.invoke(app, ["train", str(_config_file(tmp_path, config)), "--run-dir", str(tmp_path / "w")])
    assert result.exit_code == 2 and "needs image labels" in result.output
