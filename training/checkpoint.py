"""Checkpoints written whole or not at all, with everything needed to continue bit for bit.

A checkpoint is one `torch.save` dict: model, optimizer and scheduler states, the early-stopping
state, epoch and position inside it, the epoch's partial train predictions, and the RNG states of
Python, NumPy and torch (CPU and CUDA). It is serialised to memory and then written with an atomic
rename, so a crash mid-write leaves the previous file intact.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import atomic_write_bytes
from common.errors import MDAFError


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (plus the current RNG states) to `path` atomically."""
    buffer = io.BytesIO()
    torch.save({**state, "rng": rng_state()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The dict saved at `path` (on CPU); a missing or unreadable file is an MDAFError."""
    path = Path(path)
    if not path.is_file():
        raise MDAFError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for a damaged file
        raise MDAFError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
