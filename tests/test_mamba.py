"""The Mamba mixer: mamba-ssm's parameter names and initialisation, exact padding, back-ends agreeing
inside the mixer, and the Mamba4Rec branch's padding invariance on real loader batches."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from data_prep.loader import BatchLoader
from models.ssm import cpu_kernels
from models.ssm.mamba import Mamba
from models.registry import build_model

# name -> shape of mamba_ssm.Mamba(d_model=32, d_state=16, d_conv=4, expand=2) (mamba_simple.py)
MAMBA_SSM_SHAPES = {
    "in_proj.weight": (128, 32),
    "conv1d.weight": (64, 1, 4),
    "conv1d.bias": (64,),
    "x_proj.weight": (2 + 32, 64),
    "dt_proj.weight": (64, 2),
    "dt_proj.bias": (64,),
    "A_log": (64, 16),
    "D": (64,),
    "out_proj.weight": (32, 64),
}


def test_parameter_names_and_shapes_match_mamba_ssm():
    shapes = {k: tuple(v.shape) for k, v in Mamba(32).state_dict().items()}
    assert shapes == MAMBA_SSM_SHAPES


def check_mamba_init(m: Mamba, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
    assert torch.equal(m.A_log.detach(), torch.log(torch.arange(1, m.d_state + 1.0)).repeat(m.d_inner, 1))
    assert torch.equal(m.D.detach(), torch.ones(m.d_inner))
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= dt_min * (1 - 1e-4) and dt.max() <= dt_max * (1 + 1e-4)
    assert dt.max() / dt.min() > 10  # spread log-uniformly, not one value (RecBole's re-init gives ~0.69 everywhere)


def test_initialisation_is_mamba_ssm():
    torch.manual_seed(0)
    m = Mamba(128)
    check_mamba_init(m)
    logs = torch.log(F.softplus(m.dt_proj.bias.detach()))
    assert abs(logs.mean().item() - (math.log(1e-3) + math.log(0.1)) / 2) < 0.3  # log-uniform centre
    bound = m.dt_rank**-0.5
    assert m.dt_proj.weight.abs().max() <= bound


@pytest.mark.parametrize("name", ["mdaf", "mamba4rec_v2"])
def test_no_model_reinitialises_the_mixer(tiny_dataset, name):
    torch.manual_seed(0)
    model = build_model({"name": name}, tiny_dataset.meta)
    mixers = [m for m in model.modules() if isinstance(m, Mamba)]
    assert len(mixers) == 2
    for m in mixers:
        check_mamba_init(m)
        assert m.A_log._no_weight_decay and m.D._no_weight_decay


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a, b = Mamba(16), Mamba(16)
    u = torch.randn(2, 7, 16)
    assert not torch.allclose(a(u), b(u))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(u), b(u))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_padding_is_exact(backend):
    """Outputs at real positions do not change with the amount of (arbitrary) left padding."""
    if backend == "cpu" and not cpu_kernels.available():
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    m = Mamba(16, scan_backend=backend).double()
    real = torch.randn(3, 6, 16, dtype=torch.float64)
    out = m(real, torch.ones(3, 6, dtype=torch.bool))
    for n_pad in (1, 5, 20):
        pads = 10 * torch.randn(3, n_pad, 16, dtype=torch.float64)  # garbage, not zeros
        mask = torch.cat([torch.zeros(3, n_pad, dtype=torch.bool), torch.ones(3, 6, dtype=torch.bool)], dim=1)
        padded = m(torch.cat([pads, real], dim=1), mask)
        assert torch.allclose(padded[:, n_pad:], out, atol=1e-12)
    unmasked = m(torch.cat([pads, real], dim=1))
    assert not torch.allclose(unmasked[:, n_pad:], out, atol=1e-6)  # the mask is what makes it exact


def test_backends_agree_inside_the_mixer():
    if not cpu_kernels.available():
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    ref = Mamba(32, scan_backend="reference")
    fast = Mamba(32, scan_backend="cpu")
    fast.load_state_dict(ref.state_dict())
    u = torch.randn(4, 30, 32)
    mask = torch.arange(30)[None, :] >= torch.tensor([[0], [5], [29], [30]])  # incl. an empty row
    y_ref, y = ref(u, mask), fast(u, mask)
    assert torch.allclose(y, y_ref, atol=1e-5)
    y_ref.square().sum().backward()
    y.square().sum().backward()
    for (name, p_ref), p in zip(ref.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, p_ref.grad, rtol=1e-3, atol=1e-5 * p_ref.grad.abs().max().item()), name


@pytest.mark.parametrize("config", [{"name": "mamba4rec_v2"}, {"name": "mdaf"}, {"name": "mdaf", "sequence": {"encoder": "gru"}}, {"name": "mdaf", "sequence": {"encoder": "transformer", "time_embedding": True}}])
def test_models_are_invariant_to_window_length(tiny_dataset, config):
    """Samples whose whole history fits in 20 positions score the same with L = 20 and L = 45."""
    torch.manual_seed(0)
    model = build_model(config, tiny_dataset.meta).eval()
    short = BatchLoader(tiny_dataset, "val", seq_len=20, batch_size=512)
    long = BatchLoader(tiny_dataset, "val", seq_len=45, batch_size=512)
    b20, b45 = next(iter(short)), next(iter(long))
    fits = b45["behavior_length"] <= 20
    assert fits.sum() > 20 and (b45["behavior_length"] == 0).any()
    with torch.no_grad():
        l20, l45 = model(b20).logit, model(b45).logit
    assert torch.allclose(l20[fits], l45[fits], atol=1e-5)
    assert not torch.allclose(l20[~fits], l45[~fits], atol=1e-5)  # longer histories do see more
