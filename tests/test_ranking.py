"""Next-item metrics against hand-computed values: ranks with ties above the target, padding and
unknown rows out of the ranking, history masking, and HR, NDCG, MRR at each cutoff."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.ranking import ranking_metrics, target_ranks


def test_ranks_count_ties_above_and_never_rank_padding():
    # rows 0 and 1 (padding, unknown) score highest but are never ranked
    scores = torch.tensor([[9.0, 9.0, 0.1, 0.5, 0.3, 0.5],
                           [9.0, 9.0, 1.0, 1.0, 1.0, 1.0],     # a constant scorer: the target ranks last
                           [9.0, 9.0, 0.9, 0.1, 0.2, 0.3]])
    target = torch.tensor([4, 3, 2])
    # row 0: items 3 and 5 (0.5) above item 4 (0.3) -> 3; row 1: all four tie -> 4; row 2: best -> 1
    assert target_ranks(scores, target).tolist() == [3, 4, 1]


def test_history_mask_removes_seen_items_but_never_the_target():
    scores = torch.tensor([[0.0, 0.0, 0.9, 0.8, 0.7, 0.1]])
    history = torch.tensor([[0, 2, 4]])  # pad, item 2, and the target itself
    assert target_ranks(scores, torch.tensor([4]), history).tolist() == [2]  # only item 3 stays above
    assert target_ranks(scores, torch.tensor([4])).tolist() == [3]


def test_metrics_by_hand():
    ranks = np.array([1, 3, 7, 12, 30])
    out = ranking_metrics(ranks, (5, 10, 20))
    assert out["hr@5"] == pytest.approx(2 / 5)
    assert out["hr@10"] == pytest.approx(3 / 5)
    assert out["hr@20"] == pytest.approx(4 / 5)
    assert out["ndcg@5"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 5)
    assert out["ndcg@10"] == pytest.approx((1 + 0.5 + 1 / math.log2(8)) / 5)
    assert out["ndcg@20"] == pytest.approx((1 + 0.5 + 1 / 3 + 1 / math.log2(13)) / 5)
    assert out["mrr@5"] == pytest.approx((1 + 1 / 3) / 5)
    assert out["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 7) / 5)
    assert out["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 7 + 1 / 12) / 5)


def test_metrics_of_no_targets_are_nan():
    assert all(math.isnan(v) for v in ranking_metrics(np.array([], dtype=np.int64)).values())


def test_a_random_scorer_scores_chance():
    rng = torch.Generator().manual_seed(0)
    n, items = 20000, 100
    scores = torch.rand(n, items + 2, generator=rng)
    target = torch.randint(2, items + 2, (n,), generator=rng)
    out = ranking_metrics(target_ranks(scores, target).numpy(), (10,))
    assert out["hr@10"] == pytest.approx(10 / items, abs=0.01)
