"""Unit tests of the training recipe: LR schedule, label smoothing, metrics, early stopping,
AdamW parameter groups, device choice and the experiment-config loader."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn

from common.errors import MDAFError
from models.losses import bce_with_logits, model_loss, smooth_targets
from models.registry import build_model
from training.config import load_experiment
from training.device import resolve_device
from training.early_stopping import EarlyStopping
from training.calibration import Calibration, expected_calibration_error, fit_platt, reliability
from training.metrics import group_auc, oracle_metrics, split_metrics
from training.optim import adamw
from training.schedule import lr_factor, warmup_cosine


# --- training/schedule.py -------------------------------------------------------------------

# T = 41 steps, W = 10 warm-up steps, a = 0.5, r = 0.1: the cosine runs over T - 1 - W = 30 steps.
T, W, A, R = 41, 10, 0.5, 0.1


def f(step: int) -> float:
    return lr_factor(step, T, W, A, R)


def test_lr_factor_hand_values():
    assert f(0) == pytest.approx(0.5, abs=1e-12)                   # a
    assert f(5) == pytest.approx(0.75, abs=1e-12)                  # a + (1 - a) 5 / 10
    assert f(W) == pytest.approx(1.0, abs=1e-12)                   # top of the warm-up
    assert f(W + 15) == pytest.approx(0.1 + 0.9 / 2, abs=1e-12)    # cosine midpoint: r + (1 - r) / 2
    # a third of the way down: r + (1 - r) (1 + cos(pi / 3)) / 2 = 0.1 + 0.9 * 0.75
    assert f(W + 10) == pytest.approx(0.775, abs=1e-12)
    assert f(T - 1) == pytest.approx(0.1, abs=1e-12)               # r at the last step
    assert f(T + 5) == pytest.approx(0.1, abs=1e-12)               # stays at r past the end


def test_lr_factor_rises_then_falls():
    values = [f(t) for t in range(T)]
    warm, decay = values[:W + 1], values[W:]
    assert all(b > a for a, b in zip(warm, warm[1:]))
    assert all(b < a for a, b in zip(decay, decay[1:]))
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == W


def sgd_over(param: nn.Parameter, lr: float = 1e-3) -> torch.optim.Optimizer:
    return torch.optim.SGD([param], lr=lr)


def lrs_of(scheduler, optimizer, steps: int) -> list[float]:
    """The learning rate each of `steps` optimiser steps runs with (scheduler stepped per batch)."""
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_cosine_drives_an_optimizer():
    param = nn.Parameter(torch.zeros(2))
    opt = sgd_over(param)
    sched = warmup_cosine(opt, steps_per_epoch=10, epochs=5, warmup_epochs=2, warmup_start=0.5, final_ratio=0.1)
    assert sched.get_last_lr()[0] == pytest.approx(5e-4, rel=1e-12)    # before the first step
    lrs = lrs_of(sched, opt, 50)
    assert lrs[0] == pytest.approx(5e-4, rel=1e-12)
    assert lrs[10] == pytest.approx(7.5e-4, rel=1e-12)
    assert lrs[20] == pytest.approx(1e-3, rel=1e-12)
    assert lrs[49] == pytest.approx(1e-4, rel=1e-12)                     # the last step of epoch 5
    assert min(lrs) == pytest.approx(1e-4, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-9)    # after the 50th step: clamped at r


def test_warmup_cosine_without_warmup_starts_at_full_lr():
    assert lr_factor(0, 20, 0, 0.5, 0.1) == pytest.approx(1.0)
    param = nn.Parameter(torch.zeros(2))
    opt = sgd_over(param)
    sched = warmup_cosine(opt, steps_per_epoch=4, epochs=5, warmup_epochs=0, warmup_start=0.5, final_ratio=0.2)
    lrs = lrs_of(sched, opt, 20)
    assert lrs[0] == pytest.approx(1e-3, rel=1e-12)
    assert lrs[19] == pytest.approx(2e-4, rel=1e-12)
    assert all(b < a for a, b in zip(lrs, lrs[1:]))


def test_warmup_cosine_when_warmup_fills_the_run():
    """warmup_epochs beyond epochs: the warm-up is cut to the T steps, with no division by zero."""
    param = nn.Parameter(torch.zeros(2))
    opt = sgd_over(param)
    sched = warmup_cosine(opt, steps_per_epoch=5, epochs=2, warmup_epochs=4, warmup_start=0.5, final_ratio=0.1)
    lrs = lrs_of(sched, opt, 10)
    # W = min(20, 10) = 10: f(t) = 0.5 + 0.5 t / 10 over the whole run
    assert lrs == pytest.approx([1e-3 * (0.5 + 0.05 * t) for t in range(10)], rel=1e-12)
    # T == W given directly: warm-up over every step, then r
    assert lr_factor(9, 10, 10, 0.5, 0.1) == pytest.approx(0.95)
    assert lr_factor(10, 10, 10, 0.5, 0.1) == pytest.approx(0.1)


# --- models/losses.py ----------------------------------------------------------------------

def test_smooth_targets():
    out = smooth_targets(torch.tensor([0, 1, 1, 0]), 0.05)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([0.025, 0.975, 0.975, 0.025]), atol=1e-7)
    assert torch.equal(smooth_targets(torch.tensor([0, 1]), 0.0), torch.tensor([0.0, 1.0]))


def test_bce_with_logits_with_smoothing_matches_hand_value():
    logit = torch.tensor([2.0, -1.0, 0.5])
    target = torch.tensor([1, 0, 0])
    s = 0.1
    expected = 0.0
    for z, y in zip([2.0, -1.0, 0.5], [1, 0, 0]):
        y_s = y * (1 - s) + s / 2
        p = 1 / (1 + math.exp(-z))
        expected -= y_s * math.log(p) + (1 - y_s) * math.log(1 - p)
    expected /= 3
    assert bce_with_logits(logit, target, s).item() == pytest.approx(expected, rel=1e-6)
    # the smoothing matters: the unsmoothed loss differs
    assert bce_with_logits(logit, target, 0.0).item() != pytest.approx(expected, rel=1e-3)


# --- training/metrics.py -------------------------------------------------------------------

def test_platt_scaling_recovers_a_known_map():
    """Labels drawn from sigma(2 z - 1): the fitted (a, b) is near (2, -1), and it is the logloss
    minimum (no nearby pair does better)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=200_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(2 * z - 1)))).astype(np.int64)
    cal = fit_platt(z, y)
    assert cal.a == pytest.approx(2.0, abs=0.03) and cal.b == pytest.approx(-1.0, abs=0.03)
    best = log_loss(y, cal(z))
    for da, db in ((0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)):
        assert log_loss(y, Calibration(cal.a + da, cal.b + db)(z)) > best


def test_platt_scaling_of_a_collapsed_model_stays_finite():
    """Before: the logits of a collapsed DNN on the real UserBehavior sample varied by ~1e-6, and
    Newton's method walked the flat ridge to a = 1.3e13, so every test prediction became 0 or 1
    (calibrated logloss 0.46 against 0.157 raw). Now a stays near 1 and p near the click rate."""
    rng = np.random.default_rng(1)
    z = -5.3 + 1e-6 * rng.normal(size=20_000)
    y = (rng.random(z.size) < 0.03).astype(np.int64)
    cal = fit_platt(z, y)
    assert abs(cal.a) < 10
    fresh = -5.3 + 1e-6 * rng.normal(size=20_000)
    assert cal(fresh).mean() == pytest.approx(y.mean(), rel=1e-3)
    assert log_loss(y, cal(z)) < log_loss(y, Calibration()(z))


def test_calibration_never_clips_rare_clicks():
    """Before: with label smoothing s, p = (sigma - s/2)/(1 - s) sent every logit below
    logit(s/2) to zero. The fitted map keeps them apart and positive."""
    z = np.array([-9.0, -6.0, -4.5, -3.7])  # all below logit(0.025) = -3.66
    p = Calibration(1.2, 0.4)(z)
    assert np.all(p > 0) and np.all(np.diff(p) > 0)
    assert Calibration()(np.array([0.0]))[0] == 0.5 and fit_platt(z, np.zeros(4)) == Calibration()


def test_expected_calibration_error_by_hand():
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.6, 0.8])
    y = np.array([0, 0, 1, 0, 1, 1])
    # 3 equal-mass bins: {0.1, 0.1} rate 0, {0.2, 0.2} rate 0.5, {0.6, 0.8} rate 1
    expected = (2 * 0.1 + 2 * 0.3 + 2 * 0.3) / 6
    assert expected_calibration_error(p, y, bins=3) == pytest.approx(expected, abs=1e-12)
    assert reliability(p, y, bins=3) == [(2, pytest.approx(0.1), 0.0), (2, pytest.approx(0.2), 0.5),
                                         (2, pytest.approx(0.7), 1.0)]


def naive_group_auc(user, label, score) -> float:
    total, weight = 0.0, 0
    for u in np.unique(user):
        mask = user == u
        if len(np.unique(label[mask])) < 2:
            continue
        total += mask.sum() * roc_auc_score(label[mask], score[mask])
        weight += mask.sum()
    return total / weight


def test_group_auc_hand_example():
    user = np.array([1, 1, 1, 2, 2, 3, 3])
    label = np.array([1, 0, 0, 0, 1, 1, 1])
    score = np.array([0.9, 0.1, 0.9, 0.2, 0.1, 0.5, 0.4])
    # user 1: the click beats 0.1 and ties 0.9 -> 0.75; user 2: 0; user 3: clicks only, skipped
    assert group_auc(user, label, score) == pytest.approx((3 * 0.75 + 2 * 0.0) / 5, abs=1e-12)


def test_group_auc_matches_naive_loop_with_ties():
    rng = np.random.default_rng(0)
    n = 600
    user = rng.integers(0, 40, n)
    label = (rng.random(n) < 0.3).astype(np.int64)
    score = np.round(rng.random(n) + 0.3 * label, 1)            # many ties
    label[user == 0] = 0                                          # single-class users
    label[user == 1] = 1
    assert len(np.unique(score)) < 20
    expected = naive_group_auc(user, label, score)
    assert group_auc(user, label, score) == pytest.approx(expected, abs=1e-12)
    # not the plain AUC of the pooled samples
    assert abs(expected - roc_auc_score(label, score)) > 1e-6


def test_group_auc_nan_without_mixed_users():
    user = np.array([1, 1, 2, 2, 3])
    label = np.array([1, 1, 0, 0, 1])
    assert math.isnan(group_auc(user, label, np.array([0.1, 0.2, 0.3, 0.4, 0.5])))


def test_split_metrics():
    rng = np.random.default_rng(1)
    n = 400
    label = (rng.random(n) < 0.25).astype(np.int64)
    logit = rng.normal(size=n) + label
    user = rng.integers(0, 30, n)
    calibration = Calibration(0.8, -0.3)
    out = split_metrics(label, logit, user, calibration)
    assert set(out) == {"auc", "logloss", "gauc", "mean_pred", "ece", "ctr", "n"}
    assert out["auc"] == pytest.approx(roc_auc_score(label, logit), abs=1e-12)
    p = 1 / (1 + np.exp(-(0.8 * logit - 0.3)))
    assert out["logloss"] == pytest.approx(log_loss(label, p), abs=1e-12)
    assert out["gauc"] == pytest.approx(naive_group_auc(user, label, logit), abs=1e-12)
    assert out["mean_pred"] == pytest.approx(p.mean(), abs=1e-12)
    assert out["ece"] == pytest.approx(expected_calibration_error(p, label), abs=1e-12)
    assert out["ctr"] == pytest.approx(label.mean(), abs=1e-12)
    assert out["n"] == n
    assert split_metrics(label, logit, user)["mean_pred"] == pytest.approx((1 / (1 + np.exp(-logit))).mean())
    assert math.isnan(split_metrics(np.zeros(5, dtype=int), logit[:5], user[:5])["auc"])


def test_oracle_metrics():
    rng = np.random.default_rng(2)
    p = rng.random(300)
    label = (rng.random(300) < p).astype(np.int64)
    out = oracle_metrics(label, p.astype(np.float32))
    assert set(out) == {"auc", "logloss"}
    assert out["auc"] == pytest.approx(roc_auc_score(label, p), abs=1e-12)
    assert out["logloss"] == pytest.approx(log_loss(label, p.astype(np.float32).astype(np.float64)), abs=1e-9)
    # certain probabilities are clipped, so a perfect oracle has a tiny, finite logloss
    perfect = oracle_metrics(np.array([1, 0]), np.array([1.0, 0.0]))
    assert perfect["auc"] == 1.0
    assert 0 < perfect["logloss"] == pytest.approx(-math.log(1 - 1e-7), rel=1e-6)


# --- training/early_stopping.py ------------------------------------------------------------

def test_early_stopping_sequence():
    stop = EarlyStopping(patience=2, min_delta=0.125)
    steps = [  # value, new best?, status, should_stop, best after
        (0.5, True, "best", False, 0.5),
        (0.625, False, "no gain 1/2", False, 0.5),    # best + min_delta exactly: not a gain
        (0.6, False, "no gain 2/2", True, 0.5),
        (0.75, True, "best", False, 0.75),            # a real gain resets the counter
        (0.8, False, "no gain 1/2", False, 0.75),     # gain 0.05 < min_delta
        (0.85, False, "no gain 2/2", True, 0.75),     # measured against best, not the last value
    ]
    for epoch, (value, improved, status, should_stop, best) in enumerate(steps, 1):
        assert stop.update(value, epoch, 10 * epoch) is improved, epoch
        assert stop.status() == status, epoch
        assert stop.should_stop is should_stop, epoch
        assert stop.best == best, epoch
    assert stop.best_epoch == 4 and stop.best_step == 40 and stop.bad_evaluations == 2


def test_early_stopping_state_round_trip():
    stop = EarlyStopping(patience=3, min_delta=0.01)
    for epoch, value in enumerate([0.6, 0.7, 0.705], 1):
        stop.update(value, epoch, 10 * epoch)
    state = stop.state_dict()
    assert state == {"patience": 3, "min_delta": 0.01, "best": 0.7, "best_epoch": 2, "best_step": 20,
                     "bad_evaluations": 1}
    restored = EarlyStopping(patience=1, min_delta=0.5)
    restored.load_state_dict(yaml.safe_load(yaml.safe_dump(state)))
    assert restored == stop
    for epoch, value in [(4, 0.703), (5, 0.702)]:
        assert restored.update(value, epoch, 10 * epoch) is stop.update(value, epoch, 10 * epoch) is False
    assert restored.should_stop and stop.should_stop and restored.status() == "no gain 3/3"


# --- training/optim.py ---------------------------------------------------------------------

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)
        self.lin = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.flagged = nn.Parameter(torch.randn(3, 3))
        self.flagged._no_weight_decay = True
        self.frozen = nn.Parameter(torch.randn(3, 3), requires_grad=False)


def group_names(model: nn.Module, opt: torch.optim.Optimizer) -> list[set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [{names[id(p)] for p in g["params"]} for g in opt.param_groups]


def test_adamw_groups_on_a_small_model():
    model = Small()
    assert torch.equal(model.emb.weight[0], torch.zeros(4))
    opt = adamw(model, lr=0.1, weight_decay=0.5, betas=[0.8, 0.9])
    assert isinstance(opt, torch.optim.AdamW)
    decay, exempt = group_names(model, opt)
    assert decay == {"emb.weight", "lin.weight"}
    assert exempt == {"lin.bias", "norm.weight", "norm.bias", "flagged"}
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]
    assert all(g["lr"] == 0.1 and tuple(g["betas"]) == (0.8, 0.9) for g in opt.param_groups)

    # with zero gradients Adam's step is zero, so only the decoupled decay moves a weight:
    # p <- p (1 - lr wd) in the decay group, unchanged in the exempt group (and the pad row stays 0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if name in decay else 1.0
        assert torch.allclose(p, before[name] * factor, rtol=1e-6, atol=0), name
    assert torch.equal(model.emb.weight[0], torch.zeros(4))


@pytest.fixture(scope="module")
def mdaf_model(tiny_dataset):
    with open("configs/model/mdaf.yaml") as fh:
        cfg = yaml.safe_load(fh)
    torch.manual_seed(0)
    return build_model(cfg, tiny_dataset.meta)


def test_adamw_embedding_tables_at_their_own_rate():
    model = Small()
    opt = adamw(model, lr=0.1, weight_decay=0.5, betas=[0.8, 0.9], embedding_lr_scale=0.25)
    decay, exempt, tables = group_names(model, opt)
    assert decay == {"lin.weight"} and tables == {"emb.weight"} and "flagged" in exempt
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1, 0.025]
    assert opt.param_groups[2]["weight_decay"] == 0.5


def test_embedding_l2_penalises_the_rows_a_batch_reads():
    from models.layers.embedding import FeatureEmbedding
    from training.regularization import EmbeddingL2

    layer = FeatureEmbedding({"item": 6}, ["item"], 2)
    with torch.no_grad():
        layer.tables["item"].weight.copy_(torch.arange(12.0).view(6, 2))
        layer.tables["item"].weight[0].zero_()
    l2 = EmbeddingL2(layer, weight=0.5)
    layer("item", torch.tensor([2, 3]))              # (B,): rows (4, 5) and (6, 7)
    layer("item", torch.tensor([[0, 1], [0, 5]]))    # (B, L): pads embed to zero
    expected = 0.5 * ((41 + 85) / 2 + (13 + 221) / 2)
    assert l2.penalty().item() == pytest.approx(expected)
    assert l2.penalty() == 0  # collected terms are used once
    layer.eval()
    layer("item", torch.tensor([2]))
    assert l2.penalty() == 0  # evaluation reads nothing into the penalty


def test_adamw_exempts_mamba_parameters(mdaf_model):
    opt = adamw(mdaf_model, lr=1e-3, weight_decay=0.1, betas=[0.9, 0.999])
    decay, exempt = group_names(mdaf_model, opt)
    named = dict(mdaf_model.named_parameters())
    assert not decay & exempt and decay | exempt == {n for n, p in named.items() if p.requires_grad}
    special = {n for n in named if n.endswith("A_log") or n.endswith(".D")}
    assert any(n.endswith("A_log") for n in special) and any(n.endswith(".D") for n in special)
    assert special <= exempt
    assert any(named[n].ndim == 2 for n in special)     # A_log is a matrix, exempt only by its flag
    assert all(named[n].ndim >= 2 for n in decay)
    embeddings = [n + ".weight" for n, m in mdaf_model.named_modules() if isinstance(m, nn.Embedding)]
    assert embeddings and set(embeddings) <= decay


def test_adamw_keeps_padding_rows_zero(tiny_dataset, tiny_batch):
    with open("configs/model/mdaf.yaml") as fh:
        cfg = yaml.safe_load(fh)
    torch.manual_seed(0)
    model = build_model(cfg, tiny_dataset.meta)
    embeddings = {n: m for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    assert embeddings
    for name, m in embeddings.items():
        assert m.padding_idx == 0, name
        assert torch.equal(m.weight[0], torch.zeros_like(m.weight[0])), name
    before = {n: m.weight.detach().clone() for n, m in embeddings.items()}
    opt = adamw(model, lr=1e-2, weight_decay=0.1, betas=[0.9, 0.999])
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model_loss(model(tiny_batch), tiny_batch["label"], 0.05, "tri_bce").backward()
        opt.step()
    changed = 0
    for name, m in embeddings.items():
        assert torch.equal(m.weight[0], torch.zeros_like(m.weight[0])), name
        changed += int(not torch.equal(m.weight[1:], before[name][1:]))
    assert changed > 0


# --- training/device.py --------------------------------------------------------------------

def test_resolve_device_auto_and_cpu():
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_resolve_device_unknown_name():
    with pytest.raises(MDAFError, match="device") as info:
        resolve_device("tpu")
    assert "tpu" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_resolve_device_cuda_absent():
    with pytest.raises(MDAFError, match="cuda"):
        resolve_device("cuda")


# --- training/config.py --------------------------------------------------------------------

def write(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_load_experiment_train_base_merges(tmp_path):
    recipe = write(tmp_path / "recipe.yaml", {"epochs": 10, "lr": 0.002, "batch_size": 64})
    exp = write(tmp_path / "exp.yaml", {
        "model": {"name": "dnn"}, "train": {"base": recipe, "epochs": 3}, "data": {"dir": "somewhere"}})
    cfg = load_experiment(exp)
    assert cfg.experiment == "exp"
    assert cfg.model == {"name": "dnn"}
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (3, 0.002, 64)
    assert cfg.train.warmup_start == 0.5                      # a TrainConfig default
    cfg = load_experiment(exp, {"train": {"lr": 0.005}, "data": {"source": "userbehavior"}})
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (3, 0.005, 64)
    assert (cfg.data.source, cfg.data.dir) == ("userbehavior", "somewhere")


def test_load_experiment_override_keeps_train_path(tmp_path):
    recipe = write(tmp_path / "recipe.yaml", {"epochs": 10, "lr": 0.002})
    exp = write(tmp_path / "exp.yaml", {"model": {"name": "dnn"}, "train": recipe, "data": {"dir": "d"}})
    assert load_experiment(exp).train.lr == 0.002
    cfg = load_experiment(exp, {"train": {"seed": 3}})       # what training/run.py and ablation.py pass
    assert (cfg.train.seed, cfg.train.lr, cfg.train.epochs) == (3, 0.002, 10)


@pytest.mark.parametrize("data, epochs, batch_size", [
    ({}, 2, 32),
    ({"source": "taobao_ad", "synthetic": {"n_users": 50}}, 2, 32),
    ({"dir": "prepared"}, 7, 128),
    ({"raw_dir": "raw"}, 7, 128),
])
def test_load_experiment_synthetic_train(tmp_path, data, epochs, batch_size):
    exp = write(tmp_path / "exp.yaml", {
        "model": {"name": "dnn"}, "train": {"epochs": 7, "batch_size": 128}, "data": data,
        "synthetic_train": {"epochs": 2, "batch_size": 32}})
    cfg = load_experiment(exp)
    assert (cfg.train.epochs, cfg.train.batch_size) == (epochs, batch_size)


def test_load_experiment_synthetic_train_follows_overrides(tmp_path):
    exp = write(tmp_path / "exp.yaml", {
        "model": {"name": "dnn"}, "train": {"epochs": 7}, "synthetic_train": {"epochs": 2}})
    assert load_experiment(exp).train.epochs == 2
    assert load_experiment(exp, {"data": {"dir": "prepared"}}).train.epochs == 7


def test_load_experiment_unknown_train_key(tmp_path):
    exp = write(tmp_path / "exp.yaml", {"model": {"name": "dnn"}, "train": {"epochz": 3}})
    with pytest.raises(MDAFError, match="epochz"):
        load_experiment(exp)


def test_load_experiment_missing_model(tmp_path):
    exp = write(tmp_path / "exp.yaml", {"train": {"epochs": 3}})
    with pytest.raises(MDAFError, match="'model'"):
        load_experiment(exp)
