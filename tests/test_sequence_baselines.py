"""The transformer encoder's masking, and the BST and DIN baselines built through the registry."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.errors import MDAFError
from models.layers.transformer import TransformerEncoder, visible_keys
from models.registry import build_model

SMALL = {
    "bst": {"name": "bst", "hidden": 32, "n_heads": 4, "mlp": {"hidden": [64, 32]}, "embedding": {"dim": 8, "dims": {}}},
    "din": {"name": "din", "attention": {"hidden": [16]}, "mlp": {"hidden": [64, 32]},
            "embedding": {"dim": 8, "dims": {}}},
}
HISTORY_FIELDS = ("cate", "brand", "btag")  # the `behavior` timeline's index fields


def left_padded(real: torch.Tensor, lengths: list[int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last lengths[b] rows of real[b] (B, n, H) at the end of a (B, length, H) window whose pads
    hold random values; and its mask (B, length)."""
    g = torch.Generator().manual_seed(length)
    x = 3 * torch.randn(real.shape[0], length, real.shape[2], generator=g)
    mask = torch.zeros(real.shape[0], length, dtype=torch.bool)
    for b, n in enumerate(lengths):
        if n:
            x[b, -n:] = real[b, -n:]
            mask[b, -n:] = True
    return x, mask


def subset(batch: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[idx].clone() for k, v in batch.items()}


def empty_history(batch: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """A copy of `batch` whose sample i has no behaviours (all-False mask, zeros elsewhere)."""
    out = {k: v.clone() for k, v in batch.items()}
    for k, v in out.items():
        if k.startswith("behavior_"):
            v[i] = 0
    return out


def junk_pads(batch: dict[str, torch.Tensor], extra: int, vocab: dict[str, int]) -> dict[str, torch.Tensor]:
    """A copy of `batch` with `extra` more left pads on the behaviour window, and random indices
    and gaps at every pad (the mask still False there)."""
    g = torch.Generator().manual_seed(1)
    out = dict(batch)
    mask = F.pad(batch["behavior_mask"], (extra, 0), value=False)
    out["behavior_mask"] = mask
    for f in HISTORY_FIELDS:
        junk = torch.randint(1, vocab[f], mask.shape, generator=g)
        out[f"behavior_{f}"] = torch.where(mask, F.pad(batch[f"behavior_{f}"], (extra, 0)), junk)
    gap = torch.randint(1, 10**6, mask.shape, generator=g)
    out["behavior_time_gap"] = torch.where(mask, F.pad(batch["behavior_time_gap"], (extra, 0)), gap)
    return out


@pytest.fixture(scope="module")
def batch(tiny_batch) -> dict[str, torch.Tensor]:
    """64 samples: every sample with pads in its L = 20 window, then full ones."""
    short = torch.argsort((tiny_batch["behavior_length"] == 20).to(torch.int8), stable=True)
    return subset(tiny_batch, short[:64])


# --- transformer encoder ---------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_outputs_at_real_positions_ignore_left_padding(causal):
    torch.manual_seed(0)
    encoder = TransformerEncoder(16, n_layers=2, n_heads=4, causal=causal).eval()
    real = torch.randn(4, 8, 16)
    lengths = [5, 8, 1, 0]
    x8, m8 = left_padded(real, lengths, 8)
    x16, m16 = left_padded(real, lengths, 16)
    with torch.no_grad():
        out8, out16 = encoder(x8, m8), encoder(x16, m16)
    assert out8[m8].shape == (sum(lengths), 16)
    torch.testing.assert_close(out8[m8], out16[m16], atol=1e-5, rtol=1e-5)
    assert (out16[~m16] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_causal_attention_blocks_the_future(causal):
    torch.manual_seed(0)
    encoder = TransformerEncoder(16, n_heads=4, causal=causal).eval()
    x = torch.randn(2, 8, 16)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, :2] = False
    later = x.clone()
    later[:, 6] += 1.0  # change a later token
    with torch.no_grad():
        out, out_later = encoder(x, mask), encoder(later, mask)
    assert not torch.allclose(out[:, 6:], out_later[:, 6:])
    earlier_same = torch.allclose(out[:, :6], out_later[:, :6], atol=1e-6)
    assert earlier_same == causal  # full attention lets earlier positions see it


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_all_masked_rows_are_finite_forward_and_backward(causal):
    torch.manual_seed(0)
    encoder = TransformerEncoder(16, n_heads=4, causal=causal).train()
    x = torch.randn(3, 6, 16, requires_grad=True)
    mask = torch.tensor([[False] * 6, [False, False, False, True, True, True], [True] * 6])
    visible = visible_keys(mask, causal)  # (B, L, L)
    assert visible.any(dim=-1).all()  # no softmax row is all -inf, whatever the SDPA back-end
    assert not (visible & mask[:, :, None] & ~mask[:, None, :]).any()  # real queries see no pad
    out = encoder(x, mask)
    assert torch.isfinite(out).all()
    assert (out[0] == 0).all()
    (out.square().sum() + out.sum()).backward()
    grads = [x.grad] + [p.grad for p in encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert x.grad[2].abs().sum() > 0


# --- DIN ---------------------------------------------------------------------------------------------


def test_din_weights_are_zero_at_pads_and_pooling_ignores_pad_tokens(tiny_dataset, batch):
    torch.manual_seed(0)
    model = build_model(SMALL["din"], tiny_dataset.meta).eval()
    junk = junk_pads(batch, 0, tiny_dataset.meta["vocab_sizes"])
    with torch.no_grad():
        tokens, query, mask = model.tokens(batch)
        pooled, weights = model.attention(query, tokens, mask)
        junk_tokens, _, _ = model.tokens(junk)
        junk_pooled, junk_weights = model.attention(query, junk_tokens, mask)
    assert (~mask).any() and (junk_tokens[~mask] != 0).any()  # the pads really hold other tokens
    assert (weights[~mask] == 0).all() and (junk_weights[~mask] == 0).all()
    assert (weights[mask] != 0).all()
    torch.testing.assert_close(junk_pooled, pooled)
    expected = torch.stack([weights[b, mask[b]] @ tokens[b, mask[b]] for b in range(len(mask))])
    torch.testing.assert_close(pooled, expected)


def test_din_empty_history_pools_to_zeros(tiny_dataset, batch):
    model = build_model(SMALL["din"], tiny_dataset.meta).eval()
    with torch.no_grad():
        tokens, query, mask = model.tokens(empty_history(batch, 0))
        pooled, _ = model.attention(query, tokens, mask)
    assert (pooled[0] == 0).all() and (pooled[1] != 0).any()


# --- both models ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bst", "din"])
def test_default_config_builds_and_scores(tiny_dataset, batch, name):
    model = build_model({"name": name}, tiny_dataset.meta).eval()
    with torch.no_grad():
        logit = model(subset(batch, torch.arange(8))).logit
    assert logit.shape == (8,) and torch.isfinite(logit).all()


@pytest.mark.parametrize("name", ["bst", "din"])
def test_adam_steps_reduce_the_loss_on_a_fixed_batch(tiny_dataset, batch, name):
    torch.manual_seed(0)
    model = build_model(SMALL[name], tiny_dataset.meta)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(model(batch).logit, batch["label"])

    with torch.no_grad():
        before = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.5 * before


@pytest.mark.parametrize("name", ["bst", "din"])
def test_empty_history_gives_a_finite_logit_and_gradients(tiny_dataset, batch, name):
    torch.manual_seed(0)
    model = build_model(SMALL[name], tiny_dataset.meta).train()
    emptied = empty_history(subset(batch, torch.arange(8)), 0)
    logit = model(emptied).logit
    assert torch.isfinite(logit).all()
    logit.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["bst", "din"])
def test_logits_ignore_pad_content_and_extra_left_padding(tiny_dataset, batch, name):
    torch.manual_seed(0)
    model = build_model(SMALL[name], tiny_dataset.meta).eval()
    padded = junk_pads(batch, 7, tiny_dataset.meta["vocab_sizes"])
    with torch.no_grad():
        torch.testing.assert_close(model(padded).logit, model(batch).logit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_bst_causal_changes_the_logit_only_beyond_one_layer(tiny_dataset, batch, n_layers):
    torch.manual_seed(0)
    full = build_model({**SMALL["bst"], "n_layers": n_layers}, tiny_dataset.meta).eval()
    causal = build_model({**SMALL["bst"], "n_layers": n_layers, "causal": True}, tiny_dataset.meta).eval()
    causal.load_state_dict(full.state_dict())
    with torch.no_grad():
        same = torch.allclose(full(batch).logit, causal(batch).logit, atol=1e-6)
    assert same == (n_layers == 1)  # the target is last, so it sees the whole history either way


def test_bst_rejects_heads_that_do_not_divide_hidden(tiny_dataset):
    with pytest.raises(MDAFError, match="n_heads"):
        build_model({"name": "bst", "hidden": 30, "n_heads": 8}, tiny_dataset.meta)
