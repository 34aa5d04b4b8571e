"""The preparation summary: what was made, from what, and what was dropped and why.

Every figure is read back from the written dataset, so the summary describes the files as they
are, not as the pipeline meant them to be.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import log_loss, roc_auc_score

from data_prep.calendar import to_day, utc_zone
from data_prep.samples import SPLITS

HISTORY_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def summarize(root: Path, meta: dict) -> dict:
    """Figures per split (rows, label rate, users, items, history lengths, oracle metrics)."""
    summary: dict = {"source": meta["source"], "synthetic": meta["synthetic"], "splits": {}}
    for split in SPLITS:
        path = root / "samples" / f"{split}.parquet"
        lf = pl.scan_parquet(path)
        start, end = meta["splits"][split]
        fields = meta["static_fields"]  # a generic dataset may have no user or item column
        none = pl.lit(None, dtype=pl.Int64)
        base = lf.select(rows=pl.len(), label_rate=pl.col("label").cast(pl.Float64).mean(),
                         users=pl.col("user_id").n_unique() if "user" in fields else none,
                         items=pl.col("item").n_unique() if "item" in fields else none,
                         oov_items=(pl.col("item") == 1).mean() if "item" in fields else none
                         ).collect().row(0, named=True)
        figures = {"days": _span(start, end, meta), **base, "history_length": {}}
        for name in meta["timelines"]:
            length = pl.col(f"{name}_end") - pl.col(f"{name}_start")
            q = lf.select([length.quantile(x, "nearest").alias(f"p{round(x * 100)}") for x in HISTORY_QUANTILES]
                          + [length.mean().alias("mean"), (length == 0).mean().alias("empty_share")]
                          ).collect().row(0, named=True)
            figures["history_length"][name] = q
        if meta["synthetic"] and base["rows"]:
            figures["oracle"] = oracle_metrics(lf)
        summary["splits"][split] = figures
    summary["vocab_sizes"] = meta["vocab_sizes"]
    summary["timeline_rows"] = {name: tl["rows"] for name, tl in meta["timelines"].items()}
    summary["drops"] = meta["drops"]
    return summary


def _span(start: int, end: int, meta: dict) -> str:
    """A split's calendar days, or its rows when the row order stands for time (generic source)."""
    if meta.get("split_by") == "position":
        return f"rows {start:,}..{end - 1:,}"
    zone = utc_zone(meta.get("utc_offset_hours", 8))
    return f"{to_day(start, zone)}..{to_day(end - 1, zone)}"


def oracle_metrics(lf: pl.LazyFrame) -> dict[str, float]:
    """AUC and logloss of the true click probabilities: the best any model could reach."""
    table = lf.select("label", "oracle_p").collect()
    y, p = table["label"].to_numpy(), table["oracle_p"].to_numpy().astype(np.float64)
    auc = roc_auc_score(y, p) if 0 < y.sum() < len(y) else math.nan
    return {"auc": float(auc), "logloss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))}


def render(summary: dict) -> str:
    """The summary as aligned plain text, for the console and summary.txt."""
    lines = [f"source: {summary['source']}{' (synthetic)' if summary['synthetic'] else ''}", ""]
    header = f"{'split':<6} {'days':<22} {'rows':>11} {'label rate':>10} {'users':>9} {'items':>9} {'OOV items':>9}"
    lines.append(header)
    for split, f in summary["splits"].items():
        rate = "-" if f["label_rate"] is None else f"{f['label_rate']:.4f}"
        users, items = ("-" if f[k] is None else f"{f[k]:,}" for k in ("users", "items"))
        oov = "-" if f["items"] is None else f"{f['oov_items'] or 0:.2%}"
        lines.append(f"{split:<6} {f['days']:<22} {f['rows']:>11,} {rate:>10} {users:>9} {items:>9} {oov:>9}")
    for split, f in summary["splits"].items():
        for name, h in f["history_length"].items():
            if not f["rows"]:
                continue
            qs = " ".join(f"p{k[1:]}={h[k]:.0f}" for k in h if k.startswith("p"))
            lines.append(f"history {name:<9} {split:<6} mean={h['mean']:.1f} empty={h['empty_share']:.1%} {qs}")
    oracle = {s: f["oracle"] for s, f in summary["splits"].items() if "oracle" in f}
    if oracle:
        lines.append("oracle (true click probability): " + ", ".join(
            f"{s} AUC {m['auc']:.4f} logloss {m['logloss']:.4f}" for s, m in oracle.items()))
    lines.append("vocabulary sizes: " + ", ".join(f"{k}={v:,}" for k, v in summary["vocab_sizes"].items()))
    lines.append("timeline rows: " + (", ".join(f"{k}={v:,}" for k, v in summary["timeline_rows"].items()) or "none"))
    lines.append("dropped or flagged rows (kept ones say so):")
    lines += [f"  {n:>12,}  {why}" for why, n in summary["drops"].items()] or ["  none"]
    return "\n".join(lines)


def write_summary(root: Path, summary: dict) -> str:
    text = render(summary)
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    (root / "summary.txt").write_text(text + "\n")
    return text
