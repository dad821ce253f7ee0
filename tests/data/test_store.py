import numpy as np
import pytest

from medseg.config import load_config
from medseg.data.readers import build_reader
from medseg.data.store import Preprocessing, open_store
from medseg.engine.trainer import train
from medseg.errors import DataError
from tests.conftest import write_png


class CountingReader:
    """Wraps a reader and counts decodes."""

    def __init__(self, reader):
        self.reader = reader
        self.image_calls = 0
        self.mask_calls = 0

    def cases(self):
        return self.reader.cases()

    def fingerprint(self, case):
        return self.reader.fingerprint(case)

    def load_image(self, case):
        self.image_calls += 1
        return self.reader.load_image(case)

    def load_mask(self, case):
        self.mask_calls += 1
        return self.reader.load_mask(case)


def test_second_open_decodes_nothing(tmp_path, image_folder):
    reader = CountingReader(
        build_reader({"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"})
    )
    cases = reader.cases()
    settings = Preprocessing(size=32)
    store = open_store(reader, cases, settings, tmp_path / "cache")
    assert (reader.image_calls, reader.mask_calls) == (6, 6)
    assert store.images.shape == (6, 1, 32, 32) and store.masks.shape == (6, 32, 32)
    assert isinstance(store.images, np.memmap)
    again = open_store(reader, cases, settings, tmp_path / "cache")
    assert (reader.image_calls, reader.mask_calls) == (6, 6)
    np.testing.assert_array_equal(again.masks, store.masks)
    open_store(reader, cases, Preprocessing(size=24), tmp_path / "cache")  # other settings → another store
    assert reader.image_calls == 12


def test_masks_outside_mask_ids_are_never_read(tmp_path, image_folder):
    reader = CountingReader(
        build_reader({"format": "folder", "root": str(image_folder), "image_dir": "images", "mask_dir": "masks"})
    )
    cases = reader.cases()
    store = open_store(reader, cases, Preprocessing(size=32), tmp_path / "cache", mask_ids={cases[0].id})
    assert reader.mask_calls == 1
    assert store.has_mask(0) and not store.has_mask(1)


def test_training_epochs_after_the_first_read_no_file(tmp_path, phantom_config, monkeypatch):
    """Train 3 epochs while counting reader calls: all decoding happens once, before epoch 1."""
    from medseg.data.readers.phantoms import PhantomReader

    calls = []
    original = PhantomReader.load_image
    monkeypatch.setattr(PhantomReader, "load_image", lambda self, case: calls.append(case.id) or original(self, case))
    from medseg.engine.trainer import Hooks, validate

    epochs_seen = []
    hooks = Hooks(validate=lambda state: epochs_seen.append(len(calls)) or validate(state))
    train(load_config(phantom_config(epochs=3)), tmp_path / "run", show_progress=False, hooks=hooks)
    assert len(calls) == 48
    assert epochs_seen == [48, 48, 48]


def _bad_folder(root, bad_kind):
    good = np.zeros((16, 16), np.uint8)
    for i in range(3):
        write_png(root / "images" / f"c{i}.png", good + 50)
        write_png(root / "masks" / f"c{i}.png", good)
    if bad_kind == "size":
        write_png(root / "masks" / "c1.png", np.zeros((12, 16), np.uint8))
    elif bad_kind == "values":
        write_png(root / "masks" / "c1.png", (np.arange(256).reshape(16, 16)).astype(np.uint8))
    elif bad_kind == "missing":
        (root / "masks" / "c1.png").unlink()
    elif bad_kind == "truncated":
        path = root / "images" / "c1.png"
        path.write_bytes(path.read_bytes()[:30])
    return build_reader({"format": "folder", "root": str(root), "image_dir": "images", "mask_dir": "masks"})


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("size", r"c1\.png: mask size \(12, 16\) ≠ image size \(16, 16\)"),
        ("values", r"c1\.png: mask is not binary"),
        ("missing", r"c1\.png: image has no mask, but one is required here"),
        ("truncated", r"c1\.png: cannot decode image"),
    ],
)
def test_bad_case_fails_with_file_and_problem_or_is_skipped(tmp_path, kind, message):
    reader = _bad_folder(tmp_path / "data", kind)
    cases = reader.cases()
    mask_ids = {c.id for c in cases}  # masks required for every case
    with pytest.raises(DataError, match=message):
        open_store(reader, cases, Preprocessing(size=16), tmp_path / "cache", mask_ids=mask_ids)
    assert not any(p.name[0] != "." for p in (tmp_path / "cache").glob("*")), "no half-built store left behind"
    store = open_store(reader, cases, Preprocessing(size=16), tmp_path / "cache", mask_ids=mask_ids, skip_bad=True)
    assert store.ids == ["c0", "c2"] and store.images.shape[0] == 2
    assert store.skipped[0][0] == "c1" and "c1.png" in store.skipped[0][1]


def test_nan_pixels_are_refused(tmp_path):
    import tifffile

    image = np.ones((8, 8), np.float32)
    image[2, 3] = np.nan
    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images" / "x.tif", image)
    reader = build_reader({"format": "folder", "root": str(tmp_path), "image_dir": "images"})
    with pytest.raises(DataError, match=r"x\.tif: image has 1 NaN/inf pixels"):
        open_store(reader, reader.cases(), Preprocessing(size=8), tmp_path / "cache")


def test_empty_dataset_is_reported(tmp_path):
    (tmp_path / "images").mkdir()
    cfg = load_config(
        {
            "data": {
                "source": {"format": "folder", "root": str(tmp_path), "image_dir": "images"},
                "cache_dir": str(tmp_path / "cache"),
            }
        }
    )
    with pytest.raises(DataError, match="no images found: the dataset is empty"):
        train(cfg, tmp_path / "run", show_progress=False)
