"""This run beside every other finished run of the same task under a results folder, ranked by its
test figure (AUC for CTR, NDCG@10 for next-item). Only runs on the same data (DataSummary.same_data)
are comparable; the others are listed apart."""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import MDAFError
from training.records import RunSummary, read_summary
from training.report.run_files import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRow:
    run: str  # the run directory relative to the results folder
    label: str
    model: str
    data: str  # DataSummary.identity
    figures: list[tuple[str, float]]  # RunSummary.figures: the ranking one first
    best_epoch: int
    params: int
    this: bool
    same_data: bool  # trained on this run's data


def comparison(run: Run, results_root: Path) -> list[RunRow]:
    """`run` and the finished runs of its task under `results_root`, best first (NaN last)."""
    here = run.dir.resolve()
    rows = [_row(run.summary, _name(run.dir, results_root), run.label, this=True, same_data=True)]
    names = [name for name, _ in rows[0].figures]
    for run_dir in run_dirs(results_root):
        if run_dir.resolve() == here:
            continue
        try:
            summary = read_summary(run_dir / "summary.json")
        except MDAFError as exc:  # one odd run (unfinished, older format) must not stop the report
            log.info("not compared: %s", exc)
            continue
        if [name for name, _ in summary.figures] == names:
            rows.append(_row(summary, _name(run_dir, results_root), summary.label, this=False,
                             same_data=summary.data.same_data(run.summary.data)))
    return sorted(rows, key=lambda r: (math.isnan(r.figures[0][1]), -r.figures[0][1], r.run))


def run_dirs(root: Path) -> list[Path]:
    """Directories under `root` holding a run's summary.json and config.yaml, sorted; hidden
    folders and a run's own sub-folders (checkpoints, tensorboard) are not searched, a grid's
    folder (its summary.json, no config.yaml) is."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if "summary.json" in files and "config.yaml" in files:
            found.append(Path(folder))
            subfolders.clear()
        else:
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    return sorted(found)


def _row(summary: RunSummary, name: str, label: str, this: bool, same_data: bool) -> RunRow:
    return RunRow(run=name, label=label, model=summary.model.name, data=summary.data.identity,
                  figures=summary.figures, best_epoch=summary.train.best_epoch, params=summary.model.params,
                  this=this, same_data=same_data)


def _name(run_dir: Path, root: Path) -> str:
    try:
        return run_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return run_dir.name
