"""Next-item metrics: the target's rank among every item of the catalogue (never sampled negatives).

    rank = 1 + #{j != target : s_j >= s_target}        ties count as ranked above the target,
                                                       so a constant scorer ranks last
    HR@K   = mean [rank <= K]
    NDCG@K = mean [rank <= K] / log2(rank + 1)          one relevant item: IDCG = 1
    MRR@K  = mean [rank <= K] / rank

Padding and out-of-vocabulary rows (indices 0 and 1) are never ranked. The user's history is not
masked by default (RecBole's default for sequential models); with `mask_history` the items of
the window are taken out of the ranking, the target excepted.
"""
from __future__ import annotations

import numpy as np
import torch

from data_prep.vocab import OOV

CUTOFFS = (5, 10, 20)


def ranked_scores(scores: torch.Tensor, history: torch.Tensor | None = None,
                  keep: torch.Tensor | None = None) -> torch.Tensor:
    """`scores` (B, V) as float32 with every item that is never ranked at -inf: padding and unknown,
    and the items of `history` (B, L) (0 = pad) when given, but for `keep` (B,) (the target). The
    masking rules of evaluation, and of the scoring service's recommendations (serving/scorer.py)."""
    scores = scores.float().clone()
    scores[:, : OOV + 1] = float("-inf")
    if history is not None:
        hidden = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, history, True)
        if keep is not None:
            hidden.scatter_(1, keep[:, None], False)
        scores = scores.masked_fill(hidden, float("-inf"))
    return scores


def target_ranks(scores: torch.Tensor, target: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) int64 ranks of `target` (B,) under `scores` (B, V); `history` (B, L) item indices to
    take out of the ranking (0 = pad), or None."""
    scores = ranked_scores(scores, history, keep=target)
    own = scores.gather(1, target[:, None])  # (B, 1)
    return (scores >= own).sum(dim=1)  # the target itself counts once: 1 + the items at or above it


def ranking_metrics(ranks: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS) -> dict[str, float]:
    """hr@K, ndcg@K and mrr@K for each K of `cutoffs`, from ranks (N,) (1 = first); NaN when empty."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in cutoffs:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.mean()) if len(ranks) else float("nan")
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()) if len(ranks) else float("nan")
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / ranks, 0.0).mean()) if len(ranks) else float("nan")
    return out
