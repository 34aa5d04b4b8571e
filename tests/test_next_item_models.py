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
