"""The fast CPU selective scan: the C++ kernel in scan_cpu.cpp, built on first use, as an autograd Function.

The kernel is plain C++ with no PyTorch headers, so it compiles in about a second with the system
compiler (`$CXX`, default `c++`) and is called through ctypes on the tensors' memory. The shared
library is cached under `$MDAF_CACHE_DIR` (default `~/.cache/mdaf`), named by a hash of the source,
the flags and the CPU, and written atomically, so concurrent processes (torchrun) never load a
half-written file. Without a compiler the kernel is unavailable and `models.mdaf.selective_scan`
falls back to the reference loop, saying so once in the log.

Flags: -O3 -march=native to use the CPU's vector units, and -ffast-math at compile time only, which
lets GCC vectorise the sums over the state and call glibc's vector exp. Linking without -ffast-math
keeps crtfastmath.o out, so loading the library does not switch the process to flush-to-zero.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

from common.errors import MDAFError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("scan_cpu.cpp")
COMPILE_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-std=c++17"]
LINK_FLAGS = ["-shared", "-pthread", "-lm"]
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def cache_dir() -> Path:
    return Path(os.environ.get("MDAF_CACHE_DIR") or Path.home() / ".cache" / "mdaf")


def _cpu_signature() -> str:
    """The CPU model and flags (the library is built with -march=native)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))


def _build(compiler: str, target: Path) -> None:
    """Compile and link scan_cpu.cpp into `target`, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        obj, lib = Path(tmp) / "scan_cpu.o", Path(tmp) / target.name
        for cmd in (
            [compiler, *COMPILE_FLAGS, "-c", str(SOURCE), "-o", str(obj)],
            [compiler, str(obj), "-o", str(lib), *LINK_FLAGS],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise MDAFError(f"{SOURCE}: building the CPU scan kernel failed: {' '.join(cmd)}\n{done.stderr.strip()}")
        os.replace(lib, target)


@functools.lru_cache(maxsize=1)
def load_library() -> ctypes.CDLL:
    """The compiled kernel, built on first call; MDAFError when it cannot be built."""
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        raise MDAFError(f"{SOURCE}: no C++ compiler found (looked for $CXX, default 'c++')")
    key = "\n".join([SOURCE.read_text(), *COMPILE_FLAGS, *LINK_FLAGS, compiler, platform.machine(), _cpu_signature()])
    target = cache_dir() / f"scan_cpu-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
    if not target.is_file():
        log.info("building the CPU selective-scan kernel into %s", target)
        _build(compiler, target)
    lib = ctypes.CDLL(str(target))
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in SUFFIX.values():
        getattr(lib, f"mdaf_scan_fwd_{suffix}").argtypes = [p] * 6 + [i64] * 4 + [i32]
        getattr(lib, f"mdaf_scan_bwd_{suffix}").argtypes = [p] * 11 + [i64] * 4 + [i32]
    return lib


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether the kernel builds and loads here (the reason is logged when it does not)."""
    try:
        load_library()
    except (MDAFError, OSError) as exc:
        log.warning("CPU selective-scan kernel unavailable: %s", exc)
        return False
    return True


class CPUSelectiveScan(torch.autograd.Function):
    """y = scan(x, dt, A, B, C) on CPU tensors of one dtype (float32 or float64).

    x, dt: (batch, L, d_inner); A: (d_inner, d_state); B, C: (batch, L, d_state) -> y: (batch, L, d_inner).
    Memory: the inputs are saved for backward; backward needs (threads, d_inner, d_state) for dA and a
    per-thread scratch of L * 32 * d_state values, never (batch, L, d_inner, d_state).
    """

    @staticmethod
    def forward(ctx, x, dt, A, B, C):
        x, dt, A, B, C = (t.contiguous() for t in (x, dt, A, B, C))
        batch, length, d_inner = x.shape
        d_state = A.shape[1]
        y = torch.empty_like(x)
        fn = getattr(load_library(), f"mdaf_scan_fwd_{SUFFIX[x.dtype]}")
        fn(*(t.data_ptr() for t in (x, dt, A, B, C, y)), batch, length, d_inner, d_state, torch.get_num_threads())
        ctx.save_for_backward(x, dt, A, B, C)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, dt, A, B, C = ctx.saved_tensors
        dy = dy.contiguous()
        batch, length, d_inner = x.shape
        d_state = A.shape[1]
        threads = torch.get_num_threads()
        dx, ddt = torch.empty_like(x), torch.empty_like(dt)
        dB, dC = torch.zeros_like(B), torch.zeros_like(C)
        dA_part = x.new_zeros(threads, d_inner, d_state)
        fn = getattr(load_library(), f"mdaf_scan_bwd_{SUFFIX[x.dtype]}")
        fn(*(t.data_ptr() for t in (x, dt, A, B, C, dy, dx, ddt, dA_part, dB, dC)), batch, length, d_inner, d_state, threads)
        return dx, ddt, dA_part.sum(0), dB, dC
