"""The run folder: one place that knows its files, creates it exclusively, locks it while a process trains in it,
and cleans the temporary files a killed process left behind.

    config.yaml      the resolved config (every model and method argument as built)
    splits.csv       id,group,split
    metrics.csv      one row per epoch
    best.pt, last.pt checkpoints
    skipped.csv      cases left out with data.skip_bad
    eval/<split>/    cases.csv, summary.json, overlays/, explain/
    report.html      the run's page
    weak.yaml, weak.json, pseudo_masks.npz, classifier/, classifier-try<k>/   the weakly supervised path's
                     config and stages
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from medseg.atomic import write_text_atomic
from medseg.config import Config, load_config
from medseg.convergence import checkpoint_by_drift
from medseg.csv_cells import write_csv
from medseg.data.case import Case
from medseg.data.splits import read_splits, write_splits
from medseg.errors import RunFolderError
from medseg.folders import make_folder
from medseg.locking import LOCK_NAME, locked, remove_temporary_files

__all__ = ["RunFolder", "new_run_path", "locked", "remove_temporary_files"]

CHECKPOINTS = ("best", "last")
_RUN_FILES = (
    "config.yaml",
    "splits.csv",
    "metrics.csv",
    "best.pt",
    "last.pt",
    "skipped.csv",
    "report.html",
    "weak.yaml",
    "weak.json",
    "pseudo_masks.npz",
)
_RUN_FOLDERS = ("eval", "classifier", "weak_panels", "round1", "round2", "round3")


def new_run_path(output_dir: str | Path, name: str) -> Path:
    """A new, empty folder `<output_dir>/<name>-<time>` (with `-2`, `-3`, ... if that exists), created here, so
    two runs started in the same second never share one."""
    output_dir = make_folder(output_dir, "output_dir")
    stem = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    for attempt in range(1, 1000):
        path = output_dir / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunFolderError(f"{output_dir}: no free run folder name for {stem}")


class RunFolder:
    """A run folder's files (see the module docstring).

    Args:
        path: the folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- paths --------------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def splits_path(self) -> Path:
        return self.path / "splits.csv"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def skipped_path(self) -> Path:
        return self.path / "skipped.csv"

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    @property
    def weak_config_path(self) -> Path:
        """The weakly supervised pipeline's config (its stage 2's is config.yaml)."""
        return self.path / "weak.yaml"

    @property
    def weak_path(self) -> Path:
        return self.path / "weak.json"

    @property
    def pseudo_masks_path(self) -> Path:
        return self.path / "pseudo_masks.npz"

    @property
    def weak_panels_path(self) -> Path:
        """The weakly supervised run's pictures of test slices, image | map | pseudo-mask | prediction | truth."""
        return self.path / "weak_panels"

    def round_pseudo_masks_path(self, k: int) -> Path:
        """The pseudo-masks self-training round `k` trains on: stage 1's for round 1, then each earlier round's
        relabelling."""
        return self.pseudo_masks_path if k == 1 else self.path / f"pseudo_masks_round{k}.npz"

    def round_folder(self, k: int) -> RunFolder:
        """The segmentation run of self-training round `k`; the last round is this folder's own run."""
        return RunFolder(self.path / f"round{k}")

    def classifier_try(self, k: int) -> RunFolder:
        """The weakly supervised path's stage-1 classifier number `k` (`weak.classifier_tries`): classifier/ for the
        first, classifier-try<k>/ for the later ones."""
        return RunFolder(self.path / ("classifier" if k == 1 else f"classifier-try{k}"))

    @property
    def classifier(self) -> RunFolder:
        """The stage-1 classification run the later stages use: the try weak.json names as chosen, else the first."""
        chosen = json.loads(self.weak_path.read_text()).get("classifier") if self.weak_path.is_file() else None
        return RunFolder(self.path / chosen) if chosen else self.classifier_try(1)

    def checkpoint(self, which: str) -> Path:
        """`best.pt` or `last.pt`."""
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint must be one of {list(CHECKPOINTS)}, got {which!r}")
        return self.path / f"{which}.pt"

    def eval_dir(self, split: str) -> Path:
        return self.path / "eval" / split

    def cases_path(self, split: str) -> Path:
        """`eval/<split>/cases.csv`: one row per evaluated case."""
        return self.eval_dir(split) / "cases.csv"

    def evaluated_splits(self) -> list[str]:
        """The splits with an `eval/<split>/summary.json`, sorted."""
        return sorted(p.parent.name for p in (self.path / "eval").glob("*/summary.json"))

    # -- reading ------------------------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """Whether the folder holds (part of) a run: a config, a checkpoint, metrics, or a weak pipeline's stage."""
        markers = ("config.yaml", "best.pt", "last.pt", "metrics.csv", "weak.yaml", "classifier")
        return any((self.path / name).exists() for name in markers)

    @cached_property
    def config(self) -> Config:
        """The run's config as recorded (read once)."""
        if not self.config_path.is_file():
            raise RunFolderError(f"{self.path}: not a run folder (no config.yaml)")
        return load_config(self.config_path)

    def splits(self) -> dict[str, str]:
        return read_splits(self.splits_path)

    def metrics(self, up_to_epoch: int | None = None) -> list[dict[str, str]]:
        """metrics.csv's rows (those up to `up_to_epoch`), [] when there is none yet."""
        if not self.metrics_path.is_file():
            return []
        try:
            with self.metrics_path.open(newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            epochs = [int(r["epoch"]) for r in rows]
        except (KeyError, TypeError, ValueError, csv.Error) as error:  # UnicodeDecodeError is a ValueError
            raise RunFolderError(
                f"{self.metrics_path}: not a medseg metrics file (each row needs a whole-number 'epoch'; {error!r})"
            ) from None
        return [r for r, epoch in zip(rows, epochs, strict=True) if up_to_epoch is None or epoch <= up_to_epoch]

    def summary(self, split: str) -> dict[str, Any] | None:
        """`eval/<split>/summary.json`, or None if that split was not evaluated.

        Raises:
            RunFolderError: the file is not an evaluation summary medseg wrote (unreadable, or a field missing).
        """
        path = self.eval_dir(split) / "summary.json"
        if not path.is_file():
            return None
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as error:
            raise RunFolderError(f"{path}: not a readable evaluation summary ({type(error).__name__})") from None
        if not isinstance(summary, dict):
            raise RunFolderError(f"{path}: not a medseg evaluation summary (not a JSON object)")
        needed = ("checkpoint", "cases", "metrics", "epoch") + (() if "data" in summary else ("split",))
        missing = [key for key in needed if key not in summary]
        if missing:
            raise RunFolderError(f"{path}: not a medseg evaluation summary (no {', '.join(missing)})")
        return summary

    def write_evaluation(self, split: str, header: list[str], rows: Sequence[Sequence[Any]], summary: dict) -> None:
        """`eval/<split>/cases.csv` (`header`, then one row per case) and `summary.json` (strict JSON: NaN → null)."""
        _write_csv(self.cases_path(split), header, rows)
        write_text_atomic(self.eval_dir(split) / "summary.json", json.dumps(_without_nan(summary), indent=2))

    def chosen_checkpoint(self, which: str | None = None) -> Path:
        """The checkpoint the run stands for: `which`, else the config's `eval.checkpoint` ("best" if the folder
        has no config); "auto" is "last" unless validation drifted down at the end (`checkpoint_by_drift`).

        Raises:
            FileNotFoundError: that checkpoint is not there.
        """
        which = which or (self.config.eval.checkpoint if self.config_path.is_file() else "best")
        if which == "auto":
            which = checkpoint_by_drift(self.metrics())
        path = self.checkpoint(which)
        if not path.is_file():
            raise FileNotFoundError(f"{self.path}: no {which}.pt in this run folder (has training finished an epoch?)")
        return path

    # -- writing ------------------------------------------------------------------------------------------------
    def write_config(self, cfg: Config) -> None:
        write_text_atomic(self.config_path, cfg.to_yaml())
        self.__dict__.pop("config", None)

    def write_splits(self, cases: Sequence[Case], assignment: dict[str, str]) -> None:
        write_splits(self.splits_path, cases, assignment)

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """metrics.csv: one row per epoch; a column some epochs lack (a term a method logs from some step on) is
        left empty there."""
        header = list(dict.fromkeys(key for row in rows for key in row))
        _write_csv(self.metrics_path, header, [[row.get(key, "") for key in header] for row in rows])

    def write_skipped(self, skipped: list[tuple[str, str]]) -> None:
        _write_csv(self.skipped_path, ["id", "reason"], skipped)

    # -- life cycle ---------------------------------------------------------------------------------------------
    def prepare_new(self, overwrite: bool = False) -> None:
        """Make the folder ready for a new run: refuse one that holds a run unless `overwrite`, which removes the
        old run's files (splits included; files medseg did not write are left alone).

        Raises:
            RunFolderError: the folder holds a run and `overwrite` is False, or it is a file.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"{self.path}: exists and is not a folder")
        if self.is_run():
            if not overwrite:
                raise RunFolderError(
                    f"{self.path}: already holds a run; continue it with --resume, or replace it with --overwrite"
                )
            for name in _RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for later_round in self.path.glob("pseudo_masks_round*.npz"):
                later_round.unlink()
            for later_try in self.path.glob("classifier-try*"):
                shutil.rmtree(later_try, ignore_errors=True)
            for name in _RUN_FOLDERS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self.__dict__.pop("config", None)

    def remove_if_unfinished(self, created: bool) -> None:
        """After a failure before the first checkpoint: remove what the run wrote (the folder too, if `created` by
        this run and nothing else is in it), so a refused config leaves nothing behind."""
        if self.checkpoint("last").exists() or self.classifier.checkpoint("last").exists():
            return
        for name in _RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        (self.path / LOCK_NAME).unlink(missing_ok=True)
        if created and self.path.is_dir() and not any(self.path.iterdir()):
            os.rmdir(self.path)


def _without_nan(value: Any) -> Any:
    """NaN (e.g. an HD95 mean with no defined case) → None, so summary.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_csv(path: Path, header: list[str], rows: Sequence[Sequence[Any]]) -> None:
    write_csv(path, header, rows)
