"""Success criteria a finished run is judged by: train AUC range, validation floor, gap, collapse."""
from __future__ import annotations

from dataclasses import dataclass

from training.config import CriteriaConfig


@dataclass(frozen=True)
class CriterionResult:
    """One row of the criteria table."""

    name: str
    measured: str
    requirement: str
    passed: bool


def evaluate_criteria(criteria: CriteriaConfig, *, train_auc: float, val_auc: float, gap: float,
                      pred_std: float, test_auc: float) -> list[CriterionResult]:
    """Judge a run: AUCs and gap are the best epoch's, `pred_std` the std of the test predictions.

    A NaN measurement fails its criterion.
    """
    low, high = criteria.train_auc_range
    return [
        CriterionResult("train AUC in range", f"{train_auc:.4f}",
                        f"{low:g} <= train AUC <= {high:g}", low <= train_auc <= high),
        CriterionResult("validation AUC", f"{val_auc:.4f}",
                        f"best val AUC >= {criteria.min_val_auc:g}", val_auc >= criteria.min_val_auc),
        CriterionResult("train-val gap", f"{gap:+.4f}",
                        f"train AUC - val AUC <= {criteria.max_gap:g}", gap <= criteria.max_gap),
        CriterionResult("no collapse", f"std(p) {pred_std:.4g}, test AUC {test_auc:.4f}",
                        f"std(p) >= {criteria.min_pred_std:g} and test AUC > 0.5",
                        pred_std >= criteria.min_pred_std and test_auc > 0.5),
    ]
