"""Score every sample of a split with a model: the one evaluation loop behind validation, test
and experiments/predict.py.

Under torchrun each rank scores its contiguous block of the split and the blocks are gathered in
rank order (training/distributed.py), so every rank ends with the whole split, in order.
"""
from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader, batch_key
from training import distributed
from training.distributed import Dist

def history_timeline(model_cfg: dict[str, Any], meta: dict) -> str | None:
    """The timeline whose window lengths go into the predictions: the model's, else the first."""
    name = model_cfg.get("timeline") or (model_cfg.get("sequence") or {}).get("timeline")
    return name if name in meta["timelines"] else next(iter(meta["timelines"]), None)


def score_split(model: nn.Module, dataset: ProcessedDataset, split: str, seq_len: int, batch_size: int,
                device: torch.device, timeline: str | None, ctx: Dist = Dist(), bf16: bool = False
                ) -> dict[str, Any]:
    """Predictions on `split`, in its order. Keys: row, user_id, label, logit (float32),
    history_length (window lengths of `timeline`), oracle_p (synthetic data), each (N,); and for a
    model with a `diagnostics()` hook (models/mdaf/gate_diagnostics.py), its per-sample columns
    and, under "diagnostics", the hook's object with the whole split added."""
    loader = BatchLoader(dataset, split, seq_len, max(1, batch_size // ctx.world_size),
                         rank=ctx.rank, world_size=ctx.world_size)
    cols: dict[str, list[np.ndarray]] = {"user_id": [np.zeros(0, np.int64)], "label": [np.zeros(0, np.int8)],
                                         "logit": [np.zeros(0, np.float32)]}
    diagnostics = model.diagnostics() if hasattr(model, "diagnostics") else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast:
        for batch in tqdm(loader, desc=f"scoring {split}", unit="batch", leave=False,
                          disable=not ctx.is_main or len(loader) < 5):
            out = model({k: v.to(device, non_blocking=True) for k, v in batch.items()})
            part = {"user_id": batch["user_id"].numpy(), "label": batch["label"].numpy().astype(np.int8),
                    "logit": out.logit.float().cpu().numpy()}
            # a dataset without timelines (the generic source's Criteo layout) has only empty histories
            part["history_length"] = (batch[batch_key(timeline, "length")].numpy() if timeline is not None
                                      else np.zeros(len(part["label"]), np.int64))
            if "oracle_p" in batch:
                part["oracle_p"] = batch["oracle_p"].numpy()
            if diagnostics is not None:
                part |= diagnostics.add(out)
            for key, value in part.items():
                cols.setdefault(key, []).append(value)
    model.train(was_training)
    result: dict[str, Any] = distributed.gather_arrays({k: np.concatenate(v) for k, v in cols.items()})
    result["row"] = np.arange(len(result["label"]), dtype=np.int64)
    if diagnostics is not None:
        diagnostics.merge(distributed.gather_objects(diagnostics.state()))
        result["diagnostics"] = diagnostics
    return result
