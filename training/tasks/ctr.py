"""The click-through-rate task: a label per impression.

Loss: label-smoothed BCE, plus Tri-BCE over the model's sub-network heads (models/losses.py;
`aux_loss: auto` turns it on for models that have them). Metrics: AUC and logloss of the
training predictions; AUC, logloss, group AUC, mean prediction and calibration error on a split
(training/metrics.py). Early stopping watches validation AUC. The test fits Platt scaling on the
validation split first (training/calibration.py) and reports each figure before and after it.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from data_prep.dataset import ProcessedDataset
from models.losses import model_loss
from models.output import ModelOutput
from training.calibration import Calibration, fit_platt, sigmoid
from training.config import TrainConfig
from training.distributed import Dist
from training.metrics import auc, logloss, oracle_metrics, split_metrics
from training.records import MetricsOnTest
from training.scoring import score_split
from training.tasks.base import Task, TestOutcome


class WithoutAuxLogits(nn.Module):
    """The model with its sub-network logits dropped from the output, for DDP when the loss does not
    use them: DDP counts every parameter that reaches an output as used, and would wait forever for
    the gradients of the unused heads."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        out = self.model(batch)
        out.aux_logits = {}
        return out


class CTRTask(Task):
    name = "ctr"
    monitor = "auc"

    def __init__(self, dataset: ProcessedDataset, cfg: TrainConfig, device: torch.device, ctx: Dist,
                 timeline: str | None, bf16: bool):
        """timeline: the one whose window lengths go into the predictions."""
        self.dataset, self.cfg, self.device, self.ctx, self.timeline, self.bf16 = dataset, cfg, device, ctx, timeline, bf16
        self.has_aux, self.aux_loss = False, cfg.aux_loss

    def setup(self, model: nn.Module, probe: dict[str, torch.Tensor]) -> None:
        """Whether the model has sub-network heads: `aux_loss: auto` means Tri-BCE if so."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.has_aux = bool(model(probe).aux_logits)
        model.train(was_training)
        self.aux_loss = ("tri_bce" if self.has_aux else "none") if self.cfg.aux_loss == "auto" else self.cfg.aux_loss

    def ddp_view(self, model: nn.Module) -> tuple[nn.Module, bool]:
        unused = self.aux_loss == "none" and self.has_aux
        return (WithoutAuxLogits(model) if unused else model), unused

    def loss(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model_loss(output, batch["label"], self.cfg.label_smoothing, self.aux_loss)

    def keep(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {"logit": output.logit.detach().float().cpu().numpy(),
                "label": batch["label"].cpu().numpy().astype(np.int8)}

    def train_metrics(self, kept: dict[str, np.ndarray]) -> dict[str, float]:
        return {"auc": auc(kept["label"], kept["logit"]), "logloss": logloss(kept["label"], sigmoid(kept["logit"]))}

    def evaluate(self, model: nn.Module, split: str) -> tuple[dict[str, float], dict[str, Any]]:
        preds = score_split(model, self.dataset, split, self.cfg.seq_len, self.cfg.eval_batch_size, self.device,
                            self.timeline, self.ctx, self.bf16)
        metrics = split_metrics(preds["label"], preds["logit"], preds["user_id"])
        return {k: metrics[k] for k in ("auc", "logloss", "gauc")}, preds

    def test(self, model: nn.Module) -> TestOutcome:
        _, val = self.evaluate(model, "val")
        calibration = fit_platt(val["logit"], val["label"])
        began = time.perf_counter()
        _, test = self.evaluate(model, "test")
        rate = len(test["label"]) / (time.perf_counter() - began)
        raw = split_metrics(test["label"], test["logit"], test["user_id"])
        metrics = MetricsOnTest(**split_metrics(test["label"], test["logit"], test["user_id"], calibration),
                                **{f"{key}_raw": raw[key] for key in ("logloss", "mean_pred", "ece")})
        return TestOutcome(metrics, calibration.to_dict(), predictions_frame(test, calibration),
                           test["diagnostics"].result() if "diagnostics" in test else {}, rate)

    def describe(self, metrics: MetricsOnTest) -> str:
        return (f"AUC {metrics.auc:.4f} logloss {metrics.logloss:.4f} ({metrics.logloss_raw:.4f} before calibration) "
                f"GAUC {metrics.gauc:.4f} mean p {metrics.mean_pred:.4f} vs click rate {metrics.ctr:.4f} "
                f"({metrics.n} samples)")

    def oracle(self) -> dict[str, dict[str, float]] | None:
        """AUC and logloss of each sample's true click probability (`oracle_p`)."""
        splits = {name: self.dataset.split(name) for name in ("val", "test")}
        if any(t.oracle_p is None for t in splits.values()):
            return None
        return {name: oracle_metrics(t.label, t.oracle_p) for name, t in splits.items()}


def predictions_frame(preds: dict[str, Any], calibration: Calibration) -> pl.DataFrame:
    """The per-sample columns of `preds` (the model's diagnostic columns last) plus p (calibrated)
    and p_raw (sigma(z))."""
    cols = {**preds, "p": calibration(preds["logit"]).astype(np.float32),
            "p_raw": sigmoid(preds["logit"]).astype(np.float32)}
    diagnostic = list(preds["diagnostics"].columns) if "diagnostics" in preds else []
    order = ["row", "user_id", "label", "logit", "p", "p_raw", "history_length", "oracle_p", *diagnostic]
    return pl.DataFrame({k: cols[k] for k in order if k in cols})
