"""`medseg predict` never loses or mixes outputs: outputs mirror the input tree and never share a name, the output
folder is never read as input, a bad file is skipped (--skip-bad) or stops the run after the pending batch is
written, and the output folder is locked and cleaned of killed writes."""

import csv

import nibabel as nib
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from medseg.cli import app
from medseg.locking import locked
from medseg.predict import expand_inputs, plan_outputs
from tests.conftest import write_png

runner = CliRunner()


@pytest.fixture(scope="module")
def _run_home(tmp_path_factory):
    return tmp_path_factory.mktemp("predict-run")


@pytest.fixture
def trained_run(_run_home, phantom_config):
    """One tiny U-Net for the whole module, trained on first use."""
    run = _run_home / "run"
    if not (run / "best.pt").is_file():
        config = _run_home / "tiny.yaml"
        config.write_text(yaml.safe_dump(phantom_config()))
        args = ["train", str(config), "train.epochs=1", "--run-dir", str(run), "--quiet", "--no-evaluate"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return run


def _image(shape, seed=0):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def _predict(run, *args):
    return runner.invoke(app, ["predict", str(run), *map(str, args)])


def _shape(path):
    return np.asarray(Image.open(path)).shape


def _relative_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != ".lock")


# -- names ---------------------------------------------------------------------------------------------------------
def test_outputs_mirror_the_input_tree_and_same_stems_keep_their_suffix(tmp_path):
    write_png(tmp_path / "in" / "a" / "1.png", _image((8, 8)))
    write_png(tmp_path / "in" / "b" / "1.png", _image((8, 8)))
    write_png(tmp_path / "in" / "5.png", _image((8, 8)))
    write_png(tmp_path / "in" / "5.tif", _image((8, 8)))
    write_png(tmp_path / "in" / "c.png", _image((8, 8)))
    plan = plan_outputs([tmp_path / "in"], tmp_path / "out")
    masks = [p.mask.relative_to(tmp_path / "out").as_posix() for p in plan]
    assert masks == ["5.png_mask.png", "5.tif_mask.png", "a/1_mask.png", "b/1_mask.png", "c_mask.png"]
    assert [p.overlay.name for p in plan] == [
        "5.png_overlay.png",
        "5.tif_overlay.png",
        "1_overlay.png",
        "1_overlay.png",
        "c_overlay.png",
    ]


def test_the_same_names_under_two_arguments_and_volumes_never_share_an_output(tmp_path):
    for folder in ("x", "y"):
        write_png(tmp_path / folder / "1.png", _image((8, 8)))
    write_png(tmp_path / "z" / "A.png", _image((8, 8)))
    write_png(tmp_path / "z" / "a.png", _image((8, 8)))
    volume = nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4))
    (tmp_path / "v").mkdir()
    nib.save(volume, tmp_path / "v" / "5.nii.gz")
    nib.save(volume, tmp_path / "v" / "5.nii")
    nib.save(volume, tmp_path / "v" / "6.nii.gz")
    inputs = [tmp_path / "x", tmp_path / "y", tmp_path / "x" / "1.png", tmp_path / "z", tmp_path / "v"]
    plan = plan_outputs(inputs, tmp_path / "out")
    names = [p.mask.name for p in plan]
    assert names == [
        "1.png_mask.png",  # x/1.png, once though given twice
        "1.png-2_mask.png",  # y/1.png
        "A.png_mask.png",  # A.png and a.png would be one file on a case-insensitive filesystem
        "a.png-2_mask.png",
        "5.nii_mask.nii.gz",
        "5.nii.gz_mask.nii.gz",
        "6_mask.nii.gz",
    ]
    assert [p.source.name for p in plan][:2] == ["1.png", "1.png"] and plan[1].source.parent.name == "y"
    assert [p.overlay for p in plan[-3:]] == [None, None, None]


def test_the_output_folder_hidden_files_and_own_outputs_are_never_inputs(tmp_path):
    write_png(tmp_path / "in" / "s.png", _image((8, 8)))
    write_png(tmp_path / "in" / "pred" / "t.png", _image((8, 8)))  # under --out: never an input
    write_png(tmp_path / "in" / "old" / "s_mask.png", _image((8, 8)))  # an earlier run's outputs elsewhere
    write_png(tmp_path / "in" / "old" / "s_overlay.png", _image((8, 8)))
    write_png(tmp_path / "in" / ".s_mask.png.tmp.x.png", _image((8, 8)))  # a killed write
    write_png(tmp_path / "in" / ".hidden" / "u.png", _image((8, 8)))
    assert expand_inputs([tmp_path / "in"], tmp_path / "in" / "pred") == [tmp_path / "in" / "s.png"]
    assert expand_inputs([tmp_path / "in"], tmp_path / "in") == [
        tmp_path / "in" / "pred" / "t.png",
        tmp_path / "in" / "s.png",
    ]
    # a file named explicitly is an input, unless it is one of the outputs in the output folder
    explicit = [tmp_path / "in" / "old" / "s_mask.png", tmp_path / "in" / "s.png"]
    assert expand_inputs(explicit, tmp_path / "out") == explicit
    assert expand_inputs(explicit, tmp_path / "in" / "old") == [tmp_path / "in" / "s.png"]


# -- end to end ----------------------------------------------------------------------------------------------------
def test_same_stems_in_two_folders_and_two_suffixes_write_one_mask_each(trained_run, tmp_path):
    inputs = {"a/1.png": (30, 40), "b/1.png": (36, 28), "5.png": (32, 32), "5.tif": (24, 44)}
    for i, (name, shape) in enumerate(inputs.items()):
        write_png(tmp_path / "in" / name, _image(shape, i))
    result = _predict(trained_run, tmp_path / "in", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "4 masks" in result.output
    out = tmp_path / "out"
    masks = {"a/1.png": "a/1_mask.png", "b/1.png": "b/1_mask.png", "5.png": "5.png_mask.png", "5.tif": "5.tif_mask.png"}
    for name, mask in masks.items():
        assert _shape(out / mask) == inputs[name], name  # each mask is its own input's
        assert _shape(out / mask.replace("_mask.png", "_overlay.png")) == (*inputs[name], 3)
    assert len([p for p in out.rglob("*_mask.png")]) == 4


def test_an_output_folder_inside_the_input_folder_is_not_predicted_again(trained_run, tmp_path):
    write_png(tmp_path / "in" / "s.png", _image((32, 32)))
    for out in (tmp_path / "in" / "pred", tmp_path / "in"):
        for _ in range(2):
            result = _predict(trained_run, tmp_path / "in", "--out", out)
            assert result.exit_code == 0, result.output
            assert "1 masks" in result.output
    assert not list((tmp_path / "in").rglob("*_mask_mask.png"))
    assert not list((tmp_path / "in").rglob("*_overlay_mask.png"))
    assert (tmp_path / "in" / "pred" / "s_mask.png").is_file() and (tmp_path / "in" / "s_mask.png").is_file()


def _bad_inputs(folder):
    """0.png, 2.png, 3.png good; 1.png not an image; 1b.tif has NaN pixels (fails preprocessing); v.nii.gz junk."""
    for i in (0, 2, 3):
        write_png(folder / f"{i}.png", _image((32, 32), i))
    (folder / "1.png").write_bytes(b"not a png")
    Image.fromarray(np.full((16, 16), np.nan, np.float32)).save(folder / "1b.tif")
    (folder / "v.nii.gz").write_bytes(b"not a volume")


def test_skip_bad_skips_unreadable_inputs_and_lists_them(trained_run, tmp_path):
    _bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = _predict(trained_run, tmp_path / "in", "--out", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "3 masks" in result.output
    assert "skipped 3 unreadable inputs" in result.output and str(out / "skipped.csv") in result.output
    assert sorted(p.name for p in out.glob("*_mask.png")) == ["0_mask.png", "2_mask.png", "3_mask.png"]
    with (out / "skipped.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["file"] for row in rows] == [str(tmp_path / "in" / name) for name in ("1.png", "1b.tif", "v.nii.gz")]
    assert "cannot decode image" in rows[0]["reason"] and "NaN" in rows[1]["reason"]
    assert "NIfTI" in rows[2]["reason"]


def test_a_bad_input_stops_the_run_after_writing_the_images_read_before_it(trained_run, tmp_path):
    _bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    result = _predict(trained_run, tmp_path / "in", "--out", out)  # batch_size 8: 0.png is pending at 1.png
    assert result.exit_code == 2
    assert (out / "0_mask.png").is_file() and (out / "0_overlay.png").is_file()
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and "1.png" in lines[-1] and "--skip-bad" in lines[-1]
    assert not (out / "2_mask.png").exists() and not (out / "skipped.csv").exists()


def test_predict_locks_the_output_folder_and_removes_killed_writes(trained_run, tmp_path):
    write_png(tmp_path / "in" / "s.png", _image((32, 32)))
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    killed = [out / ".s_overlay.png.tmp.abc123xy.png", out / "sub" / ".t_mask.png.tmp.def456_z.png"]
    for path in killed:
        path.write_bytes(b"half")
    with locked(out, "predicting"):
        result = _predict(trained_run, tmp_path / "in", "--out", out)
    assert result.exit_code == 2 and "another medseg process is predicting" in result.output
    assert not (out / "s_mask.png").exists() and all(p.exists() for p in killed)
    result = _predict(trained_run, tmp_path / "in", "--out", out)
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in killed)
    assert _relative_files(out) == ["s_mask.png", "s_overlay.png"]


def test_predict_leaves_a_users_files_named_like_temporary_files(trained_run, tmp_path):
    write_png(tmp_path / "in" / "s.png", _image((32, 32)))
    out = tmp_path / "out"
    mine = [out / "keep" / ".notes.tmp.txt", out / ".data.tmp.bak", out / ".x.tmp.abc"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    result = _predict(trained_run, tmp_path / "in", "--out", out)
    assert result.exit_code == 0, result.output
    assert all(path.read_text() == "mine" for path in mine)


def test_the_lock_and_cleanup_stay_importable_from_run_folder():
    from medseg import locking, run_folder

    assert run_folder.locked is locking.locked and run_folder.remove_temporary_files is locking.remove_temporary_files
    assert run_folder.LOCK_NAME == locking.LOCK_NAME == ".lock"
