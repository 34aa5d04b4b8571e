"""Calibration of click probabilities: Platt scaling fitted on the validation split after training.

    p = sigma(a z + b),    (a, b) = argmin over the validation split of its logloss

(Platt 1999, "Probabilistic Outputs for Support Vector Machines"), fitted by Newton's method with
step halving on the two parameters (a convex problem). It corrects what the training objective leaves behind:
label smoothing (targets s/2 and 1 - s/2) pulls sigma(z) toward 1/2, and a linear inverse
(sigma - s/2) / (1 - s) would send every prediction below s/2 to 0, a mass of them on rare-click
data; the fitted map learns from the labels what each logit means instead, and never clips.
With a = 1 and b = 0 it is the model's own sigma(z).

Expected calibration error over B equal-mass bins of the predictions (Naeini et al. 2015):
    ECE = sum_k (n_k / n) |mean p in bin k - click rate in bin k|
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.errors import MDAFError

ECE_BINS = 15
PRIOR = 1e-4  # weight of (a - 1)^2 in fit_platt's objective
CALIBRATION_FILE = "calibration.json"  # a run's fitted (a, b), applied by predict.py


@dataclass(frozen=True)
class Calibration:
    """p = sigma(a z + b); the identity (a = 1, b = 0) until fitted."""

    a: float = 1.0
    b: float = 0.0

    def __call__(self, logit: np.ndarray) -> np.ndarray:
        """Calibrated click probabilities (float64) of logits z."""
        return sigmoid(self.a * np.asarray(logit, dtype=np.float64) + self.b)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> "Calibration":
        """The calibration a run wrote to `path` (training/run.py); MDAFError when unreadable."""
        try:
            values = json.loads(Path(path).read_text())
            return cls(float(values["a"]), float(values["b"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MDAFError(f"{path}: not a calibration file with keys 'a' and 'b' ({exc})") from None


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))  # exact, never overflows


def fit_platt(logit: np.ndarray, label: np.ndarray, iterations: int = 50) -> Calibration:
    """(a, b) of the module docstring; the identity when `label` holds a single class.

    The objective adds PRIOR (a - 1)^2 to the mean logloss, a weak Gaussian prior on the identity
    map: it moves a normal fit by well under 1 %, and keeps `a` finite when the logits barely vary
    (a collapsed model), where the plain logloss is flat along a ridge of ever larger `a`. Newton
    steps from the identity, halved until the objective falls."""
    z = np.asarray(logit, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        return Calibration()
    x = np.stack([z, np.ones_like(z)], axis=1)  # (n, 2)
    w = np.array([1.0, 0.0])
    n = len(y)
    prior = np.diag([2 * PRIOR, 0.0])  # the prior's Hessian, per sample
    loss = _objective(x, w, y)
    for _ in range(iterations):
        p = sigmoid(x @ w)
        gradient = x.T @ (p - y) / n + prior @ (w - [1.0, 0.0])
        hessian = (x * (p * (1 - p))[:, None]).T @ x / n + prior + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        while True:
            trial = _objective(x, w - step, y)
            if trial <= loss or np.abs(step).max() < 1e-12:
                break
            step = step / 2
        w, loss = w - step, min(trial, loss)
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(float(w[0]), float(w[1]))


def _objective(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> float:
    """Mean logloss of logits x @ w, computed stably as log(1 + e^z) - y z, plus the prior."""
    z = x @ w
    return float(np.mean(np.logaddexp(0.0, z) - y * z)) + PRIOR * (w[0] - 1.0) ** 2


def expected_calibration_error(p: np.ndarray, label: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the module docstring; NaN for an empty split."""
    table = reliability(p, label, bins)
    n = sum(row[0] for row in table)
    return sum(count * abs(mean_p - rate) for count, mean_p, rate in table) / n if n else math.nan


def reliability(p: np.ndarray, label: np.ndarray, bins: int = ECE_BINS) -> list[tuple[int, float, float]]:
    """(samples, mean prediction, click rate) of each of `bins` equal-mass bins of `p`, in order."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    return [(len(part), float(p[part].mean()), float(y[part].mean()))
            for part in np.array_split(order, min(bins, len(p))) if len(part)]
