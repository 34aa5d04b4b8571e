"""From a latent score to a probability, and the intercept that hits a target mean rate.

The event (click, conversion) happens with probability sigmoid(eta + b0 + eps), where eps ~
N(0, noise_std^2) is an unobserved per-event shock that no model can see. The generator
publishes the Bayes-optimal probability given everything observable,

    p = E_eps[sigmoid(eta + b0 + eps)]  (Gauss-Hermite quadrature, 12 nodes, float32),

and draws the event as Bernoulli(p), which has exactly the same law as drawing eps first. The
shock flattens p towards the base rate, so it is the knob that keeps the oracle AUC realistic.
b0 is found by a safeguarded Newton iteration so that mean(p) over a calibration sample equals
the target rate.
"""
from __future__ import annotations

import numpy as np

_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(12)
_WEIGHTS = _WEIGHTS / np.sqrt(np.pi)
CALIBRATION_ROWS = 200_000


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), via tanh (no overflow), in the dtype of `x`."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _moments(eta: np.ndarray, noise_std: float) -> tuple[np.ndarray, np.ndarray]:
    """E[sigmoid(eta + eps)] and E[sigmoid'(eta + eps)]."""
    eta = np.asarray(eta, dtype=np.float32)
    if noise_std <= 0:
        s = sigmoid(eta)
        return s, s * (1 - s)
    mean = np.zeros_like(eta)
    slope = np.zeros_like(eta)
    for node, weight in zip(_NODES, _WEIGHTS):
        s = sigmoid(eta + np.float32(np.sqrt(2.0) * noise_std * node))
        mean += np.float32(weight) * s
        slope += np.float32(weight) * s * (1 - s)
    return mean, slope


def expected_sigmoid(eta: np.ndarray, noise_std: float) -> np.ndarray:
    """E[sigmoid(eta + eps)] with eps ~ N(0, noise_std^2), float32; plain sigmoid when 0."""
    eta = np.asarray(eta, dtype=np.float32)
    if noise_std <= 0:
        return sigmoid(eta)
    out = np.zeros_like(eta)
    for node, weight in zip(_NODES, _WEIGHTS):
        out += np.float32(weight) * sigmoid(eta + np.float32(np.sqrt(2.0) * noise_std * node))
    return out


def solve_intercept(eta: np.ndarray, target: float, noise_std: float) -> float:
    """b0 with mean(expected_sigmoid(eta + b0)) == target.

    Uses at most CALIBRATION_ROWS evenly spaced rows of `eta`; Newton steps, falling back to
    bisection whenever a step leaves the bracket known to hold the root.
    """
    eta = np.asarray(eta, dtype=np.float64)
    if len(eta) > CALIBRATION_ROWS:
        eta = eta[np.linspace(0, len(eta) - 1, CALIBRATION_ROWS).astype(np.int64)]
    lo, hi = -40.0 - eta.max(), 40.0 - eta.min()
    b = float(np.log(target / (1 - target)) - eta.mean())
    for _ in range(100):
        mean, slope = _moments(eta + b, noise_std)
        gap = float(mean.mean(dtype=np.float64)) - target
        if abs(gap) < 1e-7 * target:
            break
        if gap < 0:
            lo = b
        else:
            hi = b
        step = b - gap / max(float(slope.mean(dtype=np.float64)), 1e-12)
        b = step if lo < step < hi else 0.5 * (lo + hi)
    return b
