"""The hybrid Mamba / attention block (models/ssm/hybrid.py) in both tasks: causal, blind to
padding, its gate as the equation says."""
from __future__ import annotations

import pytest
import torch

from common.errors import MDAFError
from models.ssm.hybrid import HybridEncoder, prefix_mean
from models.registry import build_model


def encoder(gate: str) -> HybridEncoder:
    torch.manual_seed(0)
    return HybridEncoder(16, 2, n_heads=2, gate=gate, d_state=8, dropout=0.0).eval()


@pytest.mark.parametrize("gate", ["sequence", "position"])
def test_no_position_reads_a_later_one(gate):
    enc = encoder(gate)
    x = torch.randn(2, 30, 16)
    mask = torch.ones(2, 30, dtype=torch.bool)
    changed = x.clone()
    changed[:, 20:] = torch.randn(2, 10, 16)
    with torch.no_grad():
        a, b = enc(x, mask), enc(changed, mask)
    torch.testing.assert_close(a[:, :20], b[:, :20])
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3


@pytest.mark.parametrize("gate", ["sequence", "position"])
def test_left_padding_changes_nothing_at_real_positions(gate):
    enc = encoder(gate)
    x = torch.randn(1, 12, 16)
    padded = torch.cat([torch.randn(1, 7, 16), x], dim=1)  # pads hold garbage: they must be ignored
    mask = torch.cat([torch.zeros(1, 7, dtype=torch.bool), torch.ones(1, 12, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        alone = enc(x, torch.ones(1, 12, dtype=torch.bool))
        gates_alone = enc.gates
        inside = enc(padded, mask)
    torch.testing.assert_close(inside[:, 7:], alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(enc.gates, gates_alone)
    assert inside[:, :7].abs().max() == 0


def test_sequence_gate_is_the_mean_over_real_positions():
    enc = encoder("sequence")
    x, mask = torch.randn(3, 9, 16), torch.rand(3, 9) > 0.3
    mask[:, -1] = True
    with torch.no_grad():
        enc(x, mask)
        layer = enc.layers[0]
        mean = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        expected = torch.sigmoid(layer.gate(mean)).squeeze(-1)
    torch.testing.assert_close(enc.gates[:, 0], expected)
    torch.testing.assert_close(prefix_mean(x, mask)[:, -1], mean)


def test_bad_gate_is_named():
    with pytest.raises(MDAFError, match="'gate'"):
        HybridEncoder(16, 1, gate="token")


def test_next_item_hybrid_reports_its_gate():
    torch.manual_seed(0)
    model = build_model({"name": "mambarec", "hidden": 16, "n_heads": 2, "d_state": 8}, {"vocab_sizes": {"item": 40}})
    items = torch.randint(2, 40, (4, 10))
    out = model({"history_item": items, "history_mask": items > 0})
    assert out.logit.shape == (4, 40) and out.diagnostics["hybrid_gate"].shape == (4, 1)
    gates = model.diagnostics()
    gates.add(out)
    result = gates.result()["hybrid_gate"]
    assert result["n"] == 4 and 0 < result["mean"][0] < 1


def test_mdaf_with_a_hybrid_sequential_branch(tiny_dataset, tiny_batch):
    torch.manual_seed(0)
    model = build_model({"name": "mdaf", "hidden": 16, "sequence": {"encoder": "hybrid", "hidden": 16, "n_heads": 2,
                                                                     "n_layers": 1}}, tiny_dataset.meta)
    out = model(tiny_batch)
    assert out.logit.shape == tiny_batch["label"].shape and torch.isfinite(out.logit).all()
    out.logit.sum().backward()
    assert model.sequence.encoder.layers[0].gate.weight.grad.abs().sum() > 0
