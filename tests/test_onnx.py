"""ONNX export: onnxruntime agrees with PyTorch on other batch and image sizes, and predicting from the
exported file needs no model, method or training code."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import load_config
from medseg.engine.trainer import train
from medseg.inference import Predictor
from medseg.onnx_export import OnnxPredictor, export_onnx
from tests.conftest import write_png

pytest.importorskip("onnxruntime")
runner = CliRunner()
TOLERANCE = 1e-4  # float32 probabilities, max absolute difference


@pytest.fixture(scope="module")
def unetpp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("onnx")
    config = {
        "name": "tiny-upp",
        "data": {
            "source": {"format": "phantoms", "count": 24, "size": 48, "slices_per_group": 4},
            "size": 48,
            "cache_dir": str(tmp / "cache"),
        },
        "model": {"name": "unetpp", "features": [4, 8, 16, 32]},
        "train": {"epochs": 1, "batch_size": 8},
    }
    train(load_config(config), tmp / "run", show_progress=False)
    return tmp / "run"


@pytest.mark.slow
def test_onnx_runtime_matches_pytorch_for_a_pruned_unetpp_at_new_sizes(unetpp_run, tmp_path):
    path = export_onnx(unetpp_run, tmp_path / "model.onnx", mode="prune=2")
    reference = Predictor.load(unetpp_run, device="cpu", mode="prune=2")
    deployed = OnnxPredictor.load(path)
    assert deployed.cfg.model["name"] == "unetpp"
    for shape in [(3, 1, 48, 48), (1, 1, 37, 50)]:
        images = torch.randn(*shape)
        with torch.no_grad():
            expected = reference.method.predict(reference.model.float(), images)
        got = deployed.probabilities(images)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < TOLERANCE


@pytest.mark.slow
def test_predict_from_onnx_loads_no_model_method_or_training_code(unetpp_run, tmp_path):
    result = runner.invoke(app, ["export", str(unetpp_run), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    for i in range(3):
        write_png(tmp_path / "in" / f"s{i}.png", (np.random.default_rng(i).random((40 + i, 44)) * 255).astype(np.uint8))
    script = f"""
import sys
from typer.testing import CliRunner
from medseg.cli import app
result = CliRunner().invoke(app, ["predict", "--onnx", {str(tmp_path / "m.onnx")!r}, {str(tmp_path / "in")!r},
                                  "--out", {str(tmp_path / "out")!r}])
assert result.exit_code == 0, result.output
loaded = sorted(m for m in sys.modules if m.startswith(("medseg.models", "medseg.methods", "medseg.engine")))
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    for i in range(3):
        assert np.asarray(Image.open(tmp_path / "out" / f"s{i}_mask.png")).shape == (40 + i, 44)


def test_a_file_that_is_not_a_medseg_onnx_model_is_one_clear_line(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    write_png(tmp_path / "in" / "a.png", np.zeros((8, 8), np.uint8))
    result = runner.invoke(app, ["predict", "--onnx", str(tmp_path / "bad.onnx"), str(tmp_path / "in")])
    assert result.exit_code == 2 and "bad.onnx" in result.output and "not a readable ONNX model" in result.output
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "x"}))
    result = runner.invoke(app, ["export", str(tmp_path / "missing"), "--format", "tflite"])
    assert result.exit_code == 2 and "--format must be onnx" in result.output


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("{not json", "the medseg config inside is not readable"),
        ("[" * 100_000 + "]" * 100_000, "the medseg config inside is not readable"),
        (None, "its config says data.channels=3 but the graph takes 1"),
    ],
)
def test_the_config_inside_an_onnx_file_is_checked_before_it_is_used(unetpp_run, tmp_path, config_text, message):
    import json

    import onnx

    from medseg.onnx_export import CONFIG_KEY

    path = tmp_path / "model.onnx"
    export_onnx(unetpp_run, path)
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == CONFIG_KEY)
    if config_text is None:  # a config that disagrees with the graph
        edited = json.loads(entry.value)
        edited["data"]["channels"] = 3
        config_text = json.dumps(edited)
    entry.value = config_text
    onnx.save(model, str(path))
    write_png(tmp_path / "in" / "a.png", np.zeros((8, 8), np.uint8))
    result = runner.invoke(app, ["predict", "--onnx", str(path), str(tmp_path / "in"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output, result.output


def test_an_export_removes_what_a_killed_export_of_the_same_file_left(unetpp_run, tmp_path):
    out = tmp_path / "model.onnx"
    killed = tmp_path / ".model.onnx.tmp.k1ll3d_x.onnx"
    mine = [tmp_path / ".model.onnx.tmp.notes", tmp_path / ".other.onnx.tmp.abcdefgh.onnx"]
    for path in [killed, *mine]:
        path.write_bytes(b"half")
    export_onnx(unetpp_run, out)
    assert out.is_file() and not killed.exists() and all(path.exists() for path in mine)


def test_an_int8_export_is_quantised_carries_the_config_and_predicts_near_the_float_model(unetpp_run, tmp_path):
    import onnx

    from medseg.onnx_int8 import PRECISION_KEY

    result = runner.invoke(
        app, ["export", str(unetpp_run), "--out", str(tmp_path / "int8.onnx"), "--int8", "--calibration", "8"]
    )
    assert result.exit_code == 0, result.output
    export_onnx(unetpp_run, tmp_path / "fp32.onnx")
    model = onnx.load(str(tmp_path / "int8.onnx"))
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    assert {entry.key: entry.value for entry in model.metadata_props}[PRECISION_KEY] == "int8"
    images = torch.rand(3, 1, 48, 48)
    fp32 = OnnxPredictor.load(tmp_path / "fp32.onnx").probabilities(images)
    int8 = OnnxPredictor.load(tmp_path / "int8.onnx").probabilities(images)
    assert int8.shape == fp32.shape and (int8 - fp32).abs().mean() < 0.05


def test_int8_needs_the_run_folder_for_its_calibration_images(unetpp_run, tmp_path):
    result = runner.invoke(app, ["export", str(unetpp_run / "last.pt"), "--int8"])
    assert result.exit_code == 2 and "give the run folder" in result.output
