"""Match indicators between a history and its candidate (models/layers/history.py)."""
from __future__ import annotations

import torch

from models.layers.embedding import FeatureEmbedding
from models.layers.history import HistoryTokens, history_spaces


def test_match_indicators_by_hand(tiny_dataset):
    meta = tiny_dataset.meta
    spaces = list(history_spaces(meta, "behavior").values())
    tokens = HistoryTokens(FeatureEmbedding(meta["vocab_sizes"], spaces, 4), meta, "behavior")
    assert tokens.n_matches == 2  # cate and brand; the behaviour type has no candidate counterpart
    batch = {  # positions: pad, OOV cate, cate 5, cate 7; candidate cate 7, brand 9 / brand 1 (OOV)
        "behavior_cate": torch.tensor([[0, 1, 5, 7], [0, 1, 5, 7]]),
        "behavior_brand": torch.tensor([[0, 9, 9, 1], [0, 9, 9, 1]]),
        "behavior_btag": torch.tensor([[0, 2, 3, 2], [0, 2, 3, 2]]),
        "cate": torch.tensor([7, 1]), "brand": torch.tensor([9, 1]),
    }
    got = tokens.matches(batch)
    expected = torch.tensor([[[0, 0], [0, 1], [0, 1], [1, 0]],
                             [[0, 0], [0, 0], [0, 0], [0, 0]]], dtype=torch.float32)  # OOV never matches
    assert torch.equal(got, expected)


def test_match_features_change_the_sequence_branch_output(tiny_dataset, tiny_batch):
    from models.mdaf.sequence_branch import SequenceBranch, SequenceConfig

    torch.manual_seed(0)
    plain = SequenceBranch(SequenceConfig(hidden=16, n_layers=1, dropout=0.0), tiny_dataset.meta).eval()
    torch.manual_seed(0)
    matched = SequenceBranch(SequenceConfig(hidden=16, n_layers=1, dropout=0.0, match_features=True),
                             tiny_dataset.meta).eval()
    state = {k: v for k, v in matched.state_dict().items() if not k.startswith("match.")}
    plain.load_state_dict(state)
    has_match = matched.tokens.matches(tiny_batch).amax(dim=(1, 2)) > 0  # (B,)
    assert has_match.any() and (~has_match).any()
    with torch.no_grad():
        diff = (plain(tiny_batch) - matched(tiny_batch)).abs().amax(dim=1)
    assert (diff[has_match] > 1e-6).all() and (diff[~has_match] == 0).all()
