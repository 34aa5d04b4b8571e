"""The selective scan of Mamba (Gu & Dao 2023, eq. 2a-2b) with its skip and gate, behind one
function with three back-ends (the computation of mamba-ssm's `selective_scan_fn(x, dt, A, B, C, D, z)`):

  h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,    y_t = C_t . h_t,    h_{-1} = 0
  out_t = (y_t + D * x_t) * silu(z_t)

per channel d (d_inner of them) with a state of d_state entries. Shapes everywhere here:
x, dt, z: (batch, L, d_inner); A: (d_inner, d_state); B, C: (batch, L, d_state); D: (d_inner)
-> out: (batch, L, d_inner).

Back-ends (`backend=`):
- "reference": the per-step recurrence in PyTorch, exp(dt*A) and dt*B*x formed step by step; the
  test oracle, and the fallback on any device;
- "cpu": the C++ kernel of scan_cpu.py (CPU tensors, float32/float64; other dtypes run in float32);
  the mixer then also runs its convolution with the C++ kernel of causal_conv.py;
- "cuda": mamba-ssm's `selective_scan_fn` (CUDA tensors, only where the package imports);
- "auto": "cuda" for CUDA tensors when mamba-ssm imports, "cpu" for CPU tensors when the kernel
  builds, "reference" otherwise. Which one runs is logged once per device.
Under `torch.jit.trace` (experiments/export.py) every back-end is "reference", the recurrence
compiled by TorchScript: a kernel call is invisible to the tracer, and a Python loop would be
unrolled to the example's length, where the compiled loop runs over any length.
"""
from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

from common.errors import MDAFError
from models.ssm import cpu_kernels
from models.ssm.scan_cpu import CPUSelectiveScan

log = logging.getLogger(__name__)

BACKENDS = ("auto", "reference", "cpu", "cuda")


def selective_scan_reference(x, dt, A, B, C, D, z) -> torch.Tensor:
    """The exact per-step recurrence; never forms a (batch, L, d_inner, d_state) tensor at once
    (autograd keeps one (batch, d_inner, d_state) state per step)."""
    batch, length, d_inner = x.shape
    h = x.new_zeros(batch, d_inner, A.shape[1])  # (batch, d_inner, d_state)
    ys = []
    for t in range(length):
        dt_t = dt[:, t, :, None]  # (batch, d_inner, 1)
        h = torch.exp(dt_t * A) * h + (dt_t * x[:, t, :, None]) * B[:, t, None, :]
        ys.append(torch.bmm(h, C[:, t, :, None]).squeeze(-1))  # (batch, d_inner)
    return (torch.stack(ys, dim=1) + D * x) * F.silu(z)


@functools.lru_cache(maxsize=1)
def _mamba_ssm_scan():
    """mamba-ssm's selective_scan_fn, or None when the package does not import."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as exc:  # ImportError, or the CUDA extension failing to load
        log.info("mamba-ssm not importable (%s: %s)", type(exc).__name__, exc)
        return None
    return selective_scan_fn


@functools.lru_cache(maxsize=1)
def _scripted_reference():
    return torch.jit.script(selective_scan_reference)


def _scan_cuda(x, dt, A, B, C, D, z):
    fn = _mamba_ssm_scan()
    # mamba-ssm wants channels before length: u, delta, z (batch, d_inner, L); B, C (batch, d_state, L)
    tr = [t.transpose(1, 2) for t in (x, dt, B, C, z)]
    return fn(tr[0], tr[1], A, tr[2], tr[3], D=D, z=tr[4]).transpose(1, 2)


def _scan_cpu(x, dt, A, B, C, D, z):
    if x.dtype in cpu_kernels.SUFFIX and all(t.dtype == x.dtype for t in (dt, A, B, C, D, z)):
        return CPUSelectiveScan.apply(x, dt, A, B, C, D, z)
    out = CPUSelectiveScan.apply(*(t.float() for t in (x, dt, A, B, C, D, z)))
    return out.to(x.dtype)


def resolve_backend(backend: str, device: torch.device) -> str:
    """The back-end "auto" means on `device`; an explicit one is checked against the device."""
    if backend not in BACKENDS:
        raise MDAFError(f"model config: key 'scan_backend' is {backend!r}; expected one of {list(BACKENDS)}")
    if torch.jit.is_tracing():
        return "reference"
    if backend == "auto":
        if device.type == "cuda" and _mamba_ssm_scan() is not None:
            return "cuda"
        if device.type == "cpu" and cpu_kernels.available():
            return "cpu"
        return "reference"
    if backend == "cuda" and (device.type != "cuda" or _mamba_ssm_scan() is None):
        raise MDAFError(f"scan_backend 'cuda' needs CUDA tensors and mamba-ssm; got {device.type} tensors")
    if backend == "cpu":
        if device.type != "cpu":
            raise MDAFError(f"scan_backend 'cpu' needs CPU tensors; got {device.type} tensors")
        cpu_kernels.load_library()  # raises with the compiler's message
    return backend


@functools.lru_cache(maxsize=None)
def _announce(backend: str, resolved: str, device_type: str) -> None:
    log.info("selective scan: back-end %r on %s (asked %r)", resolved, device_type, backend)


_IMPLEMENTATIONS = {"reference": selective_scan_reference, "cpu": _scan_cpu, "cuda": _scan_cuda}


def selective_scan(x, dt, A, B, C, D, z, backend: str = "auto") -> torch.Tensor:
    """out (batch, L, d_inner) of the equations above, by `backend` (see the module doc)."""
    resolved = resolve_backend(backend, x.device)
    if torch.jit.is_tracing():
        return _scripted_reference()(x, dt, A, B, C, D, z)
    _announce(backend, resolved, x.device.type)
    return _IMPLEMENTATIONS[resolved](x, dt, A, B, C, D, z)
