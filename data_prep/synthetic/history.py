"""The sequential signal: recency-decayed matches between a candidate and the recent past.

For a candidate x (ad or item) seen at some moment by user u, with u's behaviours strictly
before that moment h_0 (most recent), h_1, ..., the sequential score is

    seq(x) = sum_{k < K} exp(-k / tau) * beta(h_k) * sum_f alpha_f * [field_f(h_k) == field_f(x)]

with K = history_len, beta the behaviour-type weight (buy > cart > fav > pv) and fields such as
category and brand (ads) or category and item (items). With tau = 3 a match with the latest
behaviour counts e^10 (~22000) times more than one 30 steps back, so order matters: mean
pooling of the same K behaviours cannot recover this score, a recency-aware sequence model can.
"""
from __future__ import annotations

import numpy as np


def recency_weights(history_len: int, tau: float) -> np.ndarray:
    """exp(-k / tau) for k = 0 .. history_len - 1."""
    return np.exp(-np.arange(history_len) / tau)


def window(end: np.ndarray, begin: np.ndarray, history_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions end-1-k (k < K) of each row's last K behaviours, clipped, and their validity.

    `end` is one past the last behaviour before the candidate, `begin` the user's first one.
    """
    pos = end[:, None] - 1 - np.arange(history_len)[None, :]
    valid = pos >= begin[:, None]
    return np.maximum(pos, 0), valid


def decayed_matches(hist: list[np.ndarray], cand: list[np.ndarray], alphas: list[float],
                    weights: np.ndarray, valid: np.ndarray,
                    beta: np.ndarray | None = None) -> np.ndarray:
    """seq(x) for gathered histories: hist[f] is (n, K), cand[f] is (n,), weights is (K,).

    A candidate field value below 0 (an unknown brand) never matches.
    """
    score = np.zeros(valid.shape, dtype=np.float64)
    for values, target, alpha in zip(hist, cand, alphas):
        score += alpha * ((values == target[:, None]) & (target[:, None] >= 0))
    score *= valid
    if beta is not None:
        score *= beta
    return score @ weights


def decayed_matches_previous(fields: list[np.ndarray], alphas: list[float], rank: np.ndarray,
                             history_len: int, tau: float) -> np.ndarray:
    """seq(x_j) where each row j's history is the rows before it of the same user.

    Rows are grouped by user in time order; rank[j] is j's position within its user. Works on
    shifted slices (row j against row j-1-k) instead of gathered windows, and stops once the
    weight falls under 1e-3 of the first.
    """
    n = len(rank)
    score = np.zeros(n, dtype=np.float64)
    depth = min(history_len, int(np.ceil(tau * np.log(1000.0))) + 1)
    for k in range(depth):
        lag = k + 1
        if lag >= n:
            break
        match = np.zeros(n - lag, dtype=np.float32)
        for values, alpha in zip(fields, alphas):
            match += np.float32(alpha) * (values[lag:] == values[:-lag])
        match *= rank[lag:] >= lag
        score[lag:] += np.exp(-k / tau) * match
    return score
