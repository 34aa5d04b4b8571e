"""Score every sample of a split with a model: the one evaluation loop behind validation, test
and experiments/predict.py.

Under torchrun each rank scores its contiguous block of the split and the blocks are gathered in
rank order (training/distributed.py), so every rank ends with the whole split, in order.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from training import distributed
from training.distributed import Dist

GATE_BINS = 40


def score_split(model: nn.Module, dataset: ProcessedDataset, split: str, seq_len: int, batch_size: int,
                device: torch.device, timeline: str | None, ctx: Dist = Dist(), bf16: bool = False
                ) -> dict[str, np.ndarray]:
    """Predictions on `split`, in its order. Keys: row, user_id, label, logit (float32),
    history_length (window lengths of `timeline`), oracle_p (synthetic data); for gated models also
    gate_mean (per-sample mean gate) and, for the whole split, gate_hist (GATE_BINS counts over
    [0, 1]), gate_dim_mean (H,) and gate_sq_mean (mean of g^2)."""
    loader = BatchLoader(dataset, split, seq_len, max(1, batch_size // ctx.world_size),
                         rank=ctx.rank, world_size=ctx.world_size)
    cols: dict[str, list[np.ndarray]] = {"user_id": [np.zeros(0, np.int64)], "label": [np.zeros(0, np.int8)],
                                         "logit": [np.zeros(0, np.float32)]}
    gate_stats = None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast:
        for batch in tqdm(loader, desc=f"scoring {split}", unit="batch", leave=False,
                          disable=not ctx.is_main or len(loader) < 5):
            out = model({k: v.to(device, non_blocking=True) for k, v in batch.items()})
            part = {"user_id": batch["user_id"].numpy(), "label": batch["label"].numpy().astype(np.int8),
                    "logit": out.logit.float().cpu().numpy()}
            if timeline is not None:
                part["history_length"] = batch[f"{timeline}_length"].numpy()
            if "oracle_p" in batch:
                part["oracle_p"] = batch["oracle_p"].numpy()
            if out.gate is not None:
                gate = out.gate.float()
                part["gate_mean"] = gate.mean(dim=1).cpu().numpy()
                stats = (torch.histc(gate, bins=GATE_BINS, min=0.0, max=1.0), gate.sum(dim=0), (gate**2).sum())
                stats = [x.cpu().double() for x in stats]
                gate_stats = stats if gate_stats is None else [a + b for a, b in zip(gate_stats, stats)]
            for key, value in part.items():
                cols.setdefault(key, []).append(value)
    model.train(was_training)
    result = distributed.gather_arrays({k: np.concatenate(v) for k, v in cols.items()})
    result["row"] = np.arange(len(result["label"]), dtype=np.int64)
    if gate_stats is not None:
        parts = distributed.gather_objects([x.numpy() for x in gate_stats])
        hist, dim_sum, sq_sum = (sum(p[i] for p in parts) for i in range(3))
        n = len(result["label"])
        result["gate_hist"], result["gate_dim_mean"] = hist, dim_sum / n
        result["gate_sq_mean"] = float(sq_sum) / (n * len(dim_sum))
    return result
