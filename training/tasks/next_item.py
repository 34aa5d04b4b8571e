"""The next-item task: rank the whole catalogue for each user's next item.

Loss: cross-entropy of the target over every item (padding and unknown excluded), on the last
position of every prefix (`train_on: last`: each training target is a sample, the protocol
Mamba4Rec was published with) or on every position of each user's last training window at once
(`train_on: all`: SASRec's original, far cheaper; for causal models, whose state at a position
sees only the items before it; windows tile each user's training sequence, so every training
target is still predicted once an epoch). A model that learns by counting (models/fitted.py:
pop, recent, knn) counts every training target with its window whatever `train_on` says.
Metrics: HR, NDCG and MRR at 5, 10 and 20 over the full catalogue (training/ranking.py); early
stopping watches validation NDCG@10. On test, also at 10 on the repeat targets (found in the
user's window, the L items the model reads; Li et al., SIGIR 2023, "Repetition and Exploration in
Sequential Recommendation", ask for the split) and on the new ones. The test predictions name each
target's user and item by their raw ids, with the dataset's vocabularies beside them.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader, batch_key
from data_prep.vocab import OOV
from models.fitted import FittedModel
from models.output import ModelOutput
from training import distributed
from training.config import RankingConfig, TrainConfig
from training.distributed import Dist
from training.ranking import CUTOFFS, ranking_metrics, target_ranks
from training.records import RankingMetrics, TargetGroup
from training.tasks.base import Task, TestOutcome

ITEM = "item"
USER = "user"


class NextItemTask(Task):
    name = "next_item"
    monitor = "ndcg@10"

    def __init__(self, dataset: ProcessedDataset, cfg: TrainConfig, ranking: RankingConfig, device: torch.device,
                 ctx: Dist, bf16: bool):
        self.dataset, self.cfg, self.ranking, self.device, self.ctx, self.bf16 = dataset, cfg, ranking, device, ctx, bf16
        self.timeline = dataset.timeline_names[0]
        self.items = dataset.meta["vocab_sizes"][ITEM] - (OOV + 1)  # the catalogue ranked
        self.vocabularies = {space: vocabulary(dataset, space) for space in (USER, ITEM)}  # now, not after training
        self.model: nn.Module | None = None
        self.every_position = ranking.train_on == "all"
        self.log_probabilities = False

    def setup(self, model: nn.Module, probe: dict[str, torch.Tensor]) -> None:
        self.model = model  # its `head_scores`, for the loss on every position
        self.every_position = self.ranking.train_on == "all" and not isinstance(model, FittedModel)
        self.log_probabilities = bool(getattr(model, "log_probabilities", False))

    def train_rows(self) -> np.ndarray | None:
        """With train_on all: per user, the training targets whose windows tile the user's training
        sequence back from its last target (every L-th: the last, the L-th before it, ...), so
        each training target is predicted at exactly one position of one window."""
        if not self.every_position:
            return None
        table = self.dataset.split("train")
        order = np.lexsort((-table.end[self.timeline], table.user_id))  # per user, newest target first
        users = table.user_id[order]
        first = np.r_[True, users[1:] != users[:-1]]
        back = np.arange(len(order)) - np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        return np.sort(order[back % self.cfg.seq_len == 0])

    def loss(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = batch[ITEM]
        if not self.every_position:
            return catalogue_cross_entropy(output.logit, target, log_probabilities=self.log_probabilities)
        items, mask = batch[batch_key(self.timeline, ITEM)], batch[batch_key(self.timeline, "mask")]
        labels = torch.cat([items[:, 1:], target[:, None]], dim=1)  # position t predicts the item after it
        scores = self.model.head_scores(batch, output.states, every_position=True)  # (real positions, V)
        # the mean over every rank's positions: DDP averages the ranks' gradients, and ranks hold
        # different numbers of real positions
        positions = distributed.total(int(mask.sum()), target.device)
        return (catalogue_cross_entropy(scores, labels[mask], "sum", self.log_probabilities) * self.ctx.world_size
                / positions)

    def keep(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {"rank": target_ranks(output.logit.detach(), batch[ITEM]).cpu().numpy()}

    def train_metrics(self, kept: dict[str, np.ndarray]) -> dict[str, float]:
        return ranking_metrics(kept["rank"], (10,))

    def evaluate(self, model: nn.Module, split: str) -> tuple[dict[str, float], dict[str, Any]]:
        preds = self._ranks(model, split)
        return ranking_metrics(preds["rank"]), preds

    def _ranks(self, model: nn.Module, split: str) -> dict[str, np.ndarray]:
        loader = BatchLoader(self.dataset, split, self.cfg.seq_len, max(1, self.cfg.eval_batch_size // self.ctx.world_size),
                             rank=self.ctx.rank, world_size=self.ctx.world_size)
        parts: dict[str, list[np.ndarray]] = {"user_id": [np.zeros(0, np.int64)], "item": [np.zeros(0, np.int64)],
                                              "rank": [np.zeros(0, np.int64)], "history_length": [np.zeros(0, np.int64)],
                                              "repeat": [np.zeros(0, bool)]}
        diagnostics = model.diagnostics() if hasattr(model, "diagnostics") else None  # e.g. the hybrid's gate
        if diagnostics is not None:  # its per-sample columns, present even on a rank without rows
            parts |= {column: [np.zeros(0, np.float32)] for column in diagnostics.columns}
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast:
            for batch in tqdm(loader, desc=f"ranking {split}", unit="batch", leave=False,
                              disable=not self.ctx.is_main or len(loader) < 5):
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                window = batch[batch_key(self.timeline, ITEM)]
                out = model(batch)
                ranks = target_ranks(out.logit, batch[ITEM], window if self.ranking.mask_history else None)
                length = batch[batch_key(self.timeline, "mask")].sum(1)
                repeat = (window == batch[ITEM][:, None]).any(1)  # the target is in the window (pads are 0)
                for key, value in (("user_id", batch["user_id"]), ("item", batch[ITEM]), ("rank", ranks),
                                   ("history_length", length), ("repeat", repeat)):
                    parts[key].append(value.cpu().numpy())
                for key, value in (diagnostics.add(out) if diagnostics is not None else {}).items():
                    parts[key].append(value)
        model.train(was_training)
        result = distributed.gather_arrays({k: np.concatenate(v) for k, v in parts.items()})
        if diagnostics is not None:
            diagnostics.merge(distributed.gather_objects(diagnostics.state()))
            result["diagnostics"] = diagnostics
        return result

    def test(self, model: nn.Module) -> TestOutcome:
        began = time.perf_counter()
        metrics, preds = self.evaluate(model, "test")
        rate = len(preds["rank"]) / (time.perf_counter() - began)
        diagnostics = preds.pop("diagnostics").result() if "diagnostics" in preds else {}
        table = pl.DataFrame(preds).rename({"user_id": "user_index", ITEM: "item_index"})
        raw = {f"{space}_id": pl.col(f"{space}_index").replace_strict(vocab["index"].cast(pl.Int64), vocab["raw"])
               for space, vocab in self.vocabularies.items()}
        table = table.with_columns(**raw).select(*raw, *table.columns).with_row_index("row")
        return TestOutcome(ranking_record(metrics, preds["rank"], preds["repeat"]), None, table, diagnostics, rate,
                           {f"vocab/{space}.parquet": vocab for space, vocab in self.vocabularies.items()})

    def describe(self, metrics: RankingMetrics) -> str:
        groups = "; ".join(f"{name} {group.n} ({group.n / max(metrics.n, 1):.0%}): NDCG@10 {group.ndcg:.4f}"
                           for name, group in (("repeat", metrics.repeat), ("new", metrics.new)))
        return " ".join(f"{name.upper()}@{k} {getattr(metrics, name)[str(k)]:.4f}" for k in (10, 20)
                        for name in ("hr", "ndcg", "mrr")) + f" ({metrics.n} targets over {self.items} items; {groups})"

    def oracle(self) -> dict[str, dict[str, float]] | None:
        return oracle_ranking(self.dataset)


def vocabulary(dataset: ProcessedDataset, space: str) -> pl.DataFrame:
    """vocab/<space>.parquet of `dataset`: raw id -> index (columns raw, index[, count])."""
    path = dataset.root / "vocab" / f"{space}.parquet"
    if not path.is_file():
        raise MDAFError(f"{path}: missing; test predictions name raw ids through it (a copy prepared by an older "
                        "version lacks it): prepare the data again")
    return pl.read_parquet(path)


def catalogue_cross_entropy(scores: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                            log_probabilities: bool = False) -> torch.Tensor:
    """Cross-entropy of `target` over the catalogue's items only: padding and unknown (the first
    OOV + 1 columns of `scores`) are never a target, so they are left out of the softmax. Scores
    that are already log-probabilities over the catalogue (`log_probabilities`; the log-softmax
    would return them unchanged) give their negative log-likelihood directly."""
    scores, target = scores[:, OOV + 1:], target - (OOV + 1)
    if log_probabilities:
        return F.nll_loss(scores, target, reduction=reduction)
    return F.cross_entropy(scores, target, reduction=reduction)


def ranking_record(metrics: dict[str, float], ranks: np.ndarray, repeat: np.ndarray) -> RankingMetrics:
    """The test record: `metrics` of all targets, and at 10 of the repeat ones and the new ones
    (`repeat`: (N,) bool, the target in the window)."""
    return RankingMetrics(**{name: {str(k): metrics[f"{name}@{k}"] for k in CUTOFFS} for name in ("hr", "ndcg", "mrr")},
                          n=len(ranks), repeat=target_group(ranks[repeat]), new=target_group(ranks[~repeat]))


def target_group(ranks: np.ndarray) -> TargetGroup:
    figures = ranking_metrics(ranks, (10,))
    return TargetGroup(len(ranks), figures["hr@10"], figures["ndcg@10"], figures["mrr@10"])


def oracle_ranking(dataset: ProcessedDataset) -> dict[str, dict[str, float]] | None:
    """Ranking metrics of the true next-item distribution on val and test (synthetic data), from
    each sample's `oracle_rank`; None for real data."""
    out = {}
    for split in ("val", "test"):
        path = dataset.root / "samples" / f"{split}.parquet"
        if "oracle_rank" not in pl.read_parquet_schema(path):
            return None
        out[split] = ranking_metrics(pl.read_parquet(path, columns=["oracle_rank"])["oracle_rank"].to_numpy())
    return out
