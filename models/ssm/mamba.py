"""The Mamba mixer (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces").

Parameter names, shapes and initialisation are those of `mamba_ssm.Mamba` (mamba_simple.py), so a
state dict moves between this module and the CUDA package unchanged:

  in_proj  (d_model -> 2*d_inner, no bias)    conv1d (depthwise, kernel d_conv, causal)
  x_proj   (d_inner -> dt_rank + 2*d_state, no bias)
  dt_proj  (dt_rank -> d_inner)               A_log (d_inner, d_state)   D (d_inner)
  out_proj (d_inner -> d_model, no bias)

Forward, for u (B, L, d_model):
  x, z = split(in_proj(u));  x = silu(causal_conv(x));  (dt, B, C) = split(x_proj(x))
  dt = softplus(dt_proj(dt));  A = -exp(A_log)
  out = out_proj((selective_scan(x, dt, A, B, C) + D * x) * silu(z))
The convolution (models/ssm/causal_conv.py) and the scan with its skip and gate
(models/ssm/selective_scan.py) each run on the back-end `scan_backend` resolves to.

Initialisation: A_log[d] = log(1 .. d_state); D = 1; dt_proj.bias = softplus^-1(dt) with dt drawn
log-uniform in [dt_min, dt_max] (floored at dt_init_floor); dt_proj.weight ~ U(+-dt_rank^-0.5).
These are set here once; the parameters carry `_no_reinit` / `_no_weight_decay` flags so a caller's
initialisation or optimiser groups can leave them alone.

Padding (`mask`, True at real positions; windows are left-padded): the x-branch is zeroed at pad
positions after in_proj and again after the conv, so the scan state stays exactly 0 through the
pads and the real positions see the same inputs as with no padding at all.

Recurrent step (mamba_simple.py's `step`), for one new input u_t (B, d_model) and the state left
by the events before it, the last d_conv inputs of the conv window (B, d_inner, d_conv) and the
scan state h (B, d_inner, d_state), both zeros before the first event:
  window = [window[:, :, 1:], x_t];  x_t = silu(sum_k w[k] window[k] + bias)
  h = exp(dt_t A) h + dt_t B_t x_t;  out_t = out_proj((C_t . h + D x_t) * silu(z_t))
Folding events in one at a time gives the forward's output at each of them (tests/test_streaming.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.ssm.causal_conv import causal_conv
from models.ssm.selective_scan import resolve_backend, selective_scan


class Mamba(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        scan_backend: str = "auto",
    ):
        super().__init__()
        self.d_state = d_state
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.scan_backend = scan_backend

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        self._init_dt(dt_min, dt_max, dt_init_floor)
        for p in (self.A_log, self.D):
            p._no_weight_decay = True

    def _init_dt(self, dt_min: float, dt_max: float, floor: float) -> None:
        """dt_proj as in mamba_ssm: softplus(bias) log-uniform in [dt_min, dt_max]."""
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.dt_proj.bias._no_reinit = True

    def forward(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """u: (B, L, d_model); mask: (B, L) bool, True at real positions, or None -> (B, L, d_model)."""
        backend = resolve_backend(self.scan_backend, u.device)
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, L, d_inner) each, views
        x = causal_conv(x, self.conv1d.weight, self.conv1d.bias, mask, backend)  # masked before and after
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))  # (B, L, d_inner)
        A = -torch.exp(self.A_log.float())  # (d_inner, d_state)
        y = selective_scan(x, dt, A.to(x.dtype), B, C, self.D, z, backend=backend)
        return self.out_proj(y)

    def empty_state(self, batch: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(conv window (batch, d_inner, d_conv), scan state (batch, d_inner, d_state)) before any event."""
        d_conv = self.conv1d.weight.shape[-1]
        return (torch.zeros(batch, self.d_inner, d_conv, device=device, dtype=dtype),
                torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype))

    def step(self, u: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (B, d_model), states as `empty_state` -> (out (B, d_model), new conv state, new scan state)."""
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, d_inner) each
        conv_state = torch.cat([conv_state[:, :, 1:], x[:, :, None]], dim=-1)
        x = F.silu((conv_state * self.conv1d.weight[:, 0]).sum(-1) + (self.conv1d.bias if self.conv1d.bias is not None else 0))
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))  # (B, d_inner)
        A = -torch.exp(self.A_log.float()).to(x.dtype)  # (d_inner, d_state)
        ssm_state = torch.exp(dt[..., None] * A) * ssm_state + (dt * x)[..., None] * B[:, None, :]
        y = torch.einsum("bdn,bn->bd", ssm_state, C) + self.D * x
        return self.out_proj(y * F.silu(z)), conv_state, ssm_state
