"""The nnU-Net / Decathlon raw layout: dataset.json, imagesTr/<case>_0000.<ext>, labelsTr/<case>.<ext>; 2-D files
and 3-D NIfTI volumes sliced; inspected and trained from a config alone."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli import app
from medseg.data.readers import build_reader
from medseg.errors import DataError
from tests.conftest import write_png

runner = CliRunner()


def _dataset_2d(root, cases=6, labels=None):
    (root).mkdir(parents=True, exist_ok=True)
    labels = labels or {"background": 0, "lesion": 1, "edge": 2}
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "R", "1": "G"}, "labels": labels}))
    rng = np.random.default_rng(0)
    for index in range(cases):
        name = f"case_{index:03d}"
        mask = np.zeros((24, 30), np.uint8)
        mask[4:10, 5:12] = 1
        mask[12:16, 20:26] = 2 if index % 2 else 0
        for channel in range(2):
            image = (rng.random((24, 30)) * 100 + 40 * mask).astype(np.uint8)
            write_png(root / "imagesTr" / f"{name}_{channel:04d}.png", image)
        write_png(root / "labelsTr" / f"{name}.png", mask)
    return root


def _dataset_3d(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(
        json.dumps({"labels": {"0": "background", "1": "tumour"}, "modality": {"0": "T1"}})
    )
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    for index in range(3):
        volume = np.random.default_rng(index).random((20, 16, 5)).astype(np.float32)
        label = np.zeros((20, 16, 5), np.uint8)
        label[5:9, 4:8, 1:4] = 1
        affine = np.diag([0.8, 0.7, 3.0, 1.0])
        nib.save(nib.Nifti1Image(volume, affine), root / "imagesTr" / f"vol{index}_0000.nii.gz")
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"vol{index}.nii.gz")
    return root


def test_2d_cases_stack_their_channels_and_read_their_labels(tmp_path):
    reader = build_reader({"format": "nnunet", "root": str(_dataset_2d(tmp_path / "d2"))})
    cases = reader.cases()
    assert [c.id for c in cases] == [f"case_{i:03d}" for i in range(6)]
    image = reader.load_image(cases[1])
    assert image.shape == (24, 30, 2)
    assert set(np.unique(reader.load_mask(cases[1]))) == {0, 1, 2}


def test_3d_volumes_are_sliced_and_keep_their_spacing(tmp_path):
    reader = build_reader({"format": "nnunet", "root": str(_dataset_3d(tmp_path / "d3")), "axis": 2})
    cases = reader.cases()
    assert len(cases) == 15 and cases[0].id == "vol0/0000" and cases[0].group == "vol0"
    assert reader.load_image(cases[2]).shape == (20, 16)
    assert reader.load_mask(cases[2]).sum() == 16
    assert reader.spacing(cases[0]) == pytest.approx((0.8, 0.7))


def test_a_case_missing_a_channel_and_a_folder_without_dataset_json_are_explained(tmp_path):
    root = _dataset_2d(tmp_path / "d2")
    (root / "imagesTr" / "case_002_0001.png").unlink()
    with pytest.raises(DataError, match=r"case_002_0000\.png: case has channels \[0\]; expected 0\.\.1"):
        build_reader({"format": "nnunet", "root": str(root)}).cases()
    with pytest.raises(DataError, match="dataset.json not found"):
        build_reader({"format": "nnunet", "root": str(tmp_path)}).cases()


def test_inspect_recognises_the_layout_and_reports_its_classes(tmp_path):
    root = _dataset_2d(tmp_path / "d2")
    result = runner.invoke(app, ["data", "inspect", str(root)])
    assert result.exit_code == 0, result.output
    assert "'format': 'nnunet'" in result.output and "1: lesion, 2: edge" in result.output
    assert "data.num_classes: 3" in result.output


def test_a_multi_class_2d_data_set_trains_from_a_config_alone(tmp_path):
    import yaml

    root = _dataset_2d(tmp_path / "d2", cases=8)
    config = {
        "data": {
            "source": {"format": "nnunet", "root": str(root)},
            "size": 32,
            "channels": 2,
            "num_classes": 3,
            "cache_dir": str(tmp_path / "cache"),
            "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
        },
        "model": {"name": "unet", "features": [4, 8]},
        "train": {"epochs": 1, "batch_size": 4},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "eval" / "test" / "summary.json").is_file()


def test_a_dataset_json_nested_too_deeply_is_one_line(tmp_path):
    from medseg.data.readers.nnunet import label_names

    (tmp_path / "dataset.json").write_text('{"labels": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match="dataset.json: not a readable dataset.json: nested too deeply"):
        label_names(tmp_path)
