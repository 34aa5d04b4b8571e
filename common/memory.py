"""Peak memory of a stretch of work in this process (Linux, or CUDA).

Writing 5 to /proc/self/clear_refs sets VmHWM (the process's resident high-water mark) to the
current VmRSS, so the peak of what runs after `reset_peak` is `read_peak` minus what `reset_peak`
returned. On CUDA, torch.cuda's peak allocated bytes are used the same way.
"""
from __future__ import annotations

import torch


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key + ":"))


def reset_peak(device: str) -> int:
    """Start a fresh peak; returns the memory in use now (resident bytes, or CUDA bytes allocated)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_bytes("VmRSS")


def read_peak(device: str) -> int:
    """Peak bytes since `reset_peak` (resident set, or CUDA allocated)."""
    return torch.cuda.max_memory_allocated() if device == "cuda" else _status_bytes("VmHWM")


class PeakMemory:
    """Peak memory of the work since construction: `mb()`, or None where the platform cannot tell
    (no /proc, e.g. macOS). Not the process's lifetime peak, so runs in one process (an ablation
    grid) each get their own."""

    def __init__(self, device: str):
        self.device = device
        try:
            reset_peak(device)
            self.tracked = True
        except OSError:
            self.tracked = False

    def mb(self) -> float | None:
        return read_peak(self.device) / 2**20 if self.tracked else None
