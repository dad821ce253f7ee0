"""DICOM in (series found by content, ordered by position, rescaled; masks from DICOM-SEG) and DICOM-SEG out."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest
import yaml
from pydicom import dcmread
from typer.testing import CliRunner

from medseg.cli import app
from medseg.config import SegmentCode
from medseg.data.readers import build_reader
from medseg.data.readers.dicom.geometry import nifti_affine
from medseg.data.readers.dicom.pixels import read_series
from medseg.data.readers.dicom.scan import scan_tree
from medseg.data.readers.dicom.seg import read_masks, write_segmentation
from medseg.errors import DataError
from medseg.inspection import source_for
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
    assert [path for path, _ in tree.unreadable] == [str(tmp_path / "DICOMDIR-like")]
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
    from pydicom.uid import JPEG2000Lossless, RLELossless

    images, _ = disc_volume(2)
    for path, syntax in zip(write_series(tmp_path, images), (JPEG2000Lossless, RLELossless), strict=True):
        dataset = dcmread(path)
        dataset.compress(syntax)  # the JPEG 2000 encoder is pylibjpeg-openjpeg's: the plugin medseg depends on
        dataset.save_as(path)
    (series,) = scan_tree(tmp_path).series
    np.testing.assert_allclose(np.stack(read_series(series)), images)


def test_a_series_that_is_not_one_volume_is_refused_naming_the_file(tmp_path):
    images, _ = disc_volume(5)
    paths = write_series(tmp_path / "gap", images, shuffle_names=False)
    paths[2].unlink()  # the middle slice lost in transfer
    spaced = write_series(tmp_path / "spacing", images, shuffle_names=False)
    dataset = dcmread(spaced[3])
    dataset.PixelSpacing = [0.5, 0.5]
    dataset.save_as(spaced[3])
    gap, spacing = sorted(scan_tree(tmp_path).series, key=lambda s: s.files[0])
    with pytest.raises(DataError, match="a slice is missing") as missing:
        read_series(gap)
    assert missing.value.path == str(paths[3])
    with pytest.raises(DataError, match=r"pixel spacing \(0.5, 0.5\) differs from \(0.8, 0.8\)") as mixed:
        read_series(spacing)
    assert mixed.value.path == str(spaced[3])
    reader = build_reader({"format": "dicom", "root": str(tmp_path / "gap")})
    assert len(reader.cases()) == 4 and reader.load_image(reader.cases()[0]).shape == (32, 32)  # 2-D slices train


def test_corrupt_and_non_image_files_in_a_tree(tmp_path):
    images, _ = disc_volume(3)
    paths = write_series(tmp_path / "ct", images)
    broken = tmp_path / "ct" / "broken"
    broken.write_bytes(paths[0].read_bytes()[:300])  # cut inside the header
    report = dcmread(paths[0])
    report.Modality, report.SOPInstanceUID = "SR", "1.2.3.4"
    del report.PixelData, report.Rows
    report.save_as(tmp_path / "report.dcm")
    tree = scan_tree(tmp_path)
    assert tree.not_images == [str(tmp_path / "report.dcm")] and len(tree.series) == 1
    reader = build_reader({"format": "dicom", "root": str(tmp_path)})
    cases = reader.cases()
    assert len(cases) == 4  # three slices, and the broken file listed so that loading it can say what is wrong
    (bad,) = [case for case in cases if case.group == "unreadable"]
    with pytest.raises(DataError, match="unreadable DICOM header") as error:
        reader.load_image(bad)
    assert error.value.path == str(broken)
    result = runner.invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 1 and f"{broken}: unreadable DICOM header" in result.output.replace("\n", "")


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


def test_segments_option_maps_seg_segments_to_classes(tmp_path):
    images, masks = disc_volume(3)
    write_series(tmp_path, images)
    (series,) = scan_tree(tmp_path).series
    two = masks * 2  # the drawn structure is segment 2; segment 1 is a ring around it
    two[(masks == 0) & (np.roll(masks, 2, axis=2) == 1)] = 1
    write_segmentation(series, list(two), tmp_path / "seg.dcm", [SegmentCode(label="a"), SegmentCode(label="b")], "t")
    options = {"format": "dicom", "root": str(tmp_path)}
    plain, only_two = build_reader(options), build_reader({**options, "segments": [2]})
    case = plain.cases()[2]
    np.testing.assert_array_equal(plain.load_mask(case), two[2])
    np.testing.assert_array_equal(only_two.load_mask(case), masks[2])


def test_reader_lists_slices_by_hashed_ids_with_masks_from_seg(tmp_path):
    _dicom_dataset(tmp_path, patients=2)
    reader = build_reader({"format": "dicom", "root": str(tmp_path)})
    cases = reader.cases()
    assert len(cases) == 18 and sum(case.mask is not None for case in cases) == 12
    assert len({case.group for case in cases}) == 3
    labelled = [case for case in cases if case.mask]
    masks = np.stack([reader.load_mask(case) for case in labelled[:6]])
    assert (
        masks.shape == (6, 32, 32)
        and masks.max() == 1
        and masks.sum(axis=(1, 2)).tolist() == sorted(masks.sum(axis=(1, 2)).tolist())
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
    outputs.append(runner.invoke(app, ["train", str(path), "--run-dir", str(run), "--no-evaluate"]))
    assert outputs[-1].exit_code == 0, outputs[-1].output
    outputs.append(runner.invoke(app, ["evaluate", str(run)]))
    assert outputs[-1].exit_code == 0, outputs[-1].output
    cases = (run / "eval" / "test" / "cases.csv").read_text().splitlines()
    assert len(cases) == 1 + 6 and all(line.startswith("s") for line in cases[1:])  # one test patient, hashed ids
    out = tmp_path / "predictions"
    outputs.append(runner.invoke(app, ["predict", str(run), str(data / "export_0"), "--out", str(out)]))
    outputs.append(
        runner.invoke(app, ["predict", str(run), str(data / "export_1"), "--out", str(out), "--format", "dicom-seg"])
    )
    outputs.append(runner.invoke(app, ["predict", str(run), str(data / "export_1"), "--out", str(tmp_path / "same")]))
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
    # the SEG holds exactly the masks predicted for the same series (written as NIfTI), on the right instances
    predicted = nib.load(next((tmp_path / "same").glob("*_mask.nii.gz"))).get_fdata().astype(np.uint8)
    instances = [piece.sop_uid for piece in source.slices]
    stored = seg.get_pixels_by_source_instance(instances, assert_missing_frames_are_empty=True)[..., 0]
    np.testing.assert_array_equal(stored, np.moveaxis(predicted, -1, 0))
    _validate_with_dciodvfy(seg_file)

    gap = write_series(tmp_path / "gap", disc_volume(5)[0], patient=_patient(5))
    gap[2].unlink()
    failed = runner.invoke(app, ["predict", str(run), str(tmp_path / "gap"), "--out", str(tmp_path / "g")])
    assert failed.exit_code == 2 and "a slice is missing" in failed.output
    outputs.append(
        runner.invoke(app, ["predict", str(run), str(tmp_path / "gap"), "--out", str(tmp_path / "g"), "--skip-bad"])
    )
    assert outputs[-1].exit_code == 0 and "a slice is missing" in (tmp_path / "g" / "skipped.csv").read_text()

    texts = [result.output for result in outputs]
    texts += [p.read_text() for p in run.rglob("*") if p.suffix in (".csv", ".html", ".json", ".yaml", ".log", ".txt")]
    texts += [str(p.relative_to(tmp_path)) for p in [*run.rglob("*"), *out.rglob("*")]]
    leaks = [s for s in _planted_strings() if any(s in text for text in texts)]
    assert not leaks, f"patient identity leaked: {leaks}"


def _validate_with_dciodvfy(path: Path) -> None:
    """dicom3tools' validator on a written object, where it is installed (Debian's `dicom3tools`)."""
    import shutil
    import subprocess

    if shutil.which("dciodvfy") is None:
        return  # not installed here; test_seg_passes_dciodvfy says so by skipping
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    assert not errors, errors


def test_seg_passes_dciodvfy(tmp_path):
    import shutil

    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian's dicom3tools) is not installed on this machine")
    images, masks = disc_volume(3)
    write_series(tmp_path / "in", images)
    (series,) = scan_tree(tmp_path / "in").series
    write_segmentation(series, list(masks), tmp_path / "seg.dcm", [SegmentCode()], "run")
    _validate_with_dciodvfy(tmp_path / "seg.dcm")
