"""Static-branch models: DCNv3 / DCNv2 layers against hand formulas, the losses, history mean
pooling, and the four standalone baselines (build from the registry, learn one batch)."""
from __future__ import annotations

import math

import pytest
import torch

from common.errors import MDAFError
from models.layers.embedding import FeatureEmbedding
from models.layers.history_pooling import HistoryMeanPool, masked_mean
from models.losses import bce_with_logits, model_loss, smooth_targets, tri_bce
from models.layers.dcnv2 import CrossNetV2, DCNv2, DCNv2Config
from models.layers.dcnv3 import CrossNetworkV3, DCNv3, DCNv3Config, SelfMaskCross
from models.layers.mlp import MLPConfig
from models.output import ModelOutput
from models.registry import build_model


def hand_self_mask(x: torch.Tensor, w: torch.Tensor, dim: int) -> torch.Tensor:
    """c = [h, h * ReLU((h - mean) / sqrt(var + 1e-5))][:dim] with h = x W^T (LayerNorm at init)."""
    h = x @ w.T
    normed = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
    return torch.cat([h, h * torch.clamp(normed, min=0.0)], dim=-1)[:, :dim]


# ---- DCNv3 ---------------------------------------------------------------------------------------

def test_dcnv3_shapes():
    torch.manual_seed(0)
    out = DCNv3(12, DCNv3Config())(torch.randn(5, 12))
    assert out.h_ecn.shape == out.h_lcn.shape == (5, 12)
    assert out.logit_ecn.shape == out.logit_lcn.shape == (5,)


@pytest.mark.parametrize("dim", [6, 5])
def test_self_mask_is_relu_of_layernorm(dim):
    torch.manual_seed(1)
    layer = SelfMaskCross(dim)
    x = torch.randn(4, dim)
    c = layer(x)
    assert layer.w.weight.shape == (math.ceil(dim / 2), dim)
    assert c.shape == (4, dim)
    torch.testing.assert_close(c, hand_self_mask(x, layer.w.weight, dim))
    h = x @ layer.w.weight.T
    assert (c[:, h.shape[1]:] == 0).any()  # the mask really drops entries


def test_self_mask_without_layernorm_is_relu_of_h():
    torch.manual_seed(2)
    layer = SelfMaskCross(4, layer_norm=False)
    x = torch.randn(3, 4)
    h = x @ layer.w.weight.T
    torch.testing.assert_close(layer(x), torch.cat([h, h * torch.relu(h)], dim=-1))


@pytest.mark.parametrize("exponential", [True, False])
def test_ecn_and_lcn_layers_match_hand_computation(exponential):
    torch.manual_seed(3)
    net = CrossNetworkV3(4, n_layers=2, dropout=0.0, layer_norm=True, exponential=exponential).eval()
    x1 = torch.randn(3, 4)
    (w1, w2), (b1, b2) = [c.w.weight for c in net.cross], list(net.bias)
    x2 = x1 * (hand_self_mask(x1, w1, 4) + b1) + x1
    # ECN multiplies by x_l (order doubles); LCN by x_1 (order grows by one)
    x3 = (x2 if exponential else x1) * (hand_self_mask(x2, w2, 4) + b2) + x2
    h, logit = net(x1)
    torch.testing.assert_close(h, x3)
    torch.testing.assert_close(logit, x3 @ net.head.weight[0] + net.head.bias[0])


@pytest.mark.parametrize("n_layers", [1, 2])
def test_ecn_and_lcn_agree_only_on_the_first_layer(n_layers):
    torch.manual_seed(4)
    ecn = CrossNetworkV3(6, n_layers, 0.0, True, exponential=True).eval()
    lcn = CrossNetworkV3(6, n_layers, 0.0, True, exponential=False).eval()
    lcn.load_state_dict(ecn.state_dict())
    x = torch.randn(3, 6)
    same = torch.allclose(ecn(x)[0], lcn(x)[0])
    assert same == (n_layers == 1)  # x_l = x_1 in the first layer only


def test_cross_bias_initialised_uniform_0_1():
    torch.manual_seed(5)
    model = DCNv3(1000, DCNv3Config())
    biases = [*model.ecn.bias, *model.lcn.bias]
    assert len(biases) == 3 + 4
    for b in biases:
        assert b.min() >= 0.0 and b.max() <= 1.0
        assert 0.45 < b.mean().item() < 0.55 and b.std().item() > 0.25  # U(0,1): std 0.289


def test_dropout_follows_each_layer():
    torch.manual_seed(6)
    net = CrossNetworkV3(4, 1, dropout=1.0, layer_norm=True, exponential=True)
    x = torch.randn(3, 4)
    assert torch.all(net.train()(x)[0] == 0)
    assert torch.any(net.eval()(x)[0] != 0)


# ---- DCNv2 ---------------------------------------------------------------------------------------

def test_dcnv2_cross_matches_hand_formula():
    torch.manual_seed(7)
    net = CrossNetV2(4, 2)
    x0 = torch.randn(3, 4)
    (l1, l2) = net.layers
    x1 = x0 * (x0 @ l1.weight.T + l1.bias) + x0
    x2 = x0 * (x1 @ l2.weight.T + l2.bias) + x1
    torch.testing.assert_close(net(x0), x2)
    assert l1.weight.shape == (4, 4)


def test_dcnv2_stacked_and_parallel_widths():
    torch.manual_seed(8)
    x = torch.randn(3, 10)
    stacked = DCNv2(10, DCNv2Config(structure="stacked", mlp=MLPConfig(hidden=[8, 6], dropout=0.0)))
    parallel = DCNv2(10, DCNv2Config(structure="parallel", mlp=MLPConfig(hidden=[8, 6], dropout=0.0)))
    assert stacked.out_dim == 6 and stacked(x).shape == (3, 6)
    assert parallel.out_dim == 16 and parallel(x).shape == (3, 16)
    torch.testing.assert_close(parallel(x)[:, :10], parallel.cross(x))
    torch.testing.assert_close(stacked.eval()(x), stacked.dnn(stacked.cross(x)))
    with pytest.raises(MDAFError, match="structure"):
        DCNv2Config(structure="sideways")


# ---- losses --------------------------------------------------------------------------------------

def hand_bce(logits: list[float], targets: list[float]) -> float:
    total = 0.0
    for z, y in zip(logits, targets):
        p = 1.0 / (1.0 + math.exp(-z))
        total -= y * math.log(p) + (1.0 - y) * math.log(1.0 - p)
    return total / len(logits)


def test_label_smoothing_targets():
    torch.testing.assert_close(smooth_targets(torch.tensor([0.0, 1.0]), 0.05), torch.tensor([0.025, 0.975]))
    logit = torch.tensor([0.3, -1.2])
    y = torch.tensor([1.0, 0.0])
    expected = hand_bce([0.3, -1.2], [0.975, 0.025])
    assert bce_with_logits(logit, y, 0.05).item() == pytest.approx(expected, rel=1e-6)
    assert bce_with_logits(logit, y).item() == pytest.approx(hand_bce([0.3, -1.2], [1.0, 0.0]), rel=1e-6)


def test_tri_bce_formula_on_hand_numbers():
    y = [1.0, 0.0, 1.0]
    main, worse, better = [0.5, -0.5, 1.0], [-0.2, 0.4, 0.1], [2.0, -2.0, 3.0]
    L, Lw, Lb = hand_bce(main, y), hand_bce(worse, y), hand_bce(better, y)
    assert Lw > L > Lb
    got = tri_bce(torch.tensor(main), {"w": torch.tensor(worse), "b": torch.tensor(better)}, torch.tensor(y))
    assert got.item() == pytest.approx(L + (Lw - L) * Lw + 0.0 * Lb, rel=1e-6)


def test_tri_bce_with_smoothing_uses_smoothed_targets_everywhere():
    y, s = [1.0, 0.0], 0.05
    ys = [1 - s / 2, s / 2]
    main, aux = [0.5, -0.5], [-0.3, 0.2]
    L, La = hand_bce(main, ys), hand_bce(aux, ys)
    got = tri_bce(torch.tensor(main), {"a": torch.tensor(aux)}, torch.tensor(y), smoothing=s)
    assert got.item() == pytest.approx(L + max(0.0, La - L) * La, rel=1e-6)


def test_tri_bce_weight_detached_by_default():
    y = torch.tensor([1.0, 0.0, 1.0])
    aux = {"a": torch.tensor([-0.2, 0.4, 0.1])}
    grads = {}
    for detach in (True, False):
        logit = torch.tensor([0.5, -0.5, 1.0], requires_grad=True)
        tri_bce(logit, aux, y, detach_weights=detach).backward()
        grads[detach] = logit.grad
    plain = torch.tensor([0.5, -0.5, 1.0], requires_grad=True)
    bce_with_logits(plain, y).backward()
    torch.testing.assert_close(grads[True], plain.grad)  # w_k is a constant: only L reaches the logit
    assert not torch.allclose(grads[False], plain.grad)  # the authors' code: -L_k dL flows as well


def test_model_loss_adds_aux_terms_and_refuses_missing_heads():
    y = torch.tensor([1.0, 0.0, 1.0])
    out = ModelOutput(logit=torch.tensor([0.5, -0.5, 1.0]), aux_logits={"ecn": torch.tensor([-0.2, 0.4, 0.1])})
    with_aux = model_loss(out, y, 0.05, "tri_bce")
    torch.testing.assert_close(with_aux, tri_bce(out.logit, out.aux_logits, y, 0.05))
    assert with_aux > model_loss(out, y, 0.05, "none")
    torch.testing.assert_close(model_loss(out, y, 0.05, "none"), bce_with_logits(out.logit, y, 0.05))
    with pytest.raises(MDAFError, match="aux_logits"):
        model_loss(ModelOutput(logit=out.logit), y, 0.0, "tri_bce")
    with pytest.raises(MDAFError, match="aux_loss"):
        model_loss(out, y, 0.0, "focal")


# ---- history mean pooling ------------------------------------------------------------------------

def test_history_mean_pool_ignores_pads_and_zeros_empty_histories():
    torch.manual_seed(9)
    meta = {"timelines": {"behavior": {"fields": {"cate": "cate", "btag": "btag"}}}}
    emb = FeatureEmbedding({"cate": 10, "btag": 5}, ["cate", "btag"], dim=3, dims={"btag": 2})
    pool = HistoryMeanPool(emb, meta, "behavior")
    mask = torch.tensor([[False, True, True], [False, False, False], [True, True, True]])
    # a non-zero index under a False mask must not count (position 0 of row 0)
    cate = torch.tensor([[7, 2, 5], [0, 0, 0], [1, 1, 4]])
    btag = torch.tensor([[3, 1, 2], [0, 0, 0], [4, 4, 4]])
    cate_out, btag_out = pool.embed({"behavior_cate": cate, "behavior_btag": btag, "behavior_mask": mask})
    table = emb.tables["cate"].weight
    torch.testing.assert_close(cate_out[0], (table[2] + table[5]) / 2)
    torch.testing.assert_close(cate_out[1], torch.zeros(3))
    torch.testing.assert_close(cate_out[2], (2 * table[1] + table[4]) / 3)
    assert btag_out.shape == (3, 2)
    torch.testing.assert_close(btag_out[0], (emb.tables["btag"].weight[1] + emb.tables["btag"].weight[2]) / 2)
    assert pool.width == 5


def test_masked_mean_on_real_batch(tiny_batch):
    mask, lengths = tiny_batch["behavior_mask"], tiny_batch["behavior_length"]
    values = torch.randn(*mask.shape, 4)
    got = masked_mean(values, mask)
    partial = torch.nonzero((lengths > 0) & (lengths < mask.shape[1])).flatten()
    assert len(partial) > 0  # the batch has padded windows to check against
    for i in partial[:5].tolist():
        n = int(lengths[i])
        torch.testing.assert_close(got[i], values[i, -n:].mean(0))  # left-padded: real positions last
    assert got.shape == (mask.shape[0], 4)


# ---- standalone models ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dcnv3", "dcnv2", "dnn", "autoint"])
def test_standalone_model_builds_and_learns_a_batch(name, tiny_dataset, tiny_batch):
    torch.manual_seed(10)
    model = build_model({"name": name}, tiny_dataset.meta)
    y = tiny_batch["label"]
    out = model(tiny_batch)
    assert out.logit.shape == y.shape and torch.isfinite(out.logit).all()
    aux_loss = "tri_bce" if name == "dcnv3" else "none"
    if name == "dcnv3":
        assert set(out.aux_logits) == {"ecn", "lcn"}
        torch.testing.assert_close(out.logit, (out.aux_logits["ecn"] + out.aux_logits["lcn"]) / 2)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return model_loss(model(tiny_batch), y, 0.05, aux_loss).item()

    before = eval_loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        opt.zero_grad()
        model_loss(model(tiny_batch), y, 0.05, aux_loss).backward()
        opt.step()
    # beyond the click rate: below the loss of the best constant prediction on this batch
    rate = smooth_targets(y, 0.05).mean()
    best_constant = bce_with_logits(torch.logit(rate).expand_as(y), y, 0.05).item()
    after = eval_loss()
    assert after < before and after < 0.9 * best_constant


def test_field_selection_and_timeline_switch(tiny_dataset, tiny_batch):
    no_history = build_model({"name": "dnn", "fields": ["item", "cate"], "timeline": None}, tiny_dataset.meta)
    assert no_history.inputs.width == 2 * 16 and no_history.inputs.n_fields == 2
    with_history = build_model({"name": "dcnv2", "fields": ["item"], "embedding": {"dim": 8}}, tiny_dataset.meta)
    assert with_history.inputs.n_fields == 1 + 3  # item + pooled behaviour cate, brand, btag
    assert with_history.inputs.flat(tiny_batch).shape == (tiny_batch["label"].shape[0], 4 * 8)
    # the pooled history shares the candidate's tables: one table per space
    assert set(with_history.inputs.embedding.tables) == {"item", "cate", "brand", "btag"}
    with pytest.raises(MDAFError, match="timeline"):
        build_model({"name": "dnn", "timeline": "nope"}, tiny_dataset.meta)


def test_autoint_refuses_per_space_widths(tiny_dataset):
    with pytest.raises(MDAFError, match="one width"):
        build_model({"name": "autoint", "embedding": {"dims": {"item": 32}}}, tiny_dataset.meta)
