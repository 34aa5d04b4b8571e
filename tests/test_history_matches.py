"""Match indicators and statistics between a history and its candidate (models/layers/match.py)."""
from __future__ import annotations

import torch

from models.layers.match import MatchFeatures


def test_match_indicators_on_indices_by_hand(tiny_dataset):
    meta = {**tiny_dataset.meta, "raw_ids": []}  # a dataset without raw ids compares indices
    matches = MatchFeatures(meta, "behavior")
    assert matches.n_fields == 2  # cate and brand; the behaviour type has no candidate counterpart
    batch = {  # positions: pad, OOV cate, cate 5, cate 7; candidate cate 7, brand 9 / brand 1 (OOV)
        "behavior_cate": torch.tensor([[0, 1, 5, 7], [0, 1, 5, 7]]),
        "behavior_brand": torch.tensor([[0, 9, 9, 1], [0, 9, 9, 1]]),
        "behavior_btag": torch.tensor([[0, 2, 3, 2], [0, 2, 3, 2]]),
        "behavior_mask": torch.tensor([[False, True, True, True]] * 2),
        "cate": torch.tensor([7, 1]), "brand": torch.tensor([9, 1]),
    }
    got = matches.indicators(batch)
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
    has_match = matched.matches.indicators(tiny_batch).amax(dim=(1, 2)) > 0  # (B,)
    assert has_match.any() and (~has_match).any()
    with torch.no_grad():
        diff = (plain(tiny_batch) - matched(tiny_batch)).abs().amax(dim=1)
    assert (diff[has_match] > 1e-6).all() and (diff[~has_match] == 0).all()


def test_raw_ids_match_where_indices_are_out_of_vocabulary(tiny_dataset):
    matches = MatchFeatures(tiny_dataset.meta, "behavior")
    assert matches.raw == {"cate": True, "brand": True}
    batch = {  # both behaviours' categories are out of vocabulary (index 1) but have raw ids
        "behavior_cate": torch.tensor([[0, 1, 1, 5]]), "behavior_cate_raw": torch.tensor([[0, 501, 502, 77]]),
        "behavior_brand": torch.tensor([[0, 3, 1, 3]]), "behavior_brand_raw": torch.tensor([[0, 9, -1, 9]]),
        "behavior_mask": torch.tensor([[False, True, True, True]]),
        "cate": torch.tensor([1]), "cate_raw": torch.tensor([501]),  # a category first seen after train
        "brand": torch.tensor([3]), "brand_raw": torch.tensor([-1]),  # a missing brand matches nothing
    }
    expected = torch.tensor([[[0, 0], [1, 0], [0, 0], [0, 0]]], dtype=torch.float32)
    assert torch.equal(matches.indicators(batch), expected)


def test_match_statistics_by_hand(tiny_dataset):
    matches = MatchFeatures(tiny_dataset.meta, "behavior")
    assert matches.n_types == 4 and matches.n_statistics == 2 * (4 + 4) + 1 + 4
    batch = {  # 3 real behaviours: pv of cate 5 two hours ago, cart of cate 5 an hour ago, buy of cate 6
        "behavior_cate_raw": torch.tensor([[0, 5, 5, 6]]), "behavior_brand_raw": torch.tensor([[0, 8, 8, 8]]),
        "behavior_btag": torch.tensor([[0, 2, 3, 5]]), "behavior_mask": torch.tensor([[False, True, True, True]]),
        "behavior_time_gap": torch.tensor([[0, 7200, 3600, 60]]),
        "cate_raw": torch.tensor([5]), "brand_raw": torch.tensor([7]),
    }
    log = torch.log1p
    got = matches.statistics(batch)[0]
    count = torch.tensor([2.0, 0.0])
    since = torch.tensor([1.0, 24 * 32.0])  # hours since the newest cate match; no brand match
    after = torch.tensor([1.0, 3.0])  # behaviours since the newest cate match (the buy); no brand match: n
    by_type = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # pv, cart, fav, buy
    expected = torch.cat([log(count), count / 3, log(since), log(after), log(by_type).flatten(),
                          log(torch.tensor([3.0])), torch.tensor([1, 1, 0, 1]) / 3])
    torch.testing.assert_close(got, expected)
