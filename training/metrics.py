"""Click metrics over a split's predictions.

- AUC: sklearn's roc_auc_score on the logits (a monotone map of p, so the same AUC).
- logloss: sklearn's log_loss on p.
- group AUC (Zhou et al. 2018, DIN): sum_u n_u AUC_u / sum_u n_u over users u whose samples hold
  both a click and a non-click, n_u = that user's sample count; AUC_u by the rank-sum formula
  (R_pos - P (P + 1) / 2) / (P N), ties at their average rank.
- calibration: mean p against the click rate, and the expected calibration error
  (training/calibration.py).

p is sigma(z), or sigma(a z + b) with the run's fitted calibration (training/calibration.py); no
label-smoothing inverse, which would clip every sigma(z) below s/2 to zero.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from sklearn.metrics import log_loss, roc_auc_score

from training.calibration import Calibration, expected_calibration_error

EPS = 1e-7
IDENTITY = Calibration()


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC; NaN when `label` holds a single class."""
    if len(np.unique(label)) < 2:
        return float("nan")
    return float(roc_auc_score(label, score))


def group_auc(user: np.ndarray, label: np.ndarray, score: np.ndarray) -> float:
    """Impression-weighted mean per-user AUC (module docstring); NaN when no user has both classes."""
    frame = pl.DataFrame({"user": user, "label": np.asarray(label, dtype=np.int8), "score": score})
    per_user = (frame.with_columns(rank=pl.col("score").rank("average").over("user"))
                .group_by("user")
                .agg(n=pl.len(), pos=pl.col("label").sum().cast(pl.Float64),
                     rank_pos=(pl.col("rank") * pl.col("label")).sum())
                .with_columns(neg=pl.col("n") - pl.col("pos"))
                .filter((pl.col("pos") > 0) & (pl.col("neg") > 0))
                .sort("user")  # group_by's order varies from call to call; the float sum must not
                .with_columns(auc=(pl.col("rank_pos") - pl.col("pos") * (pl.col("pos") + 1) / 2)
                              / (pl.col("pos") * pl.col("neg"))))
    if per_user.height == 0:
        return float("nan")
    return float((per_user["auc"] * per_user["n"]).sum() / per_user["n"].sum())


def logloss(label: np.ndarray, p: np.ndarray) -> float:
    """sklearn's log_loss of click probabilities `p` (kept inside [EPS, 1 - EPS])."""
    return float(log_loss(label, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def split_metrics(label: np.ndarray, logit: np.ndarray, user: np.ndarray,
                  calibration: Calibration = IDENTITY) -> dict[str, float]:
    """auc, logloss, gauc, mean_pred, ece, ctr and n of one split's predictions, with p from
    `calibration` (NaN for an empty split)."""
    if len(label) == 0:
        return {"auc": math.nan, "logloss": math.nan, "gauc": math.nan, "mean_pred": math.nan, "ece": math.nan,
                "ctr": math.nan, "n": 0}
    p = calibration(logit)
    return {
        "auc": auc(label, logit),
        "logloss": logloss(label, p),
        "gauc": group_auc(user, label, logit),
        "mean_pred": float(p.mean()),
        "ece": expected_calibration_error(p, label),
        "ctr": float(np.mean(label)),
        "n": int(len(label)),
    }


def oracle_metrics(label: np.ndarray, oracle_p: np.ndarray) -> dict[str, float]:
    """AUC and logloss of the true click probabilities (synthetic data): the best any model can do."""
    p = oracle_p.astype(np.float64)
    return {"auc": auc(label, p), "logloss": logloss(label, p)}
