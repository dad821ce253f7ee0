import nibabel as nib
import numpy as np
import pytest

from medseg.data.readers import build_reader
from medseg.errors import DataError


def write_volumes(root, names=("a", "b"), shape=(20, 24, 5)):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in names:
        volume = np.random.default_rng(0).random(shape).astype(np.float32)
        label = np.zeros(shape, np.uint8)
        label[5:10, 6:12, 2] = 1
        nib.save(nib.Nifti1Image(volume, np.eye(4)), root / "images" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(label, np.eye(4)), root / "labels" / f"{name}.nii.gz")
    return root


def test_volumes_are_sliced_along_axis_and_grouped(tmp_path):
    root = write_volumes(tmp_path)
    reader = build_reader({"format": "nifti", "root": str(root)})
    cases = reader.cases()
    assert len(cases) == 10 and {c.group for c in cases} == {"a", "b"}
    assert reader.load_image(cases[2]).shape == (20, 24)
    assert reader.load_mask(cases[2]).sum() == 30 and reader.load_mask(cases[0]).sum() == 0
    along_0 = build_reader({"format": "nifti", "root": str(root), "axis": 0})
    assert len(along_0.cases()) == 40 and along_0.load_image(along_0.cases()[0]).shape == (24, 5)


def test_truncated_volume_is_named(tmp_path):
    root = write_volumes(tmp_path, names=("a",))
    path = root / "images" / "a.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    reader = build_reader({"format": "nifti", "root": str(root)})
    with pytest.raises(DataError, match=r"a\.nii\.gz"):
        case = reader.cases()[0]
        reader.load_image(case)


def test_float_labels_that_are_not_whole_numbers_are_refused_not_rounded_away(tmp_path):
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    labels = np.zeros((8, 8, 2), np.float32)
    labels[2:4, 2:4, 0] = 0.5  # rint(0.5) = 0: the lesion would vanish
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 2).astype(np.float32), np.eye(4)), tmp_path / "images" / "v.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "labels" / "v.nii.gz")
    reader = build_reader({"format": "nifti", "root": str(tmp_path), "image_dir": "images", "label_dir": "labels"})
    cases = reader.cases()
    with pytest.raises(
        DataError, match=r"v.nii.gz: label volume holds values that are not class indices, e.g. \[0.5\]"
    ):
        reader.load_mask(cases[0])
    assert not reader.load_mask(cases[1]).any()  # a slice of whole numbers reads as before


def _nan_affine(path):
    """A NIfTI whose sform holds NaN (nibabel will not write one: the header bytes are patched)."""
    import struct

    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 2).astype(np.float32), np.eye(4)), path)
    data = bytearray(path.read_bytes())
    data[252:256] = struct.pack("<hh", 0, 1)  # qform_code 0, sform_code 1
    data[280:284] = struct.pack("<f", float("nan"))  # srow_x[0]
    path.write_bytes(bytes(data))
    return path


def test_a_volume_with_a_nan_affine_or_fewer_bytes_than_its_header_claims_is_refused(tmp_path):
    from medseg.data.readers.nifti import volume_shape

    with pytest.raises(DataError, match="nan.nii: the header's voxel-to-world affine holds NaN"):
        volume_shape(_nan_affine(tmp_path / "nan.nii"))
    for name in ("short.nii", "short.nii.gz"):
        image = nib.Nifti1Image(np.zeros((8, 8, 4000), np.uint8), np.eye(4))
        nib.save(image, tmp_path / "full.nii")
        data = (tmp_path / "full.nii").read_bytes()[: 352 + 8 * 8 * 3]  # the header and three slices
        if name.endswith(".gz"):
            import gzip

            data = gzip.compress(data)
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=f"{name}: .*its header's shape needs 256352"):
            volume_shape(tmp_path / name)
