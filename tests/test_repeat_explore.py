"""The repeat-explore head (models/next_item/repeat_explore.py) on every neural next-item model: its
scores are log-probabilities over the catalogue with no mass on padding or unknown items, the
every-position scores are causal and agree with the last position's, a target that is always
an item of the window is learnt by the head and not by the dot head, and a model with the head
refuses to stream."""
from __future__ import annotations

import math

import pytest
import torch

from common.errors import MDAFError
from data_prep.loader import batch_key
from data_prep.vocab import OOV
from models.fitted import FittedModel
from models.registry import NEXT_ITEM_MODELS, build_model, model_classes
from models.ssm.streaming import Streamer
from training.tasks.next_item import catalogue_cross_entropy

V = 40  # 38 items + padding + unknown
SMALL = {"mamba4rec": {"hidden": 16, "d_state": 8}, "sasrec": {"hidden": 16, "inner": 32},
         "gru4rec": {"embedding": 16, "hidden": 16}, "mambarec": {"hidden": 16, "d_state": 8}}
NEURAL = [name for name in NEXT_ITEM_MODELS if not issubclass(model_classes(name)[0], FittedModel)]


def model(name: str, head: str = "repeat_explore", vocab: int = V) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"name": name, "head": head, "dropout": 0.0, **SMALL[name]}, {"vocab_sizes": {"item": vocab}})


def batch(items: torch.Tensor) -> dict[str, torch.Tensor]:
    """Left-padded windows of `items` (0 = pad), one event a minute, the newest a minute before the target."""
    mask = items > 0
    gaps = torch.arange(items.shape[1], 0, -1).expand_as(items) * 60 * mask
    return {batch_key("history", "item"): items, batch_key("history", "mask"): mask,
            batch_key("history", "time_gap"): gaps}


def windows(seed: int, rows: int = 4, length: int = 10) -> torch.Tensor:
    """Random items with pads on the left of row 0 and unknown items (1) in rows 0 and 1."""
    items = torch.randint(2, V, (rows, length), generator=torch.Generator().manual_seed(seed))
    items[0, :4] = 0
    items[0, 6] = OOV
    items[1, -1] = OOV
    return items


@pytest.mark.parametrize("name", NEURAL)
def test_scores_are_log_probabilities_without_mass_on_pads_or_unknown(name):
    net = model(name).eval()
    b = batch(windows(0))
    with torch.no_grad():
        out = net(b)
        every = net.head_scores(b, out.states, every_position=True)
    for scores in (out.logit, every):
        assert torch.isneginf(scores[:, : OOV + 1]).all()  # padding and unknown: probability 0
        torch.testing.assert_close(torch.logsumexp(scores, dim=1), torch.zeros(len(scores)), atol=1e-5, rtol=0)
        target = torch.arange(len(scores)) % (V - OOV - 1) + OOV + 1
        # the task's cross-entropy (a log-softmax over the catalogue) is minus the target's score, as
        # the negative log-likelihood it takes of log-probabilities
        assert net.log_probabilities
        for as_given in (False, True):
            torch.testing.assert_close(catalogue_cross_entropy(scores, target, "none", as_given),
                                       -scores.gather(1, target[:, None])[:, 0])
    last = b[batch_key("history", "mask")].sum(1).cumsum(0) - 1  # each row's newest position in states[mask]
    torch.testing.assert_close(every[last], out.logit, atol=1e-5, rtol=1e-5)


def test_the_repeat_mass_of_an_item_sums_over_its_positions_in_the_window():
    net = model("gru4rec").eval()
    items = windows(1)
    items[2, :5] = items[2, 5]  # an item six times over
    with torch.no_grad():
        head = net.repeat_explore
        for part in (head.query, head.key, head.steps, head.seconds, head.gate):
            for weight in part.parameters():
                weight.zero_()  # equal attention over the known positions
        head.gate.bias.fill_(30.0)  # P(repeat) ~ 1: all the mass is the repeat distribution's
        probability = net(batch(items)).logit.exp()
    for row in range(len(items)):
        known = items[row][items[row] > OOV]
        expected = torch.zeros(V).index_add_(0, known, torch.full((len(known),), 1 / len(known)))
        torch.testing.assert_close(probability[row], expected, atol=1e-6, rtol=1e-5)


def test_a_window_without_known_items_scores_by_exploring_alone():
    net = model("gru4rec").eval()
    items = torch.tensor([[0, 0, OOV, OOV], [0, 0, 0, OOV], [0, 0, 5, 5]])
    out = net(batch(items))
    explore = torch.log_softmax(net.score(out.states[:, -1])[:, OOV + 1:], dim=1)
    torch.testing.assert_close(out.logit[:2, OOV + 1:], explore[:2])
    catalogue_cross_entropy(out.logit, torch.tensor([3, 4, 5])).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NEURAL)
def test_every_position_is_causal(name):
    """Position t's scores (its repeat distribution included) never read a later position."""
    net = model(name).eval()
    items = windows(2)[1:]  # full windows
    changed = items.clone()
    changed[:, 6:] = torch.randint(2, V, (3, 4), generator=torch.Generator().manual_seed(3))
    scores = []
    for window in (items, changed):
        b = batch(window)
        with torch.no_grad():
            scores.append(net.head_scores(b, net(b).states, every_position=True).view(3, 10, V))
    torch.testing.assert_close(scores[0][:, :6], scores[1][:, :6], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(scores[0][:, 6:], scores[1][:, 6:])


def test_a_repeat_only_target_is_learnt_by_the_head_and_not_by_the_dot_head():
    """The target is a random item of a window of 8 random items out of 400: the best possible
    loss is log 8, which the head reaches in 50 steps; the dot head stays far above it."""
    vocab, length = 402, 8

    def sample(gen: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        items = torch.randint(OOV + 1, vocab, (32, length), generator=gen)
        return batch(items), items.gather(1, torch.randint(0, length, (32, 1), generator=gen))[:, 0]

    losses = {}
    for head in ("dot", "repeat_explore"):
        net = model("gru4rec", head, vocab).train()
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(1)
        for _ in range(50):
            b, target = sample(gen)
            loss = catalogue_cross_entropy(net(b).logit, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            b, target = sample(torch.Generator().manual_seed(99))
            losses[head] = catalogue_cross_entropy(net.eval()(b).logit, target).item()
    assert losses["repeat_explore"] < math.log(length) + 0.1, losses
    assert losses["dot"] > math.log(length) + 2.0, losses


def test_an_unknown_head_is_named_and_the_head_does_not_stream():
    with pytest.raises(MDAFError, match="key 'head' is 'dots'; expected one of"):
        build_model({"name": "sasrec", "head": "dots"}, {"vocab_sizes": {"item": V}})
    with pytest.raises(MDAFError, match="streaming needs head 'dot'"):
        Streamer(model("mamba4rec"))
