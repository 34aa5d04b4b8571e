"""The neural next-item models (Mamba4Rec, MambaRec, SASRec, GRU4Rec): they build from their
configs, score the whole catalogue, learn (the loss falls), are causal (a position's state never
sees a later item, which training on every position needs), and ignore left padding. The models
that learn by counting: tests/test_next_item_baselines.py; the repeat-explore head:
tests/test_repeat_explore.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.fitted import FittedModel
from models.registry import NEXT_ITEM_MODELS, build_model, model_classes
from training.config import resolve_section

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
V = 40  # 38 items + padding + unknown
META = {"vocab_sizes": {"item": V}}
NEURAL = [name for name in NEXT_ITEM_MODELS if not issubclass(model_classes(name)[0], FittedModel)]


def model(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {**resolve_section(str(CONFIGS / f"{name}.yaml"), name), **overrides}
    return build_model(cfg, META).eval()


def batch(items: torch.Tensor) -> dict[str, torch.Tensor]:
    return {batch_key("history", "item"): items, batch_key("history", "mask"): items > 0}


@pytest.mark.parametrize("name", NEURAL)
def test_scores_every_item_and_learns(name):
    net = model(name).train()
    gen = torch.Generator().manual_seed(1)
    items = torch.randint(2, V, (64, 12), generator=gen)
    target = items[:, -2]  # the item before the newest: needs the order of the history
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        out = net(batch(items))
        assert out.logit.shape == (64, V) and out.states.shape[:2] == (64, 12)
        loss = F.cross_entropy(out.logit, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::15]


@pytest.mark.parametrize("name", NEURAL)
def test_causal_states(name):
    net = model(name)
    items = torch.randint(2, V, (3, 10), generator=torch.Generator().manual_seed(2))
    changed = items.clone()
    changed[:, 6:] = torch.randint(2, V, (3, 4), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = net(batch(items)).states, net(batch(changed)).states
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("name", NEURAL)
def test_left_padding_changes_nothing(name):
    net = model(name)
    items = torch.randint(2, V, (2, 7), generator=torch.Generator().manual_seed(4))
    padded = torch.cat([torch.zeros(2, 5, dtype=torch.long), items], dim=1)
    with torch.no_grad():
        short, long = net(batch(items)).logit, net(batch(padded)).logit
    torch.testing.assert_close(short, long, atol=1e-4, rtol=1e-4)


def test_mamba4rec_has_the_published_shape():
    net = model("mamba4rec")
    layer = net.encoder.layers[0]
    assert len(net.encoder.layers) == 1 and not layer.residual  # the code: no residual with one layer
    assert layer.mamba.d_state == 32 and layer.mamba.d_inner == 128 and layer.ffn.net[0].out_features == 256


def test_mamba4rec_switches_change_what_they_name():
    published = model("mamba4rec").encoder.layers[0]
    assert isinstance(published.norm, torch.nn.LayerNorm) and published.mamba.in_proj.weight.std() > 0.05  # torch's init
    switched = model("mamba4rec", residual=True, mixer_norm=False, init="recbole").encoder.layers[0]
    assert switched.residual and isinstance(switched.norm, torch.nn.Identity)
    for linear in (switched.mamba.in_proj, switched.mamba.out_proj, switched.ffn.net[0]):
        assert abs(linear.weight.std().item() - 0.02) < 0.003  # RecBole's N(0, 0.02^2)
    dt = F.softplus(switched.mamba.dt_proj.bias)  # the dt initialisation survives init recbole
    assert dt.min() >= 0.001 - 1e-6 and dt.max() <= 0.1 + 1e-6 and dt.std() > 0
    code = model("mamba4rec", init="recbole", dt_min=0.6931471805599453, dt_max=0.6931471805599453)
    torch.testing.assert_close(code.encoder.layers[0].mamba.dt_proj.bias, torch.zeros(128))  # the authors' code


def timed_batch(items: torch.Tensor, seconds: torch.Tensor) -> dict[str, torch.Tensor]:
    """`items` with each event's age in seconds (the loader's time_gap; 0 at pads)."""
    return {**batch(items), batch_key("history", "time_gap"): seconds * (items > 0)}


@pytest.mark.parametrize("position", ["learned", "gap"])
def test_mamba4rec_position_signal_is_causal_and_ignores_left_padding(position):
    net = model("mamba4rec", position=position)
    gen = torch.Generator().manual_seed(5)
    items = torch.randint(2, V, (3, 10), generator=gen)
    ages = torch.randint(1, 10**6, (3, 10), generator=gen).sort(dim=1, descending=True).values
    changed_items, changed_ages = items.clone(), ages.clone()
    changed_items[:, 6:] = torch.randint(2, V, (3, 4), generator=gen)
    changed_ages[:, 6:] = changed_ages[:, 6:] // 7
    with torch.no_grad():
        a, b = net(timed_batch(items, ages)).states, net(timed_batch(changed_items, changed_ages)).states
        padded = net(timed_batch(torch.cat([torch.zeros(3, 4, dtype=torch.long), items], 1),
                                 torch.cat([torch.zeros(3, 4, dtype=torch.long), ages], 1)))
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:, 6:], b[:, 6:])
    torch.testing.assert_close(padded.states[:, 4:], a, atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # the signal counts: without the positions, or at other times, the states differ
        if position == "learned":
            net.position.weight.zero_()
            other = net(timed_batch(items, ages)).states
        else:
            other = net(timed_batch(items, ages * 50)).states
    assert not torch.allclose(a, other)


def test_mamba4rec_gap_position_needs_time_gaps_and_cannot_stream():
    net = model("mamba4rec", position="gap")
    with pytest.raises(MDAFError, match="position 'gap' needs the batch key 'history_time_gap'"):
        net(batch(torch.randint(2, V, (2, 5))))
    with pytest.raises(MDAFError, match="streaming needs position 'none'"):
        net.event_input({"item": torch.tensor([2, 3])})
