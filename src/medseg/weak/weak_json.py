"""`<run>/weak.json`: every stage's figures, read and set key by key (a resumed run reuses what it holds)."""

from __future__ import annotations

import json

from medseg.atomic import write_text_atomic
from medseg.run_folder import RunFolder

__all__ = ["read_report", "record"]


def read_report(run: RunFolder) -> dict:
    """weak.json as recorded so far ({} before the first stage's figures)."""
    return json.loads(run.weak_path.read_text()) if run.weak_path.is_file() else {}


def record(run: RunFolder, key: str, value) -> None:
    """Set `key` of weak.json (kept as it is otherwise)."""
    report = read_report(run)
    report[key] = value
    write_text_atomic(run.weak_path, json.dumps(report, indent=2))
