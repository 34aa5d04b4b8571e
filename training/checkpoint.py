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
from training.config import RESUME_FREE_KEYS


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
    """Write `state` to `path` atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
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


def check_resumable(state: dict[str, Any], config: dict[str, Any], world_size: int, fingerprint: dict, path: Path,
                    root: Path) -> None:
    """Raise unless checkpoint `state` (at `path`) can continue under the resolved `config`: the
    same model, recipe and data settings but for RESUME_FREE_KEYS, as many processes, and the data
    it was trained on (`fingerprint` of the dataset at `root`). The one place resume is checked."""
    theirs = state.get("config")
    if theirs is None:
        raise MDAFError(f"{path}: records no config (written by an older version); start a new run")
    changed = sorted(f"{section}.{key}" for section in ("model", "train", "data")
                     for key in {*theirs.get(section, {}), *config.get(section, {})}
                     if key not in RESUME_FREE_KEYS
                     and theirs.get(section, {}).get(key) != config.get(section, {}).get(key))
    if changed:
        raise MDAFError(f"{path}: this run was started with other values of {changed}; resume it with the same "
                        "config and data, or choose another --run-name")
    if state["world_size"] != world_size:
        raise MDAFError(f"{path}: written by {state['world_size']} process(es); resume with as many "
                        f"(this run has {world_size})")
    check_same_data(state, fingerprint, path, root)


def check_same_data(state: dict, fingerprint: dict, path: Path, root: Path) -> None:
    """Raise unless checkpoint `state` was written for the dataset whose fingerprint
    (ProcessedDataset.fingerprint) is given: same meta.json, vocabularies and rows."""
    theirs = state.get("dataset")
    if theirs == fingerprint:
        return
    if theirs is None:
        what = "it records no dataset (written by an older version)"
    else:
        changed = [f"{key} {theirs[key]} -> {fingerprint[key]}" for key in ("rows", "vocab_sizes")
                   if theirs.get(key) != fingerprint.get(key)]
        what = "; ".join(changed) or "its meta.json differs"
    raise MDAFError(f"{path}: written for other data than {root} holds now ({what}); a checkpoint is used only "
                    "with the data it was trained on: restore that data, or start a new run")
