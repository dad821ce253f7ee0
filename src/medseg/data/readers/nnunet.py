"""The nnU-Net / Medical Segmentation Decathlon raw layout, which many public data sets are published in:

    root/dataset.json                  labels (and channel names, file ending)
    root/imagesTr/<case>_0000.<ext>    channel 0 of a case (_0001, _0002, ... the others)
    root/labelsTr/<case>.<ext>         its label map (class indices)
    root/imagesTs/<case>_0000.<ext>    test cases, without labels

2-D files (PNG, TIFF, BMP, JPEG) are one slice each; NIfTI volumes are sliced along `axis` (a volume is a group).
`dataset.json`'s labels may be given as nnU-Net v2 does (`{"background": 0, "tumour": 1}`) or as the Decathlon
did (`{"0": "background", "1": "tumour"}`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medseg.data.case import Case
from medseg.data.readers.base import READERS, Reader, ReaderOptions, file_stamp
from medseg.data.readers.image_files import IMAGE_SUFFIXES, read_image_file
from medseg.data.readers.nifti import load_volume, slice_spacing, volume_shape
from medseg.errors import DataError

__all__ = ["NnUNetReader", "label_names"]

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})(?P<ending>\.nii\.gz|\.nii|\.[A-Za-z]+)$")


class NnUNetOptions(ReaderOptions):
    root: Path
    split: Literal["Tr", "Ts"] = "Tr"
    axis: int = 2


def label_names(root: str | Path) -> dict[int, str]:
    """Class index → name from `root/dataset.json` (either the nnU-Net v2 or the Decathlon form).

    Raises:
        DataError: no dataset.json, not JSON, or labels that are not a mapping of names and integers.
    """
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise DataError(path, "dataset.json not found: not an nnU-Net / Decathlon raw data set")
    try:
        labels = json.loads(path.read_text()).get("labels", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise DataError(path, f"not a readable dataset.json: {error}") from None
    except RecursionError:
        raise DataError(path, "not a readable dataset.json: nested too deeply") from None
    if not isinstance(labels, dict) or not labels:
        raise DataError(path, f"'labels' must map class names to indices, got {labels!r}")
    try:
        if all(isinstance(v, int) for v in labels.values()):  # nnU-Net v2: name → index
            return {int(v): str(k) for k, v in labels.items()}
        return {int(k): str(v) for k, v in labels.items()}  # Decathlon: "index" → name
    except (TypeError, ValueError):
        raise DataError(path, f"'labels' must map class names to integer indices, got {labels!r}") from None


def _is_volume(ending: str) -> bool:
    return ending.lower() in (".nii", ".nii.gz")


@READERS.register("nnunet")
class NnUNetReader(Reader):
    """Cases of an nnU-Net / Decathlon raw data set.

    Options:
        root: the data set's folder (with dataset.json).
        split: "Tr" (imagesTr with labelsTr) or "Ts" (imagesTs, no labels).
        axis: the slicing axis of NIfTI volumes.
    """

    Options = NnUNetOptions
    options: NnUNetOptions
    source_priority = 10  # a dataset.json decides before any file pattern

    def class_names(self) -> dict[int, str]:
        return label_names(self.options.root)

    def expects_masks(self) -> bool:
        return self.options.split == "Tr"

    @classmethod
    def sniff_source(cls, root: Path) -> dict[str, Any] | None:
        return {} if (root / "dataset.json").is_file() and (root / "imagesTr").is_dir() else None

    def __init__(self, options: NnUNetOptions) -> None:
        super().__init__(options)
        self._channels: dict[str, list[str]] = {}

    def cases(self) -> list[Case]:
        """Every case (every slice of every volume); its channels are the case's `_0000`, `_0001`, ... files.

        Raises:
            DataError: no dataset.json, no image folder, a channel missing for some case, or a bad axis.
        """
        opts = self.options
        label_names(opts.root)
        if opts.axis not in (0, 1, 2):
            raise DataError(opts.root, f"data.source.axis must be 0, 1 or 2, got {opts.axis}")
        folder = opts.root / f"images{opts.split}"
        if not folder.is_dir():
            raise DataError(folder, f"image folder not found (an nnU-Net raw data set has images{opts.split}/)")
        channels: dict[tuple[str, str], dict[int, Path]] = {}
        for path in sorted(folder.iterdir()):
            match = _CHANNEL.match(path.name)
            if match and (match["ending"].lower() in IMAGE_SUFFIXES or _is_volume(match["ending"])):
                channels.setdefault((match["case"], match["ending"]), {})[int(match["channel"])] = path
        count = max((len(c) for c in channels.values()), default=0)
        cases = []
        for (name, ending), found in channels.items():
            if sorted(found) != list(range(count)):
                problem = f"case has channels {sorted(found)}; expected 0..{count - 1}"
                raise DataError(folder / f"{name}_0000{ending}", problem)
            cases += self._cases_of(name, ending, [str(found[k]) for k in range(count)])
        return cases

    def _cases_of(self, name: str, ending: str, channel_paths: list[str]) -> list[Case]:
        label = self.options.root / "labelsTr" / f"{name}{ending}"
        mask = str(label) if self.options.split == "Tr" and label.is_file() else None
        if not _is_volume(ending):
            self._channels[name] = channel_paths
            return [Case(id=name, image=channel_paths[0], mask=mask, group=name)]
        try:
            slices = volume_shape(channel_paths[0])[self.options.axis]
        except DataError:  # listed as one slice: loading it raises the same error
            slices = 1
        cases = []
        for index in range(slices):
            case_id = f"{name}/{index:04d}"
            self._channels[case_id] = channel_paths
            cases.append(Case(id=case_id, image=channel_paths[0], mask=mask, group=name, slice=index))
        return cases

    def _read(self, path: str, case: Case) -> np.ndarray:
        if case.slice is None:
            return read_image_file(path)
        return np.take(load_volume(path), case.slice, axis=self.options.axis)

    def load_image(self, case: Case) -> np.ndarray:
        """`(H, W)` for one grey channel, else `(H, W, C)` with the channels in file order.

        Raises:
            DataError: an unreadable channel, or channels of different sizes.
        """
        planes = [self._read(path, case) for path in self._channels.get(case.id, [case.image])]
        planes = [p[..., None] if p.ndim == 2 else p for p in planes]
        if len({p.shape[:2] for p in planes}) > 1:
            raise DataError(case.image, f"channels of different sizes: {[p.shape[:2] for p in planes]}")
        image = np.concatenate(planes, axis=2)
        return image[..., 0] if image.shape[2] == 1 else image

    def load_mask(self, case: Case) -> np.ndarray:
        if case.mask is None:
            raise DataError(case.image, "case has no label file in labelsTr/, but one is required here")
        return self._read(case.mask, case)

    def spacing(self, case: Case) -> tuple[float, float] | None:
        return None if case.slice is None else slice_spacing(case.image, self.options.axis)

    def fingerprint(self, case: Case) -> str:
        stamps = [file_stamp(path) for path in self._channels.get(case.id, [case.image])]
        return "|".join([*stamps, file_stamp(case.mask) if case.mask else ""])
