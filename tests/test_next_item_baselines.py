"""The next-item models that learn by counting (pop, recent, knn): what each ranks first on a
hand-made window, that padding and unknown items never score above a real item, that ties never
favour the target, that only training targets are counted, and that their checkpoints carry what
they counted."""
from __future__ import annotations

import pytest
import torch

from data_prep.loader import batch_key
from data_prep.vocab import OOV
from models.registry import build_model
from training.ranking import target_ranks
from training.tasks.next_item import catalogue_cross_entropy

V = 12  # items 2..11, padding 0, unknown 1
META = {"vocab_sizes": {"item": V}}


def batch(rows: list[list[int]], targets: list[int] | None = None, gaps: list[list[int]] | None = None,
          length: int = 6) -> dict[str, torch.Tensor]:
    """Windows left-padded to `length` (0 = pad); gaps in seconds before the target (default one
    event a minute); `targets`: the `item` key."""
    items = torch.tensor([[0] * (length - len(r)) + r for r in rows])
    mask = items > 0
    seconds = (torch.tensor([[0] * (length - len(g)) + g for g in gaps]) if gaps is not None
               else torch.arange(length, 0, -1).expand_as(items) * 60 * mask)
    out = {batch_key("history", "item"): items, batch_key("history", "mask"): mask,
           batch_key("history", "time_gap"): seconds}
    return out | ({"item": torch.tensor(targets)} if targets is not None else {})


def fitted(name: str, train: list[dict[str, torch.Tensor]], val: list | None = None, **cfg) -> torch.nn.Module:
    model = build_model({"name": name, **cfg}, META)
    model.fit(train, val or [])
    return model.eval()


# training targets: 5 three times, 7 twice, 3 once
TRAIN = [batch([[2], [2, 3], [4]], [5, 5, 7]), batch([[6], [8, 9], [4, 6]], [5, 7, 3])]


def order(scores: torch.Tensor, n: int) -> list[int]:
    return scores.argsort(descending=True, stable=True)[:n].tolist()


def test_pop_ranks_by_training_count_and_scores_log_probabilities():
    scores = fitted("pop", TRAIN)(batch([[9, 10]])).logit[0]
    assert order(scores, 3) == [5, 7, 3]
    assert torch.isneginf(scores[: OOV + 1]).all()
    # add-one smoothing over the 10 items: p(5) = (3 + 1) / (6 + 10), and the catalogue sums to 1
    assert scores[5].exp().item() == pytest.approx(4 / 16)
    assert torch.logsumexp(scores, 0).item() == pytest.approx(0.0, abs=1e-6)


def test_ties_count_against_the_target():
    """Items never seen as a target tie: an unseen target ranks below all of them, never first."""
    scores = fitted("pop", TRAIN)(batch([[9], [9]])).logit
    ranks = target_ranks(scores, torch.tensor([10, 5]))
    assert ranks.tolist() == [V - (OOV + 1), 1]  # 3 seen items above item 10, and the 6 unseen others tie with it


def test_recent_puts_the_window_first_newest_then_by_count_then_popularity():
    model = fitted("recent", TRAIN)
    # times: 9 and 7 share the oldest second, 4 and 6 a later one, 3 is the newest; 6 occurs twice
    rows = [[9, 7, 6, 4, 6, 3]]
    scores = model(batch(rows, gaps=[[500, 500, 300, 200, 200, 100]])).logit[0]
    # 4 and 6 tie on time, 6 counts twice; 7 and 9 tie on time and count, 7 was a training target;
    # then the rest by popularity: 5, then the unseen items, tied
    assert order(scores, 6) == [3, 6, 4, 7, 9, 5]
    assert scores[2] == scores[8] == scores[10] == scores[11] < scores[5]
    assert torch.isneginf(scores[: OOV + 1]).all()


def test_recent_never_scores_padding_or_unknown_above_a_real_item():
    scores = fitted("recent", TRAIN)(batch([[OOV, 7, OOV]])).logit[0]
    assert order(scores, 2) == [7, 5]
    assert torch.isneginf(scores[: OOV + 1]).all()


def test_knn_counts_predecessors_by_distance_and_votes_by_recency():
    # training sequences 2 3 4 and 6 7 8: every target with its window
    train = [batch([[2], [2, 3], [6], [6, 7]], [3, 4, 7, 8])]
    model = fitted("knn", train, steps=2, neighbours=3)
    pairs = {(a, int(b)): float(w) for a in range(V) for b, w in zip(model.neighbour[a], model.weight[a]) if w > 0}
    assert pairs == {(2, 3): 1.0, (3, 4): 1.0, (2, 4): 0.5, (6, 7): 1.0, (7, 8): 1.0, (6, 8): 0.5}
    scores = model(batch([[6, 2]])).logit[0]  # 2 is the newest: its votes weigh 1, 6's 1/2
    votes = torch.zeros(V, dtype=torch.float64)
    votes[[3, 4, 7, 8]] = torch.tensor([1.0, 0.5, 0.5 * 1.0, 0.5 * 0.5], dtype=torch.float64)
    popularity = torch.full((V,), 1 / 14, dtype=torch.float64)  # (count + 1) / (4 targets + 10 items)
    popularity[[3, 4, 7, 8]] = 2 / 14
    expected = 0.99 * votes / votes.sum() + 0.01 * popularity
    torch.testing.assert_close(scores[OOV + 1:].exp().double(), expected[OOV + 1:], rtol=1e-5, atol=0)
    assert torch.isneginf(scores[: OOV + 1]).all()


def test_knn_learns_from_training_targets_only():
    """Validation batches are handed to fit as to every fitted model; none of their pairs counts."""
    model = fitted("knn", [batch([[2]], [3])], val=[batch([[2]], [9]), batch([[2, 9]], [10])])
    scores = model(batch([[2]])).logit[0]
    assert order(scores, 1) == [3] and scores[9] == scores[10] == scores[11]


def test_an_unknown_window_scores_by_popularity_alone():
    for name in ("recent", "knn"):
        scores = fitted(name, TRAIN)(batch([[OOV, OOV]])).logit[0]
        assert order(scores, 3) == [5, 7, 3], name


@pytest.mark.parametrize("name", ["pop", "recent", "knn"])
def test_the_state_dict_carries_what_was_counted(name):
    model = fitted(name, TRAIN)
    again = build_model({"name": name}, META).eval()
    again.load_state_dict(model.state_dict())
    b = batch([[2, 4], [9, 6, 6]])
    torch.testing.assert_close(again(b).logit, model(b).logit)
    assert torch.isfinite(catalogue_cross_entropy(model(b).logit, torch.tensor([5, 3])))
