"""The C++ CPU kernels of the Mamba mixer (csrc/): built on first use, loaded through ctypes.

- csrc/selective_scan.cpp: the selective scan with Mamba's skip and gate, forward and backward;
- csrc/causal_conv.cpp: the depthwise causal convolution with silu and the padding mask.
They are plain C++ with no PyTorch headers, so they compile in a few seconds with the system
compiler (`$CXX`, default `c++`). The shared library is cached under `$MDAF_CACHE_DIR` (default
`~/.cache/mdaf`), named by a hash of the sources, the flags and the CPU, and written atomically, so
concurrent processes (torchrun) never load a half-written file. Without a compiler the kernels are
unavailable and the mixer runs its PyTorch reference, saying so once in the log.

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

from common.errors import MDAFError

log = logging.getLogger(__name__)

CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / "selective_scan.cpp", CSRC / "causal_conv.cpp"]
HEADERS = [CSRC / "parallel_chunks.h", CSRC / "transposed.h"]
ROWS_PER_CHUNK = 8  # batch rows per work item; sums over rows have one partial per chunk (deterministic)
COMPILE_FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-std=c++17"]
LINK_FLAGS = ["-shared", "-pthread", "-lm"]
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}

_P, _I64, _I32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
SIGNATURES = {  # name -> ctypes argument types
    "mdaf_scan_fwd": [_P] * 7 + [_I64, _P] + [_I64] * 5 + [_I32],
    "mdaf_scan_bwd": [_P] * 7 + [_I64] + [_P] * 8 + [_I64] * 5 + [_I32],
    "mdaf_conv_fwd": [_P, _I64] + [_P] * 4 + [_I64] * 5 + [_I32],
    "mdaf_conv_bwd": [_P, _I64] + [_P] * 7 + [_I64] * 5 + [_I32],
}


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
    """Compile the sources and link them into `target`, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        objects = [Path(tmp) / f"{src.stem}.o" for src in SOURCES]
        lib = Path(tmp) / target.name
        commands = [[compiler, *COMPILE_FLAGS, "-c", str(src), "-o", str(obj)] for src, obj in zip(SOURCES, objects)]
        commands.append([compiler, *map(str, objects), "-o", str(lib), *LINK_FLAGS])
        for cmd in commands:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise MDAFError(f"{CSRC}: building the CPU kernels failed: {' '.join(cmd)}\n{done.stderr.strip()}")
        os.replace(lib, target)


@functools.lru_cache(maxsize=1)
def load_library() -> ctypes.CDLL:
    """The compiled kernels, built on first call; MDAFError when they cannot be built."""
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        raise MDAFError(f"{CSRC}: no C++ compiler found (looked for $CXX, default 'c++')")
    texts = [p.read_text() for p in (*SOURCES, *HEADERS)]
    key = "\n".join([*texts, *COMPILE_FLAGS, *LINK_FLAGS, compiler, platform.machine(), _cpu_signature()])
    target = cache_dir() / f"mdaf_kernels-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
    if not target.is_file():
        log.info("building the CPU kernels into %s", target)
        _build(compiler, target)
    lib = ctypes.CDLL(str(target))
    for name, argtypes in SIGNATURES.items():
        for suffix in SUFFIX.values():
            getattr(lib, f"{name}_{suffix}").argtypes = argtypes
    return lib


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Whether the kernels build and load here (the reason is logged when they do not)."""
    try:
        load_library()
    except (MDAFError, OSError) as exc:
        log.warning("CPU kernels unavailable: %s", exc)
        return False
    return True


def kernel(name: str, dtype: torch.dtype):
    """The function `name` (a key of SIGNATURES) for `dtype` (float32 or float64)."""
    return getattr(load_library(), f"{name}_{SUFFIX[dtype]}")


def n_chunks(batch: int) -> int:
    """Chunks of ROWS_PER_CHUNK batch rows: the leading size of the kernels' partial-sum buffers."""
    return -(-batch // ROWS_PER_CHUNK)


def as_rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(t, row stride) for a (B, L, D) tensor whose B*L rows of D are evenly spaced with a contiguous
    last dim (a contiguous tensor, or a slice of the last dim of one, like in_proj's halves);
    otherwise a contiguous copy and D."""
    b, length, _ = t.shape
    if t.stride(2) == 1 and (b == 1 or t.stride(0) == length * t.stride(1)):
        return t, t.stride(1)
    t = t.contiguous()
    return t, t.shape[2]
