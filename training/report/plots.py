"""The report's figures, drawn on matplotlib's Agg canvas (no pyplot, no global state) as PNG bytes."""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from training.calibration import expected_calibration_error, reliability
from training.records import EvalRecord, StepRecord
from training.report.gate import GateSummary, GroupMean

SIZE = (16, 4.6)
DPI = 100


def learning_curves(epochs: list[EvalRecord], steps: list[StepRecord], best: EvalRecord, monitor: str,
                    oracle_val: float | None) -> bytes:
    """The metric early stopping watches (`monitor`: auc, or ndcg@10) and the loss at each
    evaluation against epochs of training (fractional when the run evaluated inside epochs), and
    the learning rate per optimizer step, side by side."""
    fig, (metric_ax, loss_ax, lr_ax) = _figure(3)
    name = monitor.upper()
    x = [e.progress for e in epochs]
    metric_ax.plot(x, [e.train.get(monitor, np.nan) for e in epochs], "o-",
                   label=f"train {name} (since the last evaluation)")
    metric_ax.plot(x, [e.val[monitor] for e in epochs], "s-", label=f"val {name}")
    if oracle_val is not None:
        metric_ax.axhline(oracle_val, color="gray", ls="--", label=f"oracle val {name} {oracle_val:.3f}")
    metric_ax.plot([best.progress], [best.val[monitor]], "*", color="C3", ms=18, zorder=3,
                   label=f"best: epoch {best.epoch}, step {best.step} (val {best.val[monitor]:.3f})")
    _labels(metric_ax, f"{name} at each evaluation", "epochs of training", name)
    if "logloss" in epochs[0].val:  # CTR: the same loss on both splits
        loss_ax.plot(x, [e.train.get("logloss", np.nan) for e in epochs], "o-", label="train logloss")
        loss_ax.plot(x, [e.val["logloss"] for e in epochs], "s-", label="val logloss")
    else:
        loss_ax.plot(x, [e.train_loss for e in epochs], "o-", label="train loss (since the last evaluation)")
    _labels(loss_ax, "Loss at each evaluation", "epochs of training", "loss")
    for ax in (metric_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for i, e in enumerate(epochs):
        lr_ax.axvline(e.step, color="0.8", lw=0.8, label="an evaluation" if i == 0 else None)
    lr_ax.plot([s.step for s in steps], [s.lr for s in steps], "-", color="C2",
               label="learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    _labels(lr_ax, "Learning rate per step", "optimizer step", "learning rate")
    return _png(fig)


def gate_distribution(gate: GateSummary, predictions: pl.DataFrame,
                      by_history: list[GroupMean]) -> bytes:
    """The gate's histogram (summary.json), the per-sample gate mean by label, and by history length."""
    fig, (hist_ax, label_ax, history_ax) = _figure(3)
    edges = np.asarray(gate.hist_edges, dtype=np.float64)
    counts = np.asarray(gate.hist_counts, dtype=np.float64)
    shares = 100 * counts / counts.sum() if counts.sum() else counts
    hist_ax.bar(edges[:-1], shares, width=np.diff(edges), align="edge", edgecolor="white", lw=0.5)
    hist_ax.axvline(gate.mean, color="C3", ls="--", label=f"mean {gate.mean:.3f}")
    hist_ax.set_xlim(edges[0], edges[-1])
    _labels(hist_ax, "Gate values g (all samples and dimensions)",
            "g   (0 = static branch, 1 = sequential branch)", "% of values")

    values = predictions["gate_mean"].to_numpy().astype(np.float64)
    finite = np.isfinite(values)
    values, labels = values[finite], predictions["label"].to_numpy()[finite]
    bins = np.histogram_bin_edges(values, bins=40) if len(values) else 40
    for value, name in ((0, "not clicked"), (1, "clicked")):
        group = values[labels == value]
        if len(group):
            label_ax.hist(group, bins=bins, density=True, alpha=0.55,
                          label=f"{name}: mean {group.mean():.3f} (n={len(group):,})")
    _labels(label_ax, "Per-sample mean gate by label (test)", "per-sample mean of g", "density")

    x = np.arange(len(by_history))
    history_ax.plot(x, [g.gate for g in by_history], "o-", color="C4", label="mean gate")
    for i, g in enumerate(by_history):
        history_ax.annotate(f"n={g.n:,}", (i, g.gate), textcoords="offset points", xytext=(0, 8),
                            ha="center", fontsize=9)
    history_ax.set_xticks(x, [g.name for g in by_history])
    history_ax.margins(x=0.1, y=0.25)
    _labels(history_ax, "Per-sample mean gate by history length (test)",
            "real positions in the sequence window", "mean of g")
    return _png(fig)


def reliability_diagram(label: np.ndarray, p_raw: np.ndarray, p: np.ndarray) -> bytes:
    """Click rate against mean prediction in equal-mass bins, before and after calibration, and
    the distribution of the predictions."""
    fig, (curve_ax, hist_ax) = _figure(2)
    top = 0.0
    for values, name, style in ((p_raw, "before calibration: sigma(z)", "o--"), (p, "after calibration", "s-")):
        bins = reliability(values, label)
        x, y = [b[1] for b in bins], [b[2] for b in bins]
        top = max(top, *x, *y)
        curve_ax.plot(x, y, style, label=f"{name} (ECE {expected_calibration_error(values, label):.4f})")
        hist_ax.hist(np.log10(np.clip(values, 1e-7, 1)), bins=60, alpha=0.55, label=name)
    curve_ax.plot([0, top], [0, top], color="gray", lw=1, label="perfect calibration")
    _labels(curve_ax, "Reliability (test, equal-mass bins)", "mean prediction in the bin", "click rate in the bin")
    _labels(hist_ax, "Predictions (test)", "log10 p", "samples")
    return _png(fig)


def _figure(panels: int) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, panels))


def _labels(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
