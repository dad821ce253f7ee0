"""DICOM in (series found by content, ordered by position, rescaled; masks from DICOM-SEG) and DICOM-SEG out."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import SegmentCode
from medseg.data.dicom.geometry import nifti_affine
from medseg.data.dicom.pixels import read_series
from medseg.data.dicom.scan import scan_tree
from medseg.data.dicom.seg import read_masks, write_segmentation
from medseg.data.readers import build_reader
from medseg.errors import DataError
from medseg.inspect import source_for
from tests.data.dicom_files import PLANTED, disc_volume, write_series

runner = CliRunner()


def _patient(number: int) -> dict[str, str]:
    return {key: value + (str(number) if key != "PatientBirthDate" else "") for key, value in PLANTED.items()}


def _planted_strings() -> list[str]:
    return ["Secretname", "Planted", "MRN-3141592", PLANTED["PatientBirthDate"]]


def test_series_found_by_content_and_ordered_by_position_not_by_name(tmp_path):
    images, _ = disc_volume(6)
    write_series(tmp_path / "ct", images)  # names and InstanceNumbers disagree with positions
    write_series(tmp_path / "mr", images[:4], modality="MR", multi_frame=True)  # frames stored top-down
    (tmp_path / "ct" / "notes.txt").write_text("not DICOM")
    (tmp_path / "DICOMDIR-like").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    tree = scan_tree(tmp_path)
    assert sorted(s.modality for s in tree.series) == ["CT", "MR"]
    assert [path for path, _ in tree.skipped] == [str(tmp_path / "DICOMDIR-like")]
    for series in tree.series:
        values = np.stack(read_series(series))
        np.testing.assert_allclose(values, images[: len(values)])  # CT: stored values rescaled back to HU
        assert [p.position[2] for p in series.slices] == sorted(p.position[2] for p in series.slices)


def test_ct_rescale_slope_and_intercept_applied(tmp_path):
    images = np.full((2, 8, 8), -1000, np.int16)
    images[1] = 40
    write_series(tmp_path, images, slope=0.5, intercept=-1024)
    (series,) = scan_tree(tmp_path).series
    assert [float(v[0, 0]) for v in read_series(series)] == [-1000.0, 40.0]


def test_compressed_transfer_syntaxes_decode(tmp_path):
    from pydicom import dcmread
    from pydicom.uid import JPEG2000Lossless, RLELossless

    images, _ = disc_volume(2)
    for path, syntax in zip(write_series(tmp_path, images), (JPEG2000Lossless, RLELossless), strict=True):
        dataset = dcmread(path)
        dataset.compress(syntax)  # the JPEG 2000 encoder is pylibjpeg-openjpeg's: the plugin medseg depends on
        dataset.save_as(path)
    (series,) = scan_tree(tmp_path).series
    np.testing.assert_allclose(np.stack(read_series(series)), images)


def test_no_dicom_in_a_folder_is_one_line_naming_it(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no DICOM file found"):
        scan_tree(tmp_path)


def test_seg_round_trip_keeps_every_slice_including_empty_ones(tmp_path):
    images, masks = disc_volume(5)
    masks[0] = 0  # a slice with nothing: omitted from the SEG's frames, read back empty
    for name, multi in (("single", False), ("multi", True)):
        write_series(tmp_path / name, images, modality="MR", multi_frame=multi)
    tree = scan_tree(tmp_path)
    for series in tree.series:
        write_segmentation(series, list(masks), tmp_path / f"{series.key}_seg.dcm", [SegmentCode()], "run")
    tree = scan_tree(tmp_path)
    assert len(tree.segmentations) == 2
    for series in tree.series:
        np.testing.assert_array_equal(np.stack(read_masks(tree.segmentation_of(series), series)), masks)


def test_seg_references_the_series_and_carries_the_configured_codes(tmp_path):
    images, masks = disc_volume(3)
    write_series(tmp_path / "in", images)
    (series,) = scan_tree(tmp_path / "in").series
    code = SegmentCode(label="tumour", category=("49755003", "SCT", "Morph"), type=("108369006", "SCT", "Neoplasm"))
    write_segmentation(series, list(masks), tmp_path / "out.dcm", [code], "my-run")
    seg = hd.seg.segread(tmp_path / "out.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    assert seg.FrameOfReferenceUID == series.frame_of_reference
    assert seg.SegmentationType == "BINARY"
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "tumour" and segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert segment.SegmentAlgorithmName == "my-run" and seg.Manufacturer == "medseg"
    assert str(seg.SeriesInstanceUID) != series.uid


def test_nifti_affine_maps_voxels_to_the_slices_positions(tmp_path):
    images, _ = disc_volume(4)
    write_series(tmp_path, images)
    (series,) = scan_tree(tmp_path).series
    affine = nifti_affine(series)
    for index, piece in enumerate(series.slices):
        x, y, z = piece.position
        np.testing.assert_allclose(affine @ [0, 0, index, 1], [-x, -y, z, 1])  # LPS → RAS
    np.testing.assert_allclose(affine @ [1, 0, 0, 1] - affine @ [0, 0, 0, 1], [0, -0.8, 0, 0])  # rows go +y (LPS)


def _dicom_dataset(root: Path, patients: int = 4) -> None:
    for number in range(patients):
        images, masks = disc_volume(6, seed=number)
        write_series(root / f"export_{number}" / "series", images, patient=_patient(number))
        (series,) = scan_tree(root / f"export_{number}").series
        write_segmentation(series, list(masks), root / f"export_{number}" / "seg.dcm", [SegmentCode()], "truth")
    images, _ = disc_volume(6, seed=9)  # a series nobody segmented: unlabelled
    write_series(root / "unlabelled", images, modality="MR", patient=_patient(9))


def test_reader_lists_slices_by_hashed_ids_with_masks_from_seg(tmp_path):
    _dicom_dataset(tmp_path, patients=2)
    reader = build_reader({"format": "dicom", "root": str(tmp_path)})
    cases = reader.cases()
    assert len(cases) == 18 and sum(case.mask is not None for case in cases) == 12
    assert len({case.group for case in cases}) == 3
    labelled = [case for case in cases if case.mask]
    masks = np.stack([reader.load_mask(case) for case in labelled[:6]])
    assert masks.shape == (6, 32, 32) and masks.max() == 1 and masks.sum(axis=(1, 2)).tolist() == sorted(
        masks.sum(axis=(1, 2)).tolist()
    )  # discs grow with position: the masks follow the slices' order
    assert reader.load_image(labelled[0]).dtype == np.float32
    only_mr = build_reader({"format": "dicom", "root": str(tmp_path), "modalities": ["mr"]}).cases()
    assert len(only_mr) == 6 and all(case.mask is None for case in only_mr)
    assert source_for(tmp_path) == {"format": "dicom", "root": str(tmp_path)}
    text = json.dumps([case.__dict__ for case in cases])
    assert not [s for s in ("Secretname", "MRN-3141592") if s in text.replace(str(tmp_path), "")]


@pytest.mark.slow
def test_train_predict_dicom_seg_and_no_patient_identity_anywhere(tmp_path):
    data = tmp_path / "data"
    _dicom_dataset(data)
    config = {
        "name": "dicom-run",
        "data": {
            "source": {"format": "dicom", "root": str(data), "modalities": ["CT"]},
            "size": 32,
            "cache_dir": str(tmp_path / "cache"),
            "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
            "segments": [{"label": "tumour"}],
        },
        "model": {"name": "unet", "features": [4, 8]},
        "train": {"epochs": 1, "batch_size": 2},
    }
    path = tmp_path / "dicom.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    outputs = [runner.invoke(app, ["data", "inspect", str(data)])]
    refused = runner.invoke(app, ["train", str(path), "data.source.modalities=null", "--run-dir", str(run)])
    assert refused.exit_code == 2 and "no DICOM-SEG in the tree references this slice's series" in refused.output
    outputs.append(runner.invoke(app, ["train", str(path), "--run-dir", str(run)]))
    assert outputs[-1].exit_code == 0, outputs[-1].output
    out = tmp_path / "predictions"
    outputs.append(runner.invoke(app, ["predict", str(run), str(data / "export_0"), "--out", str(out)]))
    outputs.append(
        runner.invoke(app, ["predict", str(run), str(data / "export_1"), "--out", str(out), "--format", "dicom-seg"])
    )
    assert all(result.exit_code == 0 for result in outputs[2:]), [r.output for r in outputs]

    (volume,) = out.glob("*_mask.nii.gz")
    (series,) = scan_tree(data / "export_0" / "series").series
    assert volume.name == f"{series.key}_mask.nii.gz"
    written = nib.load(volume)
    assert written.shape == (32, 32, 6) and np.allclose(written.affine, nifti_affine(series))
    (seg_file,) = out.glob("*_seg.dcm")
    seg = hd.seg.segread(seg_file)
    (source,) = scan_tree(data / "export_1" / "series").series
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.uid
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "tumour" and segment.SegmentAlgorithmName == "dicom-run"

    texts = [result.output for result in outputs]
    texts += [p.read_text() for p in run.rglob("*") if p.suffix in (".csv", ".html", ".json", ".yaml", ".log", ".txt")]
    texts += [str(p.relative_to(tmp_path)) for p in [*run.rglob("*"), *out.rglob("*")]]
    leaks = [s for s in _planted_strings() if any(s in text for text in texts)]
    assert not leaks, f"patient identity leaked: {leaks}"
