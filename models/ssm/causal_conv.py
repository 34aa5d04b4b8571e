"""The mixer's depthwise causal convolution with its activation and padding mask:

  out_t = m_t * silu(bias + sum_{k<K} w[k] * m_{t-K+1+k} x_{t-K+1+k})     per channel, x_s = 0 for s < 0

for x (B, L, d_inner), m the padding mask (B, L) (all ones when None), w the `conv1d` weight
(d_inner, 1, K), as in mamba_simple.py with the mask applied before and after (models/ssm/mamba.py).
Back-ends: "cpu", the C++ kernel of csrc/causal_conv.cpp; anything else, PyTorch's conv1d.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from models.ssm.cpu_kernels import ROWS_PER_CHUNK, SUFFIX, as_rows, kernel, n_chunks


def causal_conv_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
    keep = None if mask is None else mask.unsqueeze(-1).to(x.dtype)
    if keep is not None:
        x = x * keep
    length, k = x.shape[1], weight.shape[-1]
    out = F.silu(F.conv1d(x.transpose(1, 2), weight, bias, padding=k - 1, groups=weight.shape[0])[..., :length])
    out = out.transpose(1, 2)
    return out if keep is None else out * keep


class CPUCausalConv(torch.autograd.Function):
    """The equation above by the C++ kernel; x may be a view into in_proj's output, read in place."""

    @staticmethod
    def forward(ctx, x, weight, bias, mask):
        x, x_stride = as_rows(x)
        w = weight.reshape(weight.shape[0], -1).contiguous()  # (D, K)
        bias = bias.contiguous()
        mask = None if mask is None else mask.to(torch.bool).contiguous()
        batch, length, d_inner = x.shape
        out = x.new_empty(batch, length, d_inner)
        kernel("mdaf_conv_fwd", x.dtype)(
            x.data_ptr(), x_stride, None if mask is None else mask.data_ptr(), w.data_ptr(), bias.data_ptr(),
            out.data_ptr(), ROWS_PER_CHUNK, batch, length, d_inner, w.shape[1], torch.get_num_threads(),
        )
        ctx.save_for_backward(x, w, bias, mask)
        ctx.x_stride, ctx.weight_shape = x_stride, weight.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        x, w, bias, mask = ctx.saved_tensors
        dout = dout.contiguous()
        batch, length, d_inner = x.shape
        chunks = n_chunks(batch)
        dx = x.new_empty(batch, length, d_inner)
        dw_part, dbias_part = x.new_zeros(chunks, *w.shape), x.new_zeros(chunks, d_inner)
        kernel("mdaf_conv_bwd", x.dtype)(
            x.data_ptr(), ctx.x_stride, None if mask is None else mask.data_ptr(), w.data_ptr(), bias.data_ptr(),
            dout.data_ptr(), dx.data_ptr(), dw_part.data_ptr(), dbias_part.data_ptr(),
            ROWS_PER_CHUNK, batch, length, d_inner, w.shape[1], torch.get_num_threads(),
        )
        return dx, dw_part.sum(0).reshape(ctx.weight_shape), dbias_part.sum(0), None


def causal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, mask: torch.Tensor | None, backend: str) -> torch.Tensor:
    """(B, L, d_inner) by the C++ kernel when `backend` is "cpu", else by PyTorch."""
    if backend != "cpu":
        return causal_conv_reference(x, weight, bias, mask)
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    if x.dtype in SUFFIX and weight.dtype == x.dtype:
        return CPUCausalConv.apply(x, weight, bias, mask)
    out = CPUCausalConv.apply(x.float(), weight.float(), bias.float(), mask)
    return out.to(x.dtype)
