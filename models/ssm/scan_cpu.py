"""The selective scan on the CPU: the C++ kernel of csrc/selective_scan.cpp as an autograd Function."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from models.ssm.cpu_kernels import ROWS_PER_CHUNK, as_rows, kernel, n_chunks


class CPUSelectiveScan(torch.autograd.Function):
    """out = (scan(x, dt, A, B, C) + D * x) * silu(z) on CPU tensors of one dtype (float32 or float64).

    x, dt, z: (batch, L, d_inner); A: (d_inner, d_state); B, C: (batch, L, d_state); D: (d_inner)
    -> (batch, L, d_inner). z may be a view into a wider tensor (in_proj's output), read in place.
    Memory: the inputs are saved for backward; backward adds (batch / 8, d_inner, d_state) partial sums
    of dA and a per-thread scratch of 2 * L * 64 * d_state values, never (batch, L, d_inner, d_state).
    Deterministic: the same inputs give the same bits whatever the thread count.
    """

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, z):
        x, dt, A, B, C, D = (t.contiguous() for t in (x, dt, A, B, C, D))
        z, z_stride = as_rows(z)
        batch, length, d_inner = x.shape
        d_state = A.shape[1]
        out = torch.empty_like(x)
        kernel("mdaf_scan_fwd", x.dtype)(
            *(t.data_ptr() for t in (x, dt, A, B, C, D, z)), z_stride, out.data_ptr(),
            ROWS_PER_CHUNK, batch, length, d_inner, d_state, torch.get_num_threads(),
        )
        ctx.save_for_backward(x, dt, A, B, C, D, z)
        ctx.z_stride = z_stride
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        x, dt, A, B, C, D, z = ctx.saved_tensors
        dout = dout.contiguous()
        batch, length, d_inner = x.shape
        d_state = A.shape[1]
        dx, ddt, dz = torch.empty_like(x), torch.empty_like(dt), torch.empty_like(x)
        dB, dC = torch.zeros_like(B), torch.zeros_like(C)
        chunks = n_chunks(batch)
        dA_part, dD_part = x.new_zeros(chunks, d_inner, d_state), x.new_zeros(chunks, d_inner)
        kernel("mdaf_scan_bwd", x.dtype)(
            *(t.data_ptr() for t in (x, dt, A, B, C, D, z)), ctx.z_stride,
            *(t.data_ptr() for t in (dout, dx, ddt, dz, dA_part, dD_part, dB, dC)),
            ROWS_PER_CHUNK, batch, length, d_inner, d_state, torch.get_num_threads(),
        )
        return dx, ddt, dA_part.sum(0), dB, dC, dD_part.sum(0), dz
