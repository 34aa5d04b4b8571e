"""The mixer's causal convolution kernel against PyTorch's conv1d: gradcheck in float64, tolerance
in float32, a view input read in place, and causality."""
from __future__ import annotations

import pytest
import torch

from models.ssm import cpu_kernels
from models.ssm.causal_conv import causal_conv, causal_conv_reference

pytestmark = pytest.mark.skipif(not cpu_kernels.available(), reason="no C++ compiler: the CPU kernel cannot be built")


def conv_inputs(batch: int, length: int, d_inner: int, k: int = 4, dtype=torch.float64, seed: int = 0):
    """x is the first half of a wider (batch, L, 2*d_inner) tensor, as in the mixer; rows have
    0 .. L-1 left pads in turn."""
    g = torch.Generator().manual_seed(seed)
    xz = torch.randn(batch, length, 2 * d_inner, generator=g, dtype=dtype).requires_grad_()
    weight = (0.5 * torch.randn(d_inner, 1, k, generator=g, dtype=dtype)).requires_grad_()
    bias = torch.randn(d_inner, generator=g, dtype=dtype).requires_grad_()
    pads = torch.arange(batch) % (length + 1)
    mask = torch.arange(length)[None, :] >= pads[:, None]
    return xz, weight, bias, mask


@pytest.mark.parametrize("masked", [True, False])
def test_kernel_passes_gradcheck_in_float64(masked):
    xz, weight, bias, mask = conv_inputs(4, 7, 3)

    def fn(xz, weight, bias):
        return causal_conv(xz[..., :3], weight, bias, mask if masked else None, "cpu")

    assert torch.autograd.gradcheck(fn, (xz, weight, bias), eps=1e-6, atol=1e-7)


def test_kernel_matches_conv1d_in_float32():
    xz, weight, bias, mask = conv_inputs(64, 50, 256, dtype=torch.float32)
    x = xz[..., :256]
    out, ref = causal_conv(x, weight, bias, mask, "cpu"), causal_conv_reference(x, weight, bias, mask)
    assert torch.allclose(out, ref, atol=1e-5)
    dout = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (xz, weight, bias), dout)
    grads_ref = torch.autograd.grad(ref, (xz, weight, bias), dout)
    for g, g_ref in zip(grads, grads_ref):
        assert torch.allclose(g, g_ref, rtol=1e-4, atol=1e-5 * g_ref.abs().max().item())


def test_output_is_causal_and_zero_at_pads():
    xz, weight, bias, mask = conv_inputs(3, 12, 5)
    x = xz.detach()[..., :5]
    out = causal_conv(x, weight.detach(), bias.detach(), mask, "cpu")
    assert (out[~mask] == 0).all()
    changed = x.clone()
    changed[:, 8] += 1.0
    again = causal_conv(changed, weight.detach(), bias.detach(), mask, "cpu")
    assert torch.equal(again[:, :8], out[:, :8])  # the future does not reach the past
    assert not torch.allclose(again[:, 8:], out[:, 8:])


def test_kernel_is_bitwise_the_same_for_any_thread_count():
    xz, weight, bias, mask = conv_inputs(37, 30, 64, dtype=torch.float32)
    dout = torch.randn(37, 30, 64)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 2, 2):
            torch.set_num_threads(threads)
            out = causal_conv(xz[..., :64], weight, bias, mask, "cpu")
            results.append([out, *torch.autograd.grad(out, (xz, weight, bias), dout)])
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)
