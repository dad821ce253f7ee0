"""Typed configuration: YAML → pydantic sections, `key=value` overrides, readable errors.

Unknown keys are errors that name the key and suggest the nearest valid one. This module is a pure schema: the
`data.source`, `model:` and `method:` sections are checked against their registries, and completed with every
default, by `medseg.resolve.resolve_config`.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medseg.errors import ConfigError

__all__ = [
    "Config",
    "DataConfig",
    "SegmentCode",
    "AugmentConfig",
    "TrainConfig",
    "EvalConfig",
    "WeakConfig",
    "load_config",
    "parse_overrides",
]


def _admits_bool(annotation: Any) -> bool:
    return annotation is bool or annotation is Any or bool in typing.get_args(annotation)


MAX_SIDE = 8192  # a side no 2-D slice, crop or window of medseg's reaches; far larger asks are typos, refused


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """`epochs: true` is a mistake, not 1 epoch: a boolean only where the field is one."""
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if isinstance(value, bool) and field is not None and not _admits_bool(field.annotation):
                    raise ValueError(f"{key}: expected a number, not {str(value).lower()}")
        return data


class SplitConfig(_Section):
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6 or min(self.train, self.val, self.test) < 0:
            raise ValueError(f"split ratios must be ≥ 0 and sum to 1, got {self.train}+{self.val}+{self.test}={total}")
        return self


class SegmentCode(_Section):
    """What one predicted class is, for DICOM-SEG: a label and SNOMED CT codes (`[value, scheme, meaning]`) of its
    segmented property category (CID 7150) and type (CID 7151). The default describes a generic lesion."""

    label: str = Field("lesion", min_length=1, max_length=64)
    category: tuple[str, str, str] = ("49755003", "SCT", "Morphologically Altered Structure")
    type: tuple[str, str, str] = ("52988006", "SCT", "Lesion")


class DataConfig(_Section):
    """Where the data comes from and how it is preprocessed (once, into the store)."""

    source: dict[str, Any] = Field(description="reader options; `format` names the reader")
    size: int = Field(128, ge=16, le=MAX_SIDE, description="resolution: square: the side every slice is resized to")
    resolution: Literal["square", "native"] = Field(
        "square",
        description="square: every slice resized to size × size (quick runs); native: each slice at its own size "
        "(times data.scale), trained on augment.patch patches and predicted with overlapping sliding windows",
    )
    scale: float = Field(1.0, gt=0, le=4, description="resolution: native: one factor on both sides (aspect kept)")
    channels: int = Field(1, ge=1, le=4)
    num_classes: int = Field(2, ge=2, description="2 = binary (one output channel)")
    normalize: Literal["percentile", "zscore", "none"] = "percentile"
    image_resize: Literal["bilinear", "area"] = "bilinear"
    splits: SplitConfig = SplitConfig()
    split_file: str | None = Field(None, description="a splits.csv to reuse instead of drawing one")
    labeled_ratio: float | None = Field(
        None, gt=0, le=1, description="semi-supervised: share of the training cases (by group) that keep masks"
    )
    labeled_count: int | None = Field(None, ge=1, description="semi-supervised: number of labelled training cases")
    labeled_file: str | None = Field(
        None,
        description="semi-supervised: a file of the training cases' ids whose masks are used (one per line, or a CSV "
        "with an `id` column such as `medseg select`'s picks); the other training cases are unlabelled",
    )
    stratify_by_label: bool = Field(
        False,
        description="draw the splits (and the labelled share) within each image label (a group's most common), so "
        "that validation, test and the labelled cases hold the labels in about the dataset's proportions",
    )
    mask_override: str | None = Field(
        None,
        description="a pseudo_masks.npz (ids, masks at data.size; 255 = unknown, see IGNORE_INDEX) that replaces the "
        "masks of the training and validation cases it lists; test cases keep their true masks",
    )
    skip_bad: bool = False
    cache_dir: str = ".medseg-cache"
    segments: list[SegmentCode] | None = Field(
        None, description="DICOM-SEG output: one code per foreground class, in class order (default: a generic lesion)"
    )

    @model_validator(mode="after")
    def _one_label_budget(self) -> DataConfig:
        budgets = [k for k in ("labeled_ratio", "labeled_count", "labeled_file") if getattr(self, k) is not None]
        if len(budgets) > 1:
            raise ValueError(f"set one of data.labeled_ratio, data.labeled_count and data.labeled_file, not {budgets}")
        if self.segments is not None and len(self.segments) != self.num_classes - 1:
            raise ValueError(
                f"data.segments describes {len(self.segments)} class(es); data.num_classes = {self.num_classes} "
                f"needs {self.num_classes - 1} (one per foreground class)"
            )
        return self

    def segment_codes(self) -> list[SegmentCode]:
        """One code per foreground class: `segments`, or the generic lesion (numbered where there are several)."""
        if self.segments is not None:
            return list(self.segments)
        if self.num_classes == 2:
            return [SegmentCode()]
        return [SegmentCode(label=f"lesion {k}") for k in range(1, self.num_classes)]


class AugmentConfig(_Section):
    """Batched augmentation; geometry is shared by image and mask, intensity touches the image only."""

    enabled: bool = True
    flip: bool = True
    rot90: bool = True
    rotate_deg: float = Field(10.0, ge=0)
    scale: float = Field(0.1, ge=0, lt=1)
    translate: float = Field(0.05, ge=0, lt=1)
    intensity_scale: float = Field(0.1, ge=0)
    intensity_shift: float = Field(0.1, ge=0)
    gamma: float = Field(0.2, ge=0, lt=1)
    crop: int | None = Field(
        None,
        ge=16,
        le=MAX_SIDE,
        description="train on random square crops of this side (validation and inference see whole slices): "
        "(crop / size)² of the compute per image, at the same pixel scale",
    )
    patch: int | None = Field(
        None,
        ge=16,
        le=MAX_SIDE,
        description="data.resolution: native: train on patch × patch windows of the stored slices (padded where a "
        "slice is smaller); inference slides windows of this size",
    )
    foreground: float = Field(
        1 / 3,
        ge=0,
        le=1,
        description="with patch: the share of each batch's patches centred on a foreground pixel (nnU-Net's 1/3)",
    )


class TrainConfig(_Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0, le=1, description="AdamW's peak learning rate")
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    grad_clip: float | None = Field(5.0, gt=0, description="clip the gradient's norm to this (null: no clipping)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N")
    amp: bool = True
    channels_last: bool | None = Field(
        None,
        description="train and infer in the channels_last memory layout; null: the model's own choice (channels_last "
        "for every model but msga), recorded in the run's config",
    )
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="stop before an epoch that would end past this much training time; the cosine is re-planned "
        "each epoch so that the lr reaches 0 at the last epoch that fits (the lr then depends on measured time: "
        "such a run is not bit-for-bit repeatable)",
    )
    validate_from: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="validate only from this share of the planned epochs on (the last one always); until the "
        "first validation, best.pt is the latest epoch. Under train.max_minutes the time saved goes to training",
    )
    threads: int | None = Field(None, ge=1, le=1024, description="torch's CPU threads (default: torch's choice)")
    unlabeled_batch_size: int | None = Field(
        None, ge=1, description="semi-supervised: unlabelled images per step (default: batch_size)"
    )
    ema: float | None = Field(
        None, gt=0, lt=1, description="per-step decay of a weight average used for validation and inference"
    )
    sync_batchnorm: bool = Field(
        False, description="with several processes (torchrun), batch-norm statistics over the global batch"
    )
    steps_per_epoch: int | None = Field(
        None,
        ge=1,
        description="optimiser steps per epoch (default: one pass over the larger of the labelled and "
        "unlabelled streams); fixing it gives every method the same budget of steps",
    )


class EvalConfig(_Section):
    """How evaluation and prediction turn probabilities into masks (validation during training uses neither
    test-time augmentation nor post-processing)."""

    threshold: float = Field(0.5, gt=0, lt=1)
    overlays: int = Field(6, ge=0, description="best and worst cases drawn as overlays")
    tta: bool = Field(False, description="average the probabilities of the image and its two flips")
    largest_component: bool = Field(False, description="binary: keep only the largest connected component")
    overlap: float = Field(0.5, ge=0, lt=1, description="sliding windows (native resolution): their overlap")
    resolution: Literal["stored", "source"] = Field(
        "stored",
        description="the resolution metrics are computed at: the stored slices', or the source masks' as drawn "
        "(probabilities upsampled to each source mask's size; HD95 in mm where the source records spacing)",
    )
    checkpoint: Literal["best", "last", "auto"] = Field(
        "best",
        description="the weights a run folder stands for in evaluate, predict, export and explain: best.pt (best "
        "validation score), last.pt (the final epoch's, where a small validation set picks noisy peaks), or auto: "
        "last.pt unless validation fell by more than 0.02 over the last 30% of training, then best.pt",
    )


class WeakConfig(_Section):
    """The first stages of `supervision: image-labels`: a classifier on image labels, its maps, pseudo-masks.
    The config's `model`/`method`/`train` then describe the segmentation network trained on the pseudo-masks."""

    classifier: dict[str, Any] = Field(
        default_factory=lambda: {"name": "classifier", "pool": "attention"},
        description="the classifier's model spec",
    )
    label_from: Literal["mask", "case"] = Field("mask", description="lesion present = mask not empty, or reader labels")
    classes: list[int] | None = Field(None, description="with label_from: case, the label values in index order")
    epochs: int = Field(10, ge=1, description="classifier training epochs")
    lr: float | None = Field(None, gt=0, le=1, description="classifier learning rate (default: train.lr)")
    balanced: bool = Field(False, description="classifier: weigh each class's images equally in every batch's loss")
    level_balanced: bool = Field(
        False,
        description="classifier: weigh the images so that each class weighs the same and has the same distribution "
        "over slice levels (position in the patient's volume), so that the level cannot stand in for the lesion",
    )
    classifier_tries: int = Field(
        1,
        ge=1,
        le=5,
        description="train up to this many classifiers (seeds seed, seed+1, …; one split) until one's maps localise on "
        "the validation patients (pointing game ≥ 0.3); the one that localises best is kept",
    )
    choose_classifier: bool = Field(
        False,
        description="train every one of the classifier_tries and keep the one whose maps best match the validation "
        "patients' masks (the weak.choose_maps criterion, needs choose_thresholds), not the first that localises",
    )
    maps: str = Field("acam", description="an explanation method giving one map (medseg.explain.map_methods())")
    choose_maps: list[str] | None = Field(
        None,
        description="choose the maps among these on the validation patients (needs choose_thresholds): the kind whose "
        "maps, at their own θ_FG, best match the validation masks; weak.maps then only judges the classifier tries",
    )
    augment_maps: bool = Field(False, description="average the maps over flips and scales (0.75, 1, 1.25)")
    body_margin: float | None = Field(
        None,
        ge=0,
        lt=0.5,
        description="keep the maps inside the body (the image's non-background region, holes filled) shrunk by this "
        "share of the image side, so that they cannot point at the scalp or the air around it; None: off",
    )
    refine: Literal["none", "crf"] = Field(
        "none", description="crf: a dense CRF with the image as its pairwise term turns the maps into probabilities"
    )
    foreground: float = Field(0.1, gt=0, le=1, description="θ_FG on the max-normalised map: confident lesion")
    background: float = Field(0.01, ge=0, lt=1, description="θ_BG: confident background; between is ignored")
    choose_thresholds: bool = Field(
        False,
        description="choose θ_FG (and θ_BG = θ_FG / 4) on the validation patients' true masks (never on test) "
        "instead of taking foreground and background as given",
    )
    rounds: int = Field(
        1, ge=1, le=4, description="self-training: each round's network relabels the training images for the next"
    )
    confident: float = Field(
        0.8, gt=0.5, lt=1, description="self-training: lesion where p ≥ confident, background where p ≤ 1 - confident"
    )
    choose_confident: bool = Field(
        False,
        description="self-training: choose `confident` on the validation patients' true masks (never on test), the "
        "value whose relabelled lesion masks match them best",
    )
    choose_postprocessing: bool = Field(
        False,
        description="after the last round, choose flip test-time augmentation and keeping the largest component on "
        "the validation patients' true masks (never on test), written into the run's eval settings",
    )
    stage2: Literal["segmentation", "wsr"] = Field(
        "segmentation",
        description="segmentation: the config's model trained on the pseudo-masks; wsr: pixel embeddings "
        "grown from the classifier's seeds (the model is the embedding network)",
    )
    seeds: int = Field(5, ge=1, description="wsr: confident lesion pixels grown from per image")
    embedding_dim: int = Field(16, ge=2, description="wsr: embedding channels")
    pairs: int = Field(512, ge=2, description="wsr: pixel pairs per image and step")

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> WeakConfig:
        if not self.background < self.foreground:  # refused before the classifier trains, not after
            raise ValueError(f"weak.background ({self.background}) must be below weak.foreground ({self.foreground})")
        if self.choose_maps and not self.choose_thresholds:
            raise ValueError("weak.choose_maps compares the maps at their own thresholds: set weak.choose_thresholds")
        if self.choose_classifier and not self.choose_thresholds:
            raise ValueError(
                "weak.choose_classifier compares the classifiers' maps at their own thresholds: set "
                "weak.choose_thresholds"
            )
        return self


class Config(_Section):
    """A whole experiment. `model` and `method` are specs for the registries (`name` + options); once resolved
    (`medseg.resolve.resolve_config`) they hold every argument the model and method were built with."""

    name: str = Field("run", description="the run folder's name under output_dir (then -<time>): a plain name")
    seed: int = Field(0, ge=0, lt=2**32, description="the split's and the initialisation's seed")
    output_dir: str = "runs"
    data: DataConfig
    augment: AugmentConfig = AugmentConfig()
    model: dict[str, Any] = Field(default_factory=lambda: {"name": "unet"})
    method: dict[str, Any] = Field(default_factory=lambda: {"name": "supervised"})
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    supervision: Literal["masks", "image-labels"] = Field(
        "masks", description="image-labels: classifier → maps → pseudo-masks → this model (see `weak`)"
    )
    weak: WeakConfig = WeakConfig()

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name.startswith("."):
            raise ValueError(
                "must be a plain folder name (no '/', '\\', leading '.'): the run folder stays inside output_dir"
            )
        return name

    @model_validator(mode="after")
    def _windows_fit(self) -> Config:
        native, crop, patch = self.data.resolution == "native", self.augment.crop, self.augment.patch
        if crop is not None and (native or crop > self.data.size):
            raise ValueError(
                f"augment.crop ({crop}) crops square slices (data.size {self.data.size}); at native resolution "
                "set augment.patch"
            )
        if native != (patch is not None):
            raise ValueError("data.resolution: native trains on patches: set augment.patch (and only then)")
        return self

    @model_validator(mode="after")
    def _level_balance_on_whole_slices(self) -> Config:
        if self.weak.level_balanced and self.augment.patch is not None:
            raise ValueError(
                "weak.level_balanced weighs each slice by its image label, but with augment.patch the classifier "
                "trains on patches that may not hold the lesion: turn one of them off"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["train.epochs=3", "data.size=64"]` → nested dict; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form key=value (e.g. train.epochs=5)")
        key, raw = pair.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r}: an earlier override set {part!r} to a value, not a section")
        node[parts[-1]] = _yaml(raw, f"override {pair!r}")
    return nested


MAX_DEPTH = 64  # no medseg config nests deeper than a few levels; far deeper input is refused, not recursed into


def _yaml(text: str, where: str) -> Any:
    """YAML text → its value, refusing unparsable text and nesting beyond `MAX_DEPTH`.

    Raises:
        ConfigError: names `where` and the problem.
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # scanner and parser errors carry one, plain YAMLError not
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}{at})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise ConfigError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in `value` (iteratively: deep input must not recurse here either)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack += [(child, level + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Config:
    """Load and validate a config.

    Args:
        source: a YAML file or an already parsed dict.
        overrides: `key=value` strings applied on top.

    Raises:
        ConfigError: unreadable YAML, or a field that does not validate (named, with the expected value).
    """
    where = str(source) if not isinstance(source, dict) else "config"
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
        raw = _yaml(text, str(path)) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (data:, model:, train:, ...)")
    defaults = {"model": {"name": "unet"}, "method": {"name": "supervised"}}
    raw = _merge(_merge(defaults, raw), parse_overrides(overrides or []))
    try:
        return Config(**raw)
    except ValidationError as error:
        raise ConfigError(_explain(where, error)) from None
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _explain(where: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"])
        prefix = f"{where}: {loc}:" if loc else f"{where}:"
        if item["type"] == "extra_forbidden":
            valid = _valid_keys(item["loc"][:-1])
            hint = difflib.get_close_matches(str(item["loc"][-1]), valid, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else (f"; valid keys: {valid}" if valid else "")
            lines.append(f"{prefix} unknown key{suggestion}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            got = f" (got {item['input']!r})" if not isinstance(item.get("input"), dict) else ""
            lines.append(f"{prefix} {message}{got}")
    return "; ".join(lines)  # one line, however many fields are wrong


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []
