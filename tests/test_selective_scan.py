"""The selective-scan back-ends against the per-step reference (the scan with Mamba's skip D and
gate silu(z)): gradcheck in float64, tolerance in float32 at a realistic shape, thread-count
independence, memory kept for backward, and the dispatcher's choices."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.errors import MDAFError
from models.ssm import cpu_kernels
from models.ssm.selective_scan import resolve_backend, selective_scan, selective_scan_reference

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason="no C++ compiler: the CPU kernel cannot be built")


def scan_inputs(batch: int, length: int, d_inner: int, d_state: int, dtype=torch.float32, seed: int = 0):
    """Mamba-like inputs: dt ~ softplus(N(0,1) - 3), A = -exp(log(1..N) + noise), D ~ N(1, 0.1);
    z is a view of the second half of a wider tensor, as the mixer passes it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, d_inner, generator=g, dtype=dtype)
    dt = F.softplus(torch.randn(batch, length, d_inner, generator=g, dtype=dtype) - 3)
    A_log = torch.log(torch.arange(1, d_state + 1, dtype=dtype)).repeat(d_inner, 1)
    A = -torch.exp(A_log + 0.1 * torch.randn(d_inner, d_state, generator=g, dtype=dtype))
    B = torch.randn(batch, length, d_state, generator=g, dtype=dtype)
    C = torch.randn(batch, length, d_state, generator=g, dtype=dtype)
    D = 1 + 0.1 * torch.randn(d_inner, generator=g, dtype=dtype)
    xz = torch.randn(batch, length, 2 * d_inner, generator=g, dtype=dtype).requires_grad_()
    return [*(t.requires_grad_() for t in (x, dt, A, B, C, D)), xz[..., d_inner:]]


def cpu_scan(*args):
    return selective_scan(*args, backend="cpu")


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (3, 9, 33, 2)])  # 33 channels: a partial backward block
def test_cpu_kernel_passes_gradcheck_in_float64(shape):
    inputs = scan_inputs(*shape, dtype=torch.float64)
    assert torch.autograd.gradcheck(cpu_scan, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_reference_passes_gradcheck_in_float64():
    assert torch.autograd.gradcheck(selective_scan_reference, scan_inputs(2, 6, 3, 4, dtype=torch.float64))


def test_both_match_the_recurrence_written_out():
    """The equations of the module doc, by hand, for one channel."""
    x, dt, A, B, C, D, z = (t.detach() for t in scan_inputs(1, 4, 1, 3, dtype=torch.float64))
    h = torch.zeros(3, dtype=torch.float64)
    outs = []
    for t in range(4):
        h = torch.exp(dt[0, t, 0] * A[0]) * h + dt[0, t, 0] * B[0, t] * x[0, t, 0]
        y = (C[0, t] * h).sum() + D[0] * x[0, t, 0]
        outs.append(y * z[0, t, 0] * torch.sigmoid(z[0, t, 0]))
    expected = torch.stack(outs)
    assert torch.allclose(selective_scan_reference(x, dt, A, B, C, D, z)[0, :, 0], expected, atol=1e-12)
    assert torch.allclose(cpu_scan(x, dt, A, B, C, D, z)[0, :, 0], expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(16, 50, 256, 16), (4, 300, 64, 16)])
def test_cpu_kernel_matches_reference_in_float32(shape):
    inputs = scan_inputs(*shape)
    y_ref = selective_scan_reference(*inputs)
    dy = torch.randn_like(y_ref)
    grads_ref = torch.autograd.grad(y_ref, inputs, dy)
    y = cpu_scan(*inputs)
    grads = torch.autograd.grad(y, inputs, dy)
    assert torch.allclose(y, y_ref, rtol=1e-4, atol=1e-4 * y_ref.abs().max().item())
    for name, g, g_ref in zip(("x", "dt", "A", "B", "C", "D", "z"), grads, grads_ref):
        scale = g_ref.abs().max().item()
        assert torch.allclose(g, g_ref, rtol=1e-3, atol=2e-4 * scale), name


def test_result_is_bitwise_the_same_for_any_thread_count():
    inputs = scan_inputs(37, 20, 40, 16)  # 5 chunks of rows, the last one short
    dy = torch.randn(37, 20, 40)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 2, 2):  # repeats: however the rows fall to the threads
            torch.set_num_threads(threads)
            y = cpu_scan(*inputs)
            results.append([y, *torch.autograd.grad(y, inputs, dy)])
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)  # bit for bit: sums over rows go through fixed chunks


def test_non_contiguous_and_low_precision_inputs():
    x, dt, A, B, C, D, z = scan_inputs(3, 10, 8, 4)
    xt = x.detach().transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    zt = z.detach().transpose(0, 1).contiguous().transpose(0, 1)  # rows not evenly spaced: copied
    assert not xt.is_contiguous() and not zt.is_contiguous()
    expected = selective_scan_reference(x, dt, A, B, C, D, z)
    assert torch.allclose(cpu_scan(xt, dt, A, B, C, D, zt), expected, atol=1e-5)
    y16 = cpu_scan(*(t.detach().bfloat16() for t in (x, dt, A, B, C, D, z)))
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16).all()


def test_dispatcher_choices():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == "cpu"
    assert resolve_backend("reference", cpu) == "reference"
    with pytest.raises(MDAFError, match="scan_backend 'cuda'"):
        resolve_backend("cuda", cpu)
    with pytest.raises(MDAFError, match="'scan_backend' is 'fast'"):
        resolve_backend("fast", cpu)


def test_kernel_build_failure_is_reported(monkeypatch, tmp_path):
    """A missing compiler gives an MDAFError naming the source, not a crash."""
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    cpu_kernels.load_library.cache_clear()
    try:
        with pytest.raises(MDAFError, match="no C\\+\\+ compiler"):
            cpu_kernels.load_library()
    finally:
        monkeypatch.undo()
        cpu_kernels.load_library.cache_clear()


def saved_bytes(fn, inputs) -> int:
    """Bytes of the tensors autograd saves for backward while `fn(*inputs)` runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs)
    return total


def test_cpu_kernel_saves_only_its_inputs():
    """No (batch, L, d_inner, d_state) state history is kept for backward, unlike the loop."""
    inputs = scan_inputs(4, 64, 32, 16)
    input_bytes = sum(t.numel() * t.element_size() for t in inputs[:-1]) + inputs[-1]._base.numel() * 4
    state_history = 4 * 64 * 32 * 16 * 4
    assert saved_bytes(cpu_scan, inputs) <= input_bytes
    assert saved_bytes(selective_scan_reference, inputs) >= state_history
