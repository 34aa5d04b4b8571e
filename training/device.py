"""Pick the device: CUDA, then Apple MPS, then CPU, unless the config names one."""
from __future__ import annotations

import logging

import torch

from common.errors import MDAFError

log = logging.getLogger(__name__)
DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device for `name` (one of DEVICES); with several processes per machine, CUDA device
    `local_rank`. Asking for an accelerator that is absent is an error, 'auto' never is."""
    if name not in DEVICES:
        raise MDAFError(f"training config: key 'device' is {name!r}; expected one of {list(DEVICES)}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
        log.info("device auto: using %s (cuda available: %s, mps available: %s)",
                 name, torch.cuda.is_available(), has_mps)
    if name == "cuda" and not torch.cuda.is_available():
        raise MDAFError("training config: device 'cuda' asked for, but torch sees no CUDA device")
    if name == "mps" and not has_mps:
        raise MDAFError("training config: device 'mps' asked for, but torch sees no MPS device")
    return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)
