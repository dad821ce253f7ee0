"""The points of a sweep (method × labelled share × seed) and what each trains on: its split file (the config's split,
drawn once, and the seed's labelled draw at the share) and its config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.config import Config, load_config, parse_overrides
from medseg.data.readers import build_reader
from medseg.data.splits import draw_labeled, split_by_group, write_splits
from medseg.methods import METHODS
from medseg.resolve import resolve_config
from medseg.selection.loop import round_files
from medseg.specs import split_spec

__all__ = ["Point", "plan_points", "split_file", "point_split", "point_config"]


@dataclass(frozen=True)
class Point:
    """One run of the curve: `method` (a registered name, or `name:key=value...` with config overrides) at a
    labelled share `ratio` with `seed` (the labelled draw and the initialisation)."""

    method: str
    ratio: float
    seed: int
    overrides: tuple[str, ...] = field(default=())
    select: str | None = None  # the selection strategy of a simulated annotation loop; None = a random draw

    @property
    def method_name(self) -> str:
        return self.method.split(":")[0]

    @property
    def label(self) -> str:
        """The method spec as a file-name part."""
        return _slug(self.method)

    @property
    def select_label(self) -> str | None:
        """The selection strategy spec as a file-name part."""
        return _slug(self.select) if self.select else None

    @property
    def folder(self) -> str:
        picked = f"-{self.select_label}" if self.select else ""
        return f"{self.label}{picked}-r{self.ratio:g}-s{self.seed}"


def _slug(spec: str) -> str:
    """`name:key=value` → `name-keyvalue`, usable in a file name."""
    return spec.replace(":", "-").replace("=", "").replace("/", "_")


def plan_points(
    methods: Sequence[str], ratios: Sequence[float], seeds: Sequence[int], select: str | None = None
) -> list[Point]:
    """Every (method, ratio, seed), ratio by ratio; semi-supervised methods skip ratio 1, and so does every method
    of a selection loop (`select`: nothing is left to pick).

    Raises:
        ValueError: an unknown method or a ratio outside (0, 1].
    """
    for ratio in ratios:
        if not 0 < ratio <= 1:
            raise ValueError(f"--ratios take shares of the labelled training cases in (0, 1], got {ratio}")
    points = []
    for ratio in sorted(set(ratios)):
        for text in methods:
            name, options = split_spec(text)
            if (METHODS[name].uses_unlabeled or select) and ratio == 1:
                continue
            points += [Point(text, ratio, seed, tuple(options), select) for seed in seeds]
    if not points:
        raise ValueError(
            f"no point to train: {', '.join(methods)} at {', '.join(f'{r:g}' for r in ratios)}"
            + (" (a selection loop has nothing to pick at 1)" if select else "")
            + " (semi-supervised methods need a labelled share below 1)"
        )
    return points


def _split_path(cfg: Config, out: Path, ratio: float, seed: int) -> Path:
    return out / "splits" / f"r{ratio:g}-s{seed}{'-stratified' if cfg.data.stratify_by_label else ''}.csv"


def split_file(cfg: Config, out: Path, ratio: float, seed: int) -> Path:
    """The split for (ratio, seed), written once: the config's split, the labelled draw of `seed` at `ratio`."""
    stratified = cfg.data.stratify_by_label
    path = _split_path(cfg, out, ratio, seed)
    if not path.is_file():
        cases = build_reader(cfg.data.source).cases()
        assignment = split_by_group(cases, cfg.data.splits.model_dump(), cfg.seed, stratified)
        if ratio < 1:
            assignment = draw_labeled(cases, assignment, seed, ratio=ratio, stratify=stratified)
        write_splits(path, cases, assignment)
    return path


def point_config(cfg: Config, point: Point, split_path: Path) -> Config:
    """The config of one point: the budget's (as written, not resolved: each point's method completes the model
    its own way), with the point's method, seed and split file (and its overrides). A method that needs another
    family of network (cdma, mcnet and cct a multi-branch MTNet) gets that network with the config's features."""
    raw = cfg.model_dump(mode="json")
    raw["name"] = point.folder
    raw["seed"] = point.seed
    # the config's method section applies to its own method's points; another method starts from its defaults
    same = cfg.method.get("name") == point.method_name
    raw["method"] = dict(cfg.method) if same else {"name": point.method_name}
    family = METHODS[point.method_name].model_family
    if family not in (None, cfg.model["name"]):
        raw["model"] = {"name": family, **({"features": cfg.model["features"]} if "features" in cfg.model else {})}
    raw["data"] = {**raw["data"], "split_file": str(split_path.resolve()), "labeled_ratio": None}
    raw["data"]["labeled_count"] = raw["data"]["labeled_file"] = None
    merged = _merge(raw, parse_overrides(list(point.overrides)))
    return resolve_config(load_config(merged), f"{point.folder}")


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def point_split(cfg: Config, out: Path, point: Point) -> tuple[Path, Path | None]:
    """A point's split file (a random draw's written now; a selection round's when its turn comes) and picks file."""
    if point.select is None:
        return _split_path(cfg, out, point.ratio, point.seed), None
    return round_files(out, point.select_label, point.label, point.ratio, point.seed)
