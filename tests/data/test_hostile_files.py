"""Hostile and malformed source files: every reader turns them into one `DataError` naming the file, and skipping
(`data.skip_bad`) and inspecting (`medseg data inspect`) work for every format.

The regression tests pin the findings one by one; the property tests (hypothesis) feed random bytes and random
arrays to every reader entry point and accept only a `DataError` or an array of the promised layout.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
import warnings
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra import numpy as hnp
from PIL import Image

from medseg.config import DataConfig
from medseg.data.dataset import prepare_dataset
from medseg.data.pixel_checks import binarize_mask, to_channels
from medseg.data.readers import build_reader
from medseg.data.readers.figshare import FigshareMatReader, read_cjdata
from medseg.data.readers.image_files import IMAGE_SUFFIXES, read_image_file
from medseg.data.readers.nifti import load_volume
from medseg.data.store import Preprocessing, preprocess_image
from medseg.errors import DataError
from medseg.inspection import inspect_source

# Pillow warns about the corrupt tags it skips; what matters here is what the readers raise.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# Hypothesis keeps caches beside its example database even with `database=None`: not in the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "medseg-hypothesis")

# --- helpers ---------------------------------------------------------------------------------------------------


def bmp_header_only(path: Path, width: int, height: int, payload: int = 1400) -> Path:
    """A 24-bit BMP whose header claims width × height but which holds only `payload` bytes of pixels."""
    file_header = b"BM" + struct.pack("<IHHI", 54 + payload, 0, 0, 54)
    info_header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(file_header + info_header + bytes(payload))
    return path


def write_mat(
    path: Path,
    image: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    label: np.ndarray | None = None,
    pid: str = "P42",
) -> Path:
    """A figshare-style v7.3 `.mat`: arrays given row-major are stored transposed, as MATLAB writes them."""
    image = np.arange(48, dtype=np.int16).reshape(6, 8) if image is None else image
    mask = (image > 20).astype(np.uint8) if mask is None else mask
    label = np.array([[2.0]]) if label is None else label
    with h5py.File(path, "w") as handle:
        group = handle.create_group("cjdata")
        group["image"] = image.T
        group["tumorMask"] = mask.T
        group["label"] = label
        group["PID"] = np.array([[ord(c)] for c in pid], dtype=np.uint16).reshape(-1, 1)
    return path


def only_data_error(function, *args):
    """Call `function`; a `DataError` is an accepted answer (returned as None), any other exception fails."""
    try:
        return function(*args)
    except DataError as error:
        assert error.path and error.problem
        return None


def outcome(result: object) -> None:
    """Record in hypothesis' statistics (`--hypothesis-show-statistics`) whether an example decoded."""
    event("decoded" if result is not None else "DataError")


def check_image_layout(array: np.ndarray) -> None:
    """What `read_image_file` and `load_image` promise: a non-empty numeric `(H, W)` or `(H, W, C ≤ 3)` array."""
    assert isinstance(array, np.ndarray)
    assert array.ndim in (2, 3) and 0 not in array.shape
    assert array.ndim == 2 or array.shape[2] <= 3
    assert array.dtype.kind in "biuf"


def through_the_store(array: np.ndarray, path: str) -> None:
    """The store's preprocessing of a decoded image raises nothing but `DataError`."""
    for channels in (1, 3):
        out = only_data_error(preprocess_image, array, Preprocessing(size=16, channels=channels), path)
        assert out is None or out.shape == (channels, 16, 16)


# --- 1. decompression bombs --------------------------------------------------------------------------------------


def test_bmp_claiming_20000_by_20000_is_refused_before_decoding(tmp_path):
    path = bmp_header_only(tmp_path / "bomb.bmp", 20000, 20000)
    assert path.stat().st_size < 1500
    with pytest.raises(DataError, match=r"bomb\.bmp: image is above the 89 Mpx this reader decodes"):
        read_image_file(path)


def test_bmp_between_one_and_two_times_pillows_limit_is_refused_without_a_warning(tmp_path):
    """Pillow only warns between 1× and 2× its limit (and would then allocate the pixels): refused all the same."""
    path = bmp_header_only(tmp_path / "warn.bmp", 10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"warn\.bmp: image is above the 89 Mpx"):
            read_image_file(path)


def test_pixel_budget_holds_when_pillows_limit_is_lifted(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = bmp_header_only(tmp_path / "big.bmp", 10000, 9000)
    with pytest.raises(DataError, match=r"big\.bmp: image is 9000×10000 \(90 Mpx\), above the 89 Mpx"):
        read_image_file(path)


def test_tiff_claiming_a_huge_float_image_is_refused_before_decoding(tmp_path):
    """Pillow cannot decode float64 TIFFs; the tifffile fallback checks the size first, too."""
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.float64), compression="zlib")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        for name in ("ImageWidth", "ImageLength", "RowsPerStrip"):  # the header now claims 20000 × 20000
            tag = tif.pages[0].tags[name]
            data[tag.valueoffset : tag.valueoffset + 4] = struct.pack("<I", 20000)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"huge\.tif: TIFF holds an array of shape \(20000, 20000\); expected"):
        read_image_file(path)


# --- 2. empty images ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "text"), [((5, 0), "5×0"), ((0, 7), "0×7")])
def test_empty_tiff_is_refused_by_the_reader(tmp_path, shape, text):
    path = tmp_path / "empty.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size TIFF is nonconformant
        tifffile.imwrite(path, np.zeros(shape, np.uint8))
    with pytest.raises(DataError, match=rf"empty\.tif: image is {text}: empty"):
        read_image_file(path)


def test_empty_array_is_refused_before_normalisation():
    with pytest.raises(DataError, match=r"x\.png: image is 5×0: empty"):
        to_channels(np.zeros((5, 0), np.uint8), 1, "x.png")
    with pytest.raises(DataError, match=r"x\.png: mask is empty"):
        binarize_mask(np.zeros((4, 4, 0), np.uint8), "x.png")


def test_grey_with_alpha_reads_as_grey(tmp_path):
    """An LA PNG was read as 2 channels (then averaged with its alpha); it is grey."""
    path = tmp_path / "la.png"
    Image.fromarray(np.stack([np.full((4, 4), 200, np.uint8), np.zeros((4, 4), np.uint8)], -1), "LA").save(path)
    image = read_image_file(path)
    assert image.shape == (4, 4) and (image == 200).all()


# --- 3. figshare .mat fields -------------------------------------------------------------------------------------


def test_mat_with_empty_label_is_a_data_error(tmp_path):
    write_mat(tmp_path / "5.mat", label=np.zeros((0, 1)))
    reader = build_reader({"format": "figshare_mat", "root": str(tmp_path)})
    (case,) = reader.cases()
    assert case.label is None and case.group == "5"
    with pytest.raises(DataError, match=r"5\.mat: 'cjdata/label' holds 0 values; expected one"):
        reader.load_image(case)


def test_mat_with_matlab_empty_label_is_a_data_error(tmp_path):
    """MATLAB writes an empty array as its dimensions with the attribute MATLAB_empty."""
    path = write_mat(tmp_path / "6.mat")
    with h5py.File(path, "a") as handle:
        del handle["cjdata/label"]
        handle["cjdata/label"] = np.array([0, 0], np.uint64)
        handle["cjdata/label"].attrs["MATLAB_empty"] = np.uint8(1)
    reader = build_reader({"format": "figshare_mat", "root": str(tmp_path)})
    with pytest.raises(DataError, match=r"6\.mat: 'cjdata/label' holds 0 values"):
        reader.load_image(reader.cases()[0])


@pytest.mark.parametrize("field", ["image", "tumorMask"])
def test_mat_with_3d_image_or_mask_is_refused_with_its_shape(tmp_path, field):
    volume = np.zeros((4, 64, 64), np.int16)
    arrays = {"image": volume} if field == "image" else {"mask": volume.astype(np.uint8)}
    write_mat(tmp_path / "7.mat", **arrays)
    with pytest.raises(
        DataError, match=rf"7\.mat: 'cjdata/{field}' is 3-D \(4×64×64 in MATLAB order\); expected a 2-D"
    ):
        read_cjdata(tmp_path / "7.mat", (field,))


def test_mat_with_empty_or_text_image_is_refused(tmp_path):
    write_mat(tmp_path / "8.mat", image=np.zeros((0, 5), np.int16), mask=np.zeros((0, 5), np.uint8))
    with pytest.raises(DataError, match=r"8\.mat: 'cjdata/image' is 0×5: empty"):
        read_cjdata(tmp_path / "8.mat", ("image",))
    write_mat(tmp_path / "9.mat")
    with h5py.File(tmp_path / "9.mat", "a") as handle:
        del handle["cjdata/image"]
        handle["cjdata/image"] = np.array([b"abc", b"def"])
    with pytest.raises(DataError, match=r"9\.mat: 'cjdata/image' holds \|S3 values; expected a numeric image"):
        read_cjdata(tmp_path / "9.mat", ("image",))


def test_mat_with_a_group_in_place_of_a_dataset_is_refused(tmp_path):
    write_mat(tmp_path / "10.mat")
    with h5py.File(tmp_path / "10.mat", "a") as handle:
        del handle["cjdata/image"]
        handle["cjdata"].create_group("image")
    with pytest.raises(DataError, match=r"10\.mat: 'cjdata' has no 'image' dataset"):
        read_cjdata(tmp_path / "10.mat", ("image",))


def test_mat_with_bad_label_or_pid_values_is_refused(tmp_path):
    write_mat(tmp_path / "11.mat", label=np.array([[np.nan]]))
    write_mat(tmp_path / "12.mat", label=np.array([[1.0, 2.0]]))
    write_mat(tmp_path / "13.mat", pid="P\n1")
    reader = build_reader({"format": "figshare_mat", "root": str(tmp_path)})
    cases = {case.id: case for case in reader.cases()}
    with pytest.raises(DataError, match=r"11\.mat: 'cjdata/label' is nan; expected a whole number"):
        reader.load_image(cases["11"])
    with pytest.raises(DataError, match=r"12\.mat: 'cjdata/label' holds 2 values"):
        reader.load_image(cases["12"])
    with pytest.raises(DataError, match=r"13\.mat: 'cjdata/PID' is not a patient ID"):
        reader.load_image(cases["13"])


# --- 4. skip_bad skips bad .mat files ----------------------------------------------------------------------------


def mat_folder(root: Path) -> Path:
    """4 good files and 3 bad ones: an empty label, a 3-D image, a truncated file."""
    root.mkdir()
    for i in range(1, 5):
        write_mat(root / f"{i}.mat", pid=f"P{i}")
    write_mat(root / "5.mat", label=np.zeros((0, 1)))
    write_mat(root / "6.mat", image=np.zeros((3, 6, 8), np.int16))
    data = (root / "1.mat").read_bytes()
    (root / "7.mat").write_bytes(data[: len(data) // 3])
    return root


def mat_data_config(root: Path, cache: Path, skip_bad: bool) -> DataConfig:
    return DataConfig(
        source={"format": "figshare_mat", "root": str(root)},
        size=16,
        skip_bad=skip_bad,
        cache_dir=str(cache),
        splits={"train": 0.5, "val": 0.25, "test": 0.25},
    )


def test_skip_bad_skips_bad_mat_files(tmp_path):
    root = mat_folder(tmp_path / "mat")
    dataset = prepare_dataset(mat_data_config(root, tmp_path / "cache", skip_bad=True), seed=0)
    assert sorted(dataset.store.ids) == ["1", "2", "3", "4"]
    skipped = dict(dataset.store.skipped)
    assert sorted(skipped) == ["5", "6", "7"]
    assert "5.mat: 'cjdata/label' holds 0 values" in skipped["5"]
    assert "6.mat: 'cjdata/image' is 3-D" in skipped["6"]
    assert "7.mat: cannot read as MATLAB v7.3/HDF5" in skipped["7"]
    assert dataset.labels.tolist() == [2, 2, 2, 2]


def test_without_skip_bad_a_bad_mat_file_stops_with_its_name(tmp_path):
    root = mat_folder(tmp_path / "mat")
    with pytest.raises(DataError, match=r"[567]\.mat: "):
        prepare_dataset(mat_data_config(root, tmp_path / "cache", skip_bad=False), seed=0)


# --- 5. inspect lists every bad file -----------------------------------------------------------------------------


def test_inspect_lists_every_bad_mat_file_and_counts_the_good_ones(tmp_path):
    root = mat_folder(tmp_path / "mat")
    result = inspect_source({"format": "figshare_mat", "root": str(root)})
    assert result.cases == 7
    assert len(result.problems) == 3
    for name, problem in zip(("5.mat", "6.mat", "7.mat"), result.problems, strict=True):
        assert problem.startswith(str(root / name) + ": ")
    assert result.with_mask == 4 and result.sizes == {"6×8": 4}
    assert dict(result.labels) == {2: 4}


def test_inspect_reports_a_broken_volume_once(tmp_path):
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    volume = np.random.default_rng(0).random((10, 12, 6)).astype(np.float32)
    for name in ("good", "broken"):
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "images" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image((volume > 0.5).astype(np.uint8), np.eye(4)), tmp_path / "labels" / f"{name}.nii.gz")
    broken = tmp_path / "images" / "broken.nii.gz"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # header readable, voxels truncated
    (tmp_path / "images" / "garbage.nii").write_bytes(b"not a volume" * 40)
    result = inspect_source({"format": "nifti", "root": str(tmp_path)})
    assert len(result.problems) == 2, result.problems
    assert any("broken.nii.gz: cannot read NIfTI volume" in p for p in result.problems)
    assert any("garbage.nii: cannot read NIfTI header" in p for p in result.problems)
    assert result.with_mask == 6


def test_nifti_skip_bad_skips_an_unreadable_volume(tmp_path):
    (tmp_path / "images").mkdir()
    volume = np.random.default_rng(0).random((10, 12, 4)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "images" / "good.nii.gz")
    (tmp_path / "images" / "garbage.nii").write_bytes(b"\0" * 400)
    config = DataConfig(
        source={"format": "nifti", "root": str(tmp_path), "label_dir": None},
        size=16,
        skip_bad=True,
        cache_dir=str(tmp_path / "cache"),
        splits={"train": 0.5, "val": 0.5, "test": 0.0},  # two volumes: two groups
    )
    dataset = prepare_dataset(config, seed=0, mask_ids=set())
    assert len(dataset.store.ids) == 4
    assert [case_id for case_id, _ in dataset.store.skipped] == ["garbage/0000"]


def test_a_broken_volume_is_decoded_once_for_all_its_slices(tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    volume = np.random.default_rng(0).random((10, 12, 8)).astype(np.float32)
    path = tmp_path / "images" / "broken.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    calls = []

    def counting(volume_path):
        calls.append(volume_path)
        return load_volume(volume_path)

    monkeypatch.setattr("medseg.data.readers.nifti.load_volume", counting)
    reader = build_reader({"format": "nifti", "root": str(tmp_path), "label_dir": None})
    cases = reader.cases()
    assert len(cases) == 8
    for case in cases:
        with pytest.raises(DataError, match=r"broken\.nii\.gz: cannot read NIfTI volume"):
            reader.load_image(case)
    assert len(calls) == 1


def test_folder_labels_csv_with_bad_label_or_bytes_is_a_data_error(image_folder):
    source = {
        "format": "folder",
        "root": str(image_folder),
        "image_dir": "images",
        "mask_dir": "masks",
        "labels_csv": "labels.csv",
    }
    (image_folder / "labels.csv").write_text("file,label\ncase0.png,benign\n")
    with pytest.raises(DataError, match=r"labels\.csv: label 'benign' of case0\.png is not a whole number"):
        build_reader(source).cases()
    (image_folder / "labels.csv").write_bytes(b"file,label\n\xff\xfe,1\n")
    with pytest.raises(DataError, match=r"labels\.csv: cannot read as a UTF-8 CSV"):
        build_reader(source).cases()


# --- 6. property tests -------------------------------------------------------------------------------------------

FAST = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"\xff\xd8\xff\xe0", b"BM", b"\x89HDF\r\n\x1a\n"]
DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float32, np.float64, np.bool_]
SIDE = st.integers(1, 6)
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6),  # anything, 0-sized sides included
    st.tuples(SIDE, SIDE),  # grey
    st.tuples(SIDE, SIDE, st.sampled_from([1, 2, 3, 4])),  # channels last
)


def arrays_of(dtypes=DTYPES, shapes=SHAPES):
    return st.sampled_from(dtypes).flatmap(lambda dtype: hnp.arrays(dtype, shapes))


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    """Overwrite some bytes (position modulo the length) and maybe truncate."""
    buffer = bytearray(data)
    for position, value in edits:
        if buffer:
            buffer[position % len(buffer)] = value
    return bytes(buffer[:cut] if cut is not None else buffer)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6)
CUTS = st.none() | st.integers(0, 4096)


@FAST
@given(suffix=st.sampled_from(IMAGE_SUFFIXES), magic=st.sampled_from(MAGIC), body=st.binary(max_size=1024))
def test_random_bytes_as_an_image(suffix, magic, body):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"random{suffix}"
        path.write_bytes(magic + body)
        array = only_data_error(read_image_file, path)
    outcome(array)
    if array is not None:
        check_image_layout(array)


def write_image(path: Path, array: np.ndarray) -> bool:
    """Write with tifffile (TIFF) or Pillow (others); False where the writer itself refuses the array."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix in (".tif", ".tiff"):
                tifffile.imwrite(path, array)
            else:
                Image.fromarray(array).save(path)
    except Exception:  # the writers refuse many shapes and dtypes; such an example is not a file to read
        return False
    return True


@FAST
@given(suffix=st.sampled_from(IMAGE_SUFFIXES), array=arrays_of(), edits=EDITS, cut=CUTS)
def test_random_arrays_as_image_files(suffix, array, edits, cut):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"array{suffix}"
        assume(write_image(path, array))
        path.write_bytes(mutate(path.read_bytes(), edits, cut))
        decoded = only_data_error(read_image_file, path)
        outcome(decoded)
        if decoded is not None:
            check_image_layout(decoded)
            through_the_store(decoded, str(path))
            only_data_error(binarize_mask, decoded, str(path))


MAT_DTYPES = [np.int16, np.uint8, np.uint16, np.float64, np.bool_, np.int64, np.complex64, "S3"]
MAT_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)


@st.composite
def any_mat_field(draw) -> np.ndarray | None:
    """None (no such dataset), text, or a numeric array of 0 to 3 dimensions, some of them empty."""
    if draw(st.integers(0, 9)) == 0:
        return None
    dtype, shape = draw(st.sampled_from(MAT_DTYPES)), draw(MAT_SHAPES)
    if dtype == "S3":
        return np.full(shape, b"abc", "S3")
    return draw(hnp.arrays(dtype, shape))


def mat_fields(field: str) -> st.SearchStrategy:
    """Half the time a plausible value of `field` (so that some files decode), else anything."""
    plausible = {
        "image": st.sampled_from([np.int16, np.uint8, np.float64]).flatmap(
            lambda dtype: hnp.arrays(dtype, st.tuples(SIDE, SIDE))
        ),
        "tumorMask": hnp.arrays(np.uint8, st.tuples(SIDE, SIDE), elements=st.integers(0, 1)),
        "label": st.integers(1, 3).map(lambda label: np.array([[float(label)]])),
        "PID": st.text("P0123456789", min_size=0, max_size=6).map(
            lambda pid: np.array([[ord(c)] for c in pid], np.uint16).reshape(-1, 1)
        ),
    }[field]
    return st.one_of(plausible, any_mat_field())


def check_figshare_file(root: Path) -> None:
    """Listing never fails on one bad file; loading gives a `DataError` or a 2-D array that the store accepts."""
    reader = FigshareMatReader(FigshareMatReader.Options(root=root))
    (case,) = reader.cases()
    image = only_data_error(reader.load_image, case)
    outcome(image)
    if image is not None:
        assert image.ndim == 2 and 0 not in image.shape and image.dtype.kind in "biuf"
        assert case.label is not None
        through_the_store(image, case.image)
    mask = only_data_error(reader.load_mask, case)
    if mask is not None:
        assert mask.ndim == 2 and 0 not in mask.shape
        only_data_error(binarize_mask, mask, case.mask)


@FAST
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=2048))
def test_random_bytes_as_a_mat_file(magic, body):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1.mat"
        path.write_bytes(magic + body)
        only_data_error(read_cjdata, path, ("image", "tumorMask", "label", "PID"))
        check_figshare_file(Path(folder))


@FAST
@given(
    image=mat_fields("image"),
    mask=mat_fields("tumorMask"),
    label=mat_fields("label"),
    pid=mat_fields("PID"),
    group_name=st.sampled_from(["cjdata", "cjdata", "x"]),
)
def test_random_datasets_in_a_mat_file(image, mask, label, pid, group_name):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1.mat"
        with h5py.File(path, "w") as handle:
            group = handle.create_group(group_name)
            for name, value in (("image", image), ("tumorMask", mask), ("label", label), ("PID", pid)):
                if value is not None:
                    group[name] = value
        only_data_error(read_cjdata, path, ("image", "tumorMask", "label", "PID"))
        check_figshare_file(Path(folder))


def small_nifti_bytes(dtype: type, shape: tuple[int, ...]) -> bytes:
    image = nib.Nifti1Image(np.ones(shape, dtype), np.eye(4))
    return image.header.binaryblock + bytes(4) + np.ones(shape, dtype).tobytes(order="F")


@FAST
@given(
    name=st.sampled_from(["v.nii", "v.nii.gz"]),
    start=st.sampled_from(["random", "nifti"]),
    body=st.binary(max_size=1024),
    edits=EDITS,
    cut=CUTS,
    dtype=st.sampled_from([np.uint8, np.int16, np.float32]),
    shape=st.sampled_from([(3, 4, 2), (3, 4), (3, 4, 2, 1), (3, 4, 2, 2)]),
)
def test_random_bytes_as_a_nifti_volume(name, start, body, edits, cut, dtype, shape):
    data = body if start == "random" else mutate(small_nifti_bytes(dtype, shape) + body, edits, cut)
    if name.endswith(".gz") and start == "nifti":
        data = gzip.compress(data)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "images").mkdir()
        path = Path(folder) / "images" / name
        path.write_bytes(data)
        volume = only_data_error(load_volume, str(path))
        outcome(volume)
        if volume is not None:
            assert volume.ndim == 3 and 0 not in volume.shape and volume.dtype.kind in "biuf"
        reader = build_reader({"format": "nifti", "root": folder, "label_dir": None})
        for case in reader.cases()[:3]:
            image = only_data_error(reader.load_image, case)
            if image is not None:
                check_image_layout(image)
                through_the_store(image, case.image)
    load_volume.cache_clear()
