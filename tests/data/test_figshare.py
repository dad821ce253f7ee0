import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from medseg.data.readers import build_reader
from medseg.data.readers.figshare import read_cjdata
from medseg.errors import DataError
from tests.conftest import FIGSHARE, need


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_mat_mask_matches_png_mask_after_nearest_resize():
    """The real v7.3 files: transposed back, resized to 256 with nearest neighbour, the mask agrees with masks/N.png."""
    mats = sorted(need(FIGSHARE / "mat").glob("*.mat"))
    assert mats
    reader = build_reader({"format": "figshare_mat", "root": str(FIGSHARE / "mat")})
    for case in reader.cases():
        mask = reader.load_mask(case).astype(np.float32)
        assert mask.shape == (512, 512)
        small = F.interpolate(torch.from_numpy(mask)[None, None], size=(256, 256), mode="nearest-exact")[0, 0]
        png = np.asarray(Image.open(FIGSHARE / "masks" / f"{case.id}.png")) > 0
        assert _dice(small.numpy() > 0, png) >= 0.99, case.id
        # Without the transpose the mask would not match: the test would catch a reader that forgot it.
        assert _dice(small.numpy().T > 0, png) < 0.9, case.id


def test_mat_cases_carry_label_and_pid_group():
    reader = build_reader({"format": "figshare_mat", "root": str(need(FIGSHARE / "mat"))})
    cases = reader.cases()
    assert [c.id for c in cases][:3] == ["1", "2", "3"]  # numeric order
    assert all(c.label in (1, 2, 3) for c in cases)
    assert cases[0].group.startswith("P")  # PID decoded from uint16 character codes
    image = reader.load_image(cases[0])
    assert image.dtype == np.int16 and image.shape == (512, 512)


def test_mat_groups_from_labels_csv_block():
    reader = build_reader(
        {"format": "figshare_mat", "root": str(need(FIGSHARE / "mat")), "labels_csv": "../labels.csv"}
    )
    by_id = {c.id: c.group for c in reader.cases()}
    assert by_id["1"] == "0" and by_id["800"] == str((800 - 1) // 50)


def _write_mat(path, with_cjdata=True):
    with h5py.File(path, "w") as handle:
        group = handle.create_group("cjdata" if with_cjdata else "other")
        image = np.arange(12, dtype=np.int16).reshape(3, 4)
        group["image"] = image.T  # MATLAB column-major: stored transposed
        group["tumorMask"] = (image > 5).astype(np.uint8).T
        group["label"] = np.array([[2.0]])
        group["PID"] = np.array([[ord(c)] for c in "P42"], dtype=np.uint16)
    return image


def test_synthetic_mat_is_transposed_back(tmp_path):
    image = _write_mat(tmp_path / "7.mat")
    data = read_cjdata(tmp_path / "7.mat", ("image", "tumorMask"))
    np.testing.assert_array_equal(data["image"], image)
    case = build_reader({"format": "figshare_mat", "root": str(tmp_path)}).cases()[0]
    assert (case.label, case.group) == (2, "P42")


def test_mat_without_cjdata_names_file_and_problem(tmp_path):
    _write_mat(tmp_path / "1.mat", with_cjdata=False)
    with pytest.raises(DataError, match=r"1\.mat: no 'cjdata' group"):
        read_cjdata(tmp_path / "1.mat", ("image",))


def test_truncated_mat_names_file(tmp_path):
    _write_mat(tmp_path / "1.mat")
    data = (tmp_path / "1.mat").read_bytes()
    (tmp_path / "2.mat").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"2\.mat: cannot read as MATLAB v7.3/HDF5"):
        read_cjdata(tmp_path / "2.mat", ("image",))


def test_a_mat_file_linking_to_another_file_is_refused(tmp_path):
    other = tmp_path / "elsewhere.h5"
    with h5py.File(other, "w") as handle:
        handle["secret"] = np.arange(16, dtype=np.int16).reshape(4, 4)
    for where, name in (("image", "linked-image.mat"), ("cjdata", "linked-group.mat")):
        with h5py.File(tmp_path / name, "w") as handle:
            if where == "cjdata":
                handle["cjdata"] = h5py.ExternalLink(str(other), "/")
            else:
                group = handle.create_group("cjdata")
                group["image"] = h5py.ExternalLink(str(other), "secret")
        with pytest.raises(DataError, match=f"{name}: '{where}' links to another file"):
            read_cjdata(tmp_path / name, ("image",))
