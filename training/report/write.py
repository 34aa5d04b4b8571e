"""Putting a run's report together: load, compute, plot, render, write atomically."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes
from common.errors import MDAFError
from training.records import read_record, read_summary
from training.report import plots
from training.report.compare import comparison
from training.report.criteria import evaluate_criteria
from training.report.document import to_markdown, to_text
from training.report.gate import GATE_COLUMNS, GateSummary, gate_stats
from training.report.run_files import load_run
from training.report.sections import GATE_DISTRIBUTION, LEARNING_CURVES, RELIABILITY, build_document

log = logging.getLogger(__name__)


def write(run_dir: Path, results_root: Path | None) -> None:
    """See training.report.write_report."""
    if not run_dir.is_dir():
        raise MDAFError(f"{run_dir}: run directory not found")
    summary = read_summary(run_dir / "summary.json")
    gate = read_record(GateSummary, summary.diagnostics["gate"], f"{run_dir / 'summary.json'}: diagnostics.gate") \
        if "gate" in summary.diagnostics else None
    run = load_run(run_dir, summary, GATE_COLUMNS if gate is not None else ())
    root = results_root if results_root is not None else run_dir.parent
    best, monitor = run.best, summary.train.monitor
    ctr = summary.task == "ctr"
    results = None
    if ctr:
        p = run.predictions["p"].to_numpy().astype(np.float64)
        results = evaluate_criteria(run.criteria, train_auc=best.train.get("auc", math.nan),
                                    val_auc=best.val["auc"], gap=best.gap,
                                    pred_std=float(p.std()) if len(p) else math.nan, test_auc=summary.test.auc)
        _write(run_dir / RELIABILITY, plots.reliability_diagram(
            run.predictions["label"].to_numpy(), run.predictions["p_raw"].to_numpy(), p))
    stats = gate_stats(gate, run.predictions) if gate is not None else None

    oracle_val = (run.oracle or {}).get("val") or {}
    _write(run_dir / LEARNING_CURVES, plots.learning_curves(run.epochs, run.steps, best, monitor,
                                                            oracle_val.get(monitor)))
    if stats is not None:
        _write(run_dir / GATE_DISTRIBUTION, plots.gate_distribution(gate, run.predictions, stats.by_history))
    document = build_document(run, results, comparison(run, root), root, stats)
    _write(run_dir / "report.md", to_markdown(document).encode())
    _write(run_dir / "report.txt", to_text(document).encode())


def _write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)
    log.info("wrote %s", path)
