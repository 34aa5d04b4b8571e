"""On a CUDA machine with mamba-ssm: its kernel and its `Mamba` module agree with ours.
Skipped elsewhere (mamba-ssm cannot be imported without CUDA)."""
from __future__ import annotations

import pytest
import torch

from models.ssm.mamba import Mamba
from models.ssm.selective_scan import _mamba_ssm_scan, selective_scan
from test_selective_scan import scan_inputs

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or _mamba_ssm_scan() is None, reason="needs CUDA and mamba-ssm"
)


def test_cuda_backend_matches_reference():
    inputs = [t.detach().cuda().requires_grad_() for t in scan_inputs(8, 64, 128, 16)]  # x, dt, A, B, C, D, z
    y_ref = selective_scan(*inputs, backend="reference")
    y = selective_scan(*inputs, backend="cuda")
    dy = torch.randn_like(y)
    for g, g_ref in zip(torch.autograd.grad(y, inputs, dy), torch.autograd.grad(y_ref, inputs, dy)):
        assert torch.allclose(g, g_ref, rtol=1e-3, atol=1e-3 * g_ref.abs().max().item())
    assert torch.allclose(y, y_ref, rtol=1e-4, atol=1e-4 * y_ref.abs().max().item())


def test_state_dict_loads_into_mamba_ssm():
    from mamba_ssm import Mamba as MambaSSM

    ours = Mamba(64).cuda()
    theirs = MambaSSM(d_model=64, d_state=16, d_conv=4, expand=2).cuda()
    theirs.load_state_dict(ours.state_dict())
    u = torch.randn(4, 40, 64, device="cuda")
    assert torch.allclose(ours(u), theirs(u), atol=1e-4)
