"""Click metrics over a split's predictions.

- AUC: sklearn's roc_auc_score on the logits (a monotone map of p, so the same AUC).
- logloss: sklearn's log_loss on p.
- group AUC (Zhou et al. 2018, DIN): sum_u n_u AUC_u / sum_u n_u over users u whose samples hold
  both a click and a non-click, n_u = that user's sample count; AUC_u by the rank-sum formula
  (R_pos - P (P + 1) / 2) / (P N), ties at their average rank.
- calibration: mean p against the click rate.

p is the click probability with label smoothing undone: a model trained on targets
y (1 - s) + s / 2 estimates sigma(z) = s / 2 + (1 - s) P(click), so
    p = clip((sigma(z) - s / 2) / (1 - s), 1e-7, 1 - 1e-7).
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from sklearn.metrics import log_loss, roc_auc_score

EPS = 1e-7


def click_probability(logit: np.ndarray, smoothing: float) -> np.ndarray:
    """p of the module docstring, float64."""
    sigma = 1.0 / (1.0 + np.exp(-np.asarray(logit, dtype=np.float64)))
    return np.clip((sigma - smoothing / 2.0) / (1.0 - smoothing), EPS, 1.0 - EPS)


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


def logloss(label: np.ndarray, logit: np.ndarray, smoothing: float) -> float:
    """sklearn's log_loss of the click probabilities p (smoothing undone)."""
    return float(log_loss(label, click_probability(logit, smoothing), labels=[0, 1]))


def split_metrics(label: np.ndarray, logit: np.ndarray, user: np.ndarray, smoothing: float) -> dict[str, float]:
    """auc, logloss, gauc, mean_pred, ctr and n of one split's predictions (NaN for an empty split)."""
    if len(label) == 0:
        return {"auc": math.nan, "logloss": math.nan, "gauc": math.nan, "mean_pred": math.nan, "ctr": math.nan, "n": 0}
    p = click_probability(logit, smoothing)
    return {
        "auc": auc(label, logit),
        "logloss": logloss(label, logit, smoothing),
        "gauc": group_auc(user, label, logit),
        "mean_pred": float(p.mean()),
        "ctr": float(np.mean(label)),
        "n": int(len(label)),
    }


def oracle_metrics(label: np.ndarray, oracle_p: np.ndarray) -> dict[str, float]:
    """AUC and logloss of the true click probabilities (synthetic data): the best any model can do."""
    p = np.clip(oracle_p.astype(np.float64), EPS, 1 - EPS)
    return {"auc": auc(label, p), "logloss": float(log_loss(label, p, labels=[0, 1]))}
