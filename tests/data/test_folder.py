import numpy as np
import pytest
import tifffile

from medseg.data.pixel_checks import binarize_mask, to_channels
from medseg.data.readers import build_reader
from medseg.data.readers.image_files import read_image_file
from medseg.errors import DataError
from tests.conftest import ISBI, LGG, need, write_png


def test_sibling_mask_folder_matches_by_stem(image_folder):
    reader = build_reader({"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"})
    cases = reader.cases()
    assert len(cases) == 6
    assert all(c.mask and c.mask.endswith(f"{c.id}.png") for c in cases)
    assert {c.group for c in cases} == {c.id for c in cases}  # flat folder: each file its own group
    assert reader.load_mask(cases[0]).max() == 255


def test_suffix_masks_in_patient_folders_group_by_folder(tmp_path):
    for patient in ("P1", "P2"):
        for s in range(3):
            write_png(tmp_path / patient / f"{patient}_{s}.png", np.zeros((8, 8, 3), np.uint8))
            write_png(tmp_path / patient / f"{patient}_{s}_mask.png", np.zeros((8, 8), np.uint8))
    cases = build_reader({"format": "folder", "root": str(tmp_path), "mask_suffix": "_mask"}).cases()
    assert len(cases) == 6  # mask files are not cases
    assert {c.group for c in cases} == {"P1", "P2"}
    assert all(c.mask.endswith("_mask.png") for c in cases)


def test_labels_csv_gives_label_and_group(image_folder):
    (image_folder / "labels.csv").write_text(
        "file,label,block\n" + "".join(f"case{i}.png,{i % 2},{i // 3}\n" for i in range(6))
    )
    reader = build_reader(
        {
            "format": "folder",
            "root": str(image_folder),
            "image_dir": "images",
            "mask_dir": "masks",
            "labels_csv": "labels.csv",
            "group_column": "block",
        }
    )
    by_id = {c.id: c for c in reader.cases()}
    assert by_id["case1"].label == 1 and by_id["case4"].group == "1"


def _labelled_reader(root, table: str, **options):
    (root / "labels.csv").write_text(table)
    source = {"format": "folder", "root": str(root), "image_dir": "images", "mask_dir": "masks"}
    return build_reader({**source, "labels_csv": "labels.csv", **options})


def test_a_group_column_the_labels_csv_lacks_is_refused_not_one_group_per_file(image_folder):
    reader = _labelled_reader(
        image_folder, "file,label\n" + "".join(f"case{i}.png,1\n" for i in range(6)), group_column="patient"
    )
    with pytest.raises(DataError, match=r"labels.csv: no column 'patient' \(found \['file', 'label'\]\)"):
        reader.cases()


def test_a_file_listed_twice_in_the_labels_csv_is_refused(image_folder):
    reader = _labelled_reader(image_folder, "file,label\ncase0.png,0\ncase1.png,1\ncase0.png,1\n")
    with pytest.raises(DataError, match=r"labels.csv: 1 file\(s\) listed more than once, e.g. \['case0.png'\]"):
        reader.cases()


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".bmp"])
def test_formats_8bit_grey_and_rgb(tmp_path, suffix):
    grey = (np.arange(64).reshape(8, 8) * 3).astype(np.uint8)
    write_png(tmp_path / f"g{suffix}", grey)
    write_png(tmp_path / f"c{suffix}", np.stack([grey] * 3, -1))
    assert read_image_file(tmp_path / f"g{suffix}").shape == (8, 8)
    rgb = read_image_file(tmp_path / f"c{suffix}")
    assert rgb.shape == (8, 8, 3)
    assert to_channels(rgb, 1, "x").shape == (1, 8, 8)
    assert to_channels(read_image_file(tmp_path / f"g{suffix}"), 3, "x").shape == (3, 8, 8)


def test_16bit_png_and_tiff_keep_their_range(tmp_path):
    deep = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    write_png(tmp_path / "d.png", deep)
    tifffile.imwrite(tmp_path / "d.tif", deep)
    tifffile.imwrite(tmp_path / "rgb16.tif", np.stack([deep] * 3, -1), photometric="rgb")
    assert read_image_file(tmp_path / "d.png").max() == 63000
    assert read_image_file(tmp_path / "d.tif").max() == 63000
    assert read_image_file(tmp_path / "rgb16.tif").shape == (8, 8, 3)


def test_truncated_image_names_file(tmp_path):
    path = write_png(tmp_path / "broken.png", np.zeros((64, 64), np.uint8) + 7)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"broken\.png: cannot decode image"):
        read_image_file(path)


def test_non_image_file_names_file(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.png: cannot decode image"):
        read_image_file(tmp_path / "notes.png")


def test_non_binary_mask_is_refused_with_values():
    mask = np.array([[0, 3], [128, 255]], np.uint8)
    with pytest.raises(DataError, match=r"m\.png: mask is not binary: values \[0, 3, 128, 255\]"):
        binarize_mask(mask, "m.png")
    assert binarize_mask(np.array([[0, 255]], np.uint8), "m.png").tolist() == [[0, 1]]
    assert binarize_mask(np.array([[0, 2]], np.uint8), "m.png", num_classes=3).tolist() == [[0, 2]]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        build_reader({"format": "folder", "root": str(tmp_path / "nope")}).cases()


def test_lgg_kaggle_3m_layout():
    root = need(LGG)
    cases = build_reader({"format": "folder", "root": str(root), "mask_suffix": "_mask"}).cases()
    assert len({c.group for c in cases}) == len([p for p in root.iterdir() if p.is_dir()])
    assert all(c.mask is not None for c in cases)
    assert not any(c.id.endswith("_mask") for c in cases)


def test_isbi_layout():
    root = need(ISBI)
    reader = build_reader(
        {"format": "folder", "root": str(root), "image_dir": "train/image", "mask_dir": "train/label"}
    )
    cases = reader.cases()
    assert len(cases) == 30 and all(c.mask for c in cases)
    assert reader.load_image(cases[0]).shape == (512, 512)


def test_a_subfolder_that_cannot_be_read_is_named_not_left_out(image_folder, monkeypatch):
    import os

    (image_folder / "images" / "patient9").mkdir()
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("patient9"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    reader = build_reader({"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"})
    with pytest.raises(DataError, match=r"patient9: folder cannot be read \(Permission denied\)"):
        reader.cases()
