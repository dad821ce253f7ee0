"""Edges a careful user hits (issue 47): values that are range-checked where they are read, and options that mean
what they say. Each refusal is one line (exit 2) naming the option or field."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import load_config
from medseg.errors import ConfigError
from tests.conftest import write_png

runner = CliRunner()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("seed=-1", "seed"),
        ("train.grad_clip=-1", "train.grad_clip"),  # a negative clip would ascend the gradient
        ("train.grad_clip=0", "train.grad_clip"),
        ("train.device=tpu", "train.device"),
        ("train.threads=100000", "train.threads"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(phantom_config, override, field):
    with pytest.raises(ConfigError, match=f"{field}: "):
        load_config(phantom_config(), [override])


def test_in_range_settings_still_load(phantom_config):
    cfg = load_config(phantom_config(), ["train.grad_clip=null", "train.device=cuda:1", "seed=4294967295"])
    assert (cfg.train.grad_clip, cfg.train.device, cfg.seed) == (None, "cuda:1", 2**32 - 1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny trained run for the command-line checks below."""
    tmp = tmp_path_factory.mktemp("edges")
    config = {
        "name": "tiny",
        "data": {
            "source": {"format": "phantoms", "count": 32, "size": 32, "slices_per_group": 4},
            "size": 32,
            "cache_dir": str(tmp / "cache"),
        },
        "model": {"name": "unet", "features": [4, 8]},
        "train": {"epochs": 1, "batch_size": 8},
        "eval": {"overlays": 0},
    }
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    write_png(tmp / "in" / "x.png", np.full((32, 32), 90, np.uint8))
    return tmp


@pytest.mark.parametrize("threshold", ["-1", "1.5", "nan", "0", "1"])
def test_predict_refuses_a_threshold_that_is_not_a_probability(run, threshold):
    result = runner.invoke(
        app, ["predict", str(run / "run"), str(run / "in"), "--out", str(run / "p"), "--threshold", threshold]
    )
    assert result.exit_code == 2 and "--threshold is a probability strictly between 0 and 1" in result.output
    assert not (run / "p" / "x_mask.png").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--region", "predicetd"], "--region must be one of"),
        (["--class", "5"], "--class 5: this model has"),
        (["--class", "-3"], "--class -3: this model has"),
    ],
)
def test_explain_refuses_a_region_or_class_the_model_has_not(run, option, message):
    result = runner.invoke(
        app, ["explain", str(run / "run"), str(run / "in"), "--out", str(run / "e"), "--method", "gradcam", *option]
    )
    assert result.exit_code == 2 and message in result.output, result.output


def test_report_of_one_run_writes_where_out_says(run):
    result = runner.invoke(app, ["report", str(run / "run"), "--out", str(run / "page.html")])
    assert result.exit_code == 0, result.output
    assert "medseg run: run" in (run / "page.html").read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--ratios", "1", "--methods", "fixmatch"], "no point to train"),
        (["--ratios", "abc"], "--ratios: 'abc' is not a number"),
        (["--seeds", "x"], "--seeds: 'x' is not a whole number"),
        (["--ratios", "0.5", "--methods", "supervised", "bcp:method.nonsense=1"], "nonsense"),
    ],
)
def test_budget_refusals_are_one_line_and_leave_nothing_behind(run, tmp_path, arguments, message):
    out = tmp_path / "b"
    result = runner.invoke(app, ["budget", str(run / "c.yaml"), *arguments, "--out", str(out)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists(), "a refused budget writes nothing (no splits/)"


def test_text_cells_that_look_like_formulas_are_written_as_text_and_read_back_exactly(tmp_path):
    from medseg.data.case import Case
    from medseg.data.splits import read_splits, write_splits

    cases = [Case('=HYPERLINK("x")', "a", group="@g"), Case("-1", "b", group="+g"), Case("'q", "c", group="g")]
    path = tmp_path / "splits.csv"
    write_splits(path, cases, {c.id: "train" for c in cases})
    with path.open(newline="") as handle:
        cells = [row[:2] for row in csv.reader(handle)][1:]
    assert cells == [['\'=HYPERLINK("x")', "'@g"], ["'-1", "'+g"], ["''q", "g"]]  # what a spreadsheet shows as text
    assert read_splits(path) == {c.id: "train" for c in cases}


def test_written_files_follow_the_umask(tmp_path):
    import os

    from medseg.atomic import write_text_atomic

    old = os.umask(0o002)
    try:
        write_text_atomic(tmp_path / "shared.txt", "x")
        os.umask(0o077)
        write_text_atomic(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600


def test_the_preprocessed_store_follows_the_umask(tmp_path, phantom_config):
    import os

    from medseg.data.dataset import prepare_dataset

    cfg = load_config(phantom_config())
    old = os.umask(0o002)
    try:
        store = prepare_dataset(cfg.data, cfg.seed).store
    finally:
        os.umask(old)
    assert store.path.stat().st_mode & 0o777 == 0o775  # mkdtemp made it 0700: a colleague could not share the cache


def test_square_brackets_in_paths_are_printed_as_text(run):
    out = run / "pm[/x]"
    result = runner.invoke(app, ["predict", str(run / "run"), str(run / "in"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 masks in" in result.output and "pm[/x]" in result.output.replace("\n", "")
    missing = runner.invoke(app, ["train", str(run / "[bold]no[/bold].yaml")])
    assert missing.exit_code == 2 and "[bold]no[/bold].yaml" in missing.output.replace("\n", "")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epochs=["], "override 'train.epochs=[': not valid YAML (expected the node content"),
        (["train=5", "train.epochs=3"], "an earlier override set 'train' to a value, not a section"),
        (["train.epochs=" + "[" * 5000 + "]" * 5000], "nested deeper than 64 levels"),
    ],
)
def test_unusable_overrides_are_one_line_naming_the_override(phantom_config, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_config(phantom_config(), overrides)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"name: \xff\xfe\n", "not UTF-8 text"),
        (("a: " + "[" * 100_000 + "]" * 100_000).encode(), "nested deeper than 64 levels"),
        (("data: " + "{a: " * 500 + "1" + "}" * 500).encode(), "nested deeper than 64 levels"),
    ],
)
def test_unusable_config_files_are_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(text)
    result = runner.invoke(app, ["train", str(path)])
    assert result.exit_code == 2 and message in result.output and "c.yaml" in result.output.replace("\n", "")


def test_explain_keeps_inputs_of_the_same_name_apart_and_never_explains_its_own_maps(run):
    inputs = run / "explain-in"
    for folder in ("a", "b"):
        write_png(inputs / folder / "x.png", np.full((32, 32), 90 if folder == "a" else 30, np.uint8))
    out = inputs / "maps"  # inside the inputs
    for _ in range(2):
        result = runner.invoke(
            app, ["explain", str(run / "run"), str(inputs), "--out", str(out), "--method", "gradcam"]
        )
        assert result.exit_code == 0, result.output
        assert "2 gradcam maps" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a/x_gradcam.png", "b/x_gradcam.png"]


@pytest.mark.parametrize("setting", ["output_dir", "data.cache_dir"])
@pytest.mark.parametrize("below", [False, True])
def test_a_folder_setting_that_names_a_file_is_one_line(tmp_path, phantom_config, setting, below):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(phantom_config()))
    target = blocker / "deeper" if below else blocker
    result = runner.invoke(app, ["train", str(config), f"{setting}={target}"])
    assert result.exit_code == 2 and f"{setting}: {target}" in result.output.replace("\n", ""), result.output
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "metrics.csv").write_text("step,lr\n1,0.1\n"), "metrics.csv: not a medseg metrics file"),
        (
            lambda run: (run / "eval" / "test" / "summary.json").write_text('{"cases": 3}'),
            "summary.json: not a medseg evaluation summary (no checkpoint, metrics, epoch, split)",
        ),
        (lambda run: (run / "eval" / "test" / "summary.json").write_text("[1"), "not a readable evaluation summary"),
    ],
)
def test_report_on_a_damaged_run_folder_is_one_line_naming_the_file(run, tmp_path, damage, message):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run / "run", copy)
    damage(copy)
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 2 and message in result.output.replace("\n", ""), result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,group,split\nfoo,1,train\nbar,2,test\n", "2 of its 2 id(s) are not cases of data.source"),
        (b"garbage\x00\x01", "expected columns id,group,split"),
        (b"id,split\n\xff\xfe,train\n", "not a splits CSV"),
    ],
)
def test_a_split_file_that_does_not_fit_the_data_names_the_split_file(tmp_path, phantom_config, content, message):
    splits = tmp_path / "splits.csv"
    splits.write_bytes(content)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(phantom_config()))
    result = runner.invoke(app, ["train", str(config), f"data.split_file={splits}"])
    assert result.exit_code == 2 and f"{splits}: {message}" in result.output.replace("\n", ""), result.output


@pytest.mark.slow
def test_sigterm_before_the_first_checkpoint_leaves_nothing_behind(tmp_path, phantom_config):
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(phantom_config(epochs=2, steps_per_epoch=100_000)))  # no checkpoint soon
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "medseg", "train", str(config), "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "splits.csv").is_file() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert (run_dir / "splits.csv").is_file(), "training did not start"
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        process.kill()
    assert not run_dir.exists() or not any(run_dir.iterdir()), sorted(p.name for p in run_dir.iterdir())


def test_inspect_reports_what_train_would_refuse(tmp_path):
    import shutil

    import tifffile

    from tests.data.test_nnunet import _dataset_2d

    folder = tmp_path / "tiffs"
    for name in ("images", "masks"):
        (folder / name).mkdir(parents=True)
    tifffile.imwrite(folder / "images" / "huge.tif", np.full((8, 8), 1e300))
    write_png(folder / "masks" / "huge.png", np.zeros((8, 8), np.uint8))
    result = runner.invoke(app, ["data", "inspect", str(folder)])
    assert result.exit_code == 1 and "huge.tif: image has values beyond" in result.output.replace("\n", "")

    layout = _dataset_2d(tmp_path / "nnunet")
    shutil.rmtree(layout / "labelsTr")
    result = runner.invoke(app, ["data", "inspect", str(layout)])
    assert result.exit_code == 1 and "image has no mask" in result.output, result.output


def test_a_checkpoint_whose_config_asks_for_another_network_is_refused_before_building_it(run, tmp_path):
    import torch

    checkpoint = torch.load(run / "run" / "last.pt", weights_only=True)
    checkpoint["config"]["model"]["features"] = [40_000, 80_000]  # hundreds of GB if it were built
    torch.save(checkpoint, tmp_path / "edited.pt")
    result = runner.invoke(app, ["predict", str(tmp_path / "edited.pt"), str(run / "in"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "edited.pt: its config does not describe its weights" in result.output
    checkpoint["config"]["data"]["size"] = 1_000_000
    torch.save(checkpoint, tmp_path / "edited.pt")
    result = runner.invoke(app, ["predict", str(tmp_path / "edited.pt"), str(run / "in"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "data.size" in result.output


def test_evaluate_with_the_auto_checkpoint_records_which_weights_it_took(run, tmp_path):
    import json
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run / "run", copy)
    result = runner.invoke(app, ["evaluate", str(copy), "eval.checkpoint=auto", "--split", "val"])
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "eval" / "val" / "summary.json").read_text())["checkpoint"] == "last.pt"


def test_a_labels_csv_that_is_not_utf8_is_named_by_inspect(image_folder):
    (image_folder / "labels.csv").write_bytes(b"file,label\ncase0.png,\xff\n")
    result = runner.invoke(app, ["data", "inspect", str(image_folder)])
    assert result.exit_code == 2 and "labels.csv: cannot read as a UTF-8 CSV" in result.output.replace("\n", "")


def test_the_store_cache_keeps_a_users_files_named_like_temporary_ones(tmp_path, phantom_config):
    from medseg.data.dataset import prepare_dataset

    cfg = load_config(phantom_config())
    cache = tmp_path / "cache"
    mine = [cache / ".notes.tmp.txt", cache / ".backup.tmp.abcdefgh", cache / ".mine" / "kept.txt"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    prepare_dataset(cfg.data, cfg.seed)
    assert all(path.read_text() == "mine" for path in mine)


def test_inspect_of_a_config_reports_what_its_training_would_refuse(image_folder, tmp_path):
    source = {"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"}
    listed = tmp_path / "labelled.txt"
    listed.write_text("no-such-case\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump({"data": {"source": source, "channels": 1, "labeled_file": str(listed)}, "seed": 0})
    )
    result = runner.invoke(app, ["data", "inspect", str(config)])
    assert result.exit_code == 1, result.output
    assert "labelled.txt: 1 labelled id(s) are not training cases" in result.output.replace("\n", "")
    two = tmp_path / "two"
    for name in ("images", "masks"):
        (two / name).mkdir(parents=True)
    for i in range(2):
        write_png(two / "images" / f"{i}.png", np.full((8, 8), 50, np.uint8))
        write_png(two / "masks" / f"{i}.png", np.zeros((8, 8), np.uint8))
    config.write_text(yaml.safe_dump({"data": {"source": {**source, "root": str(two)}}}))
    result = runner.invoke(app, ["data", "inspect", str(config)])
    assert result.exit_code == 1 and "cannot fill the splits" in result.output.replace("\n", ""), result.output
