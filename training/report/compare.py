"""This run beside every other finished run under a results folder, ranked by test AUC."""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import MDAFError
from training.report.run_files import Run, as_float, read_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRow:
    run: str  # the run directory relative to the results folder
    label: str
    model: str
    data: str
    test_auc: float
    test_logloss: float
    best_epoch: int | None
    params: int | None
    this: bool


def comparison(run: Run, results_root: Path) -> list[RunRow]:
    """`run` and the finished runs under `results_root`, best test AUC first (NaN last)."""
    here = run.dir.resolve()
    rows = [_row(run.summary, _name(run.dir, results_root), run.label, this=True)]
    for run_dir in run_dirs(results_root):
        if run_dir.resolve() == here:
            continue
        try:
            summary = read_summary(run_dir / "summary.json")
        except MDAFError as exc:
            log.info("not compared: %s", exc)
            continue
        label = summary.get("label") or _get(summary, "model", "name") or "-"
        rows.append(_row(summary, _name(run_dir, results_root), str(label), this=False))
    return sorted(rows, key=lambda r: (math.isnan(r.test_auc), -r.test_auc, r.run))


def run_dirs(root: Path) -> list[Path]:
    """Directories under `root` holding a summary.json, sorted; hidden folders and a run's own
    sub-folders (checkpoints, tensorboard) are not searched."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if "summary.json" in files:
            found.append(Path(folder))
            subfolders.clear()
        else:
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    return sorted(found)


def _row(summary: dict[str, Any], name: str, label: str, this: bool) -> RunRow:
    data = _get(summary, "data", "source") or "-"
    if _get(summary, "data", "synthetic"):
        data += " (synthetic)"
    return RunRow(run=name, label=label, model=str(_get(summary, "model", "name") or "-"), data=data,
                  test_auc=as_float(_get(summary, "test", "auc")),
                  test_logloss=as_float(_get(summary, "test", "logloss")),
                  best_epoch=_int(_get(summary, "train", "best_epoch")),
                  params=_int(_get(summary, "model", "params")), this=this)


def _name(run_dir: Path, root: Path) -> str:
    try:
        return run_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return run_dir.name


def _get(summary: dict[str, Any], *keys: str) -> Any:
    """A nested value of another run's summary, None where missing: one odd run must not stop
    the report."""
    value: Any = summary
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
