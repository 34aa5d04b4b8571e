"""The training loop: one model, one prepared dataset, one recipe (training/config.py), one task
(training/tasks/: click-through rate or next-item ranking; the task brings its samples, loss,
metrics and the validation metric early stopping watches).

Per batch: forward (bf16 autocast on CUDA if asked), the task's loss (plus the embedding penalty
of training/regularization.py when set), a stop if the loss or gradient norm is not finite on any
rank, backward, gradient clipping, AdamW step, learning-rate step. Per evaluation (each epoch end,
and every `eval_every` steps): the task's metrics of the training predictions since the previous
evaluation, its validation metrics, early stopping, best.pt on a new best, last.pt. At the end
the best weights are loaded back. A model fitted in one pass (models/fitted.py: boosted trees,
counting baselines) takes no gradient step: its one "epoch" is its fit, then the same evaluation.

Resuming: last.pt holds the position inside the epoch, the partial train predictions and every
rank's RNG states, and batches are a function of (seed, epoch), so a resumed CPU run repeats the
uninterrupted run's arithmetic exactly.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from training import distributed
from training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.config import TrainConfig
from training.distributed import Dist
from training.early_stopping import EarlyStopping
from training.logs import RunRecorder
from training.optim import adamw
from training.records import EvalRecord, StepRecord, as_json
from training.regularization import EmbeddingL2
from training.schedule import warmup_cosine
from models.fitted import FittedModel
from training.tasks.base import Task

log = logging.getLogger(__name__)


class TrainingDiverged(MDAFError):
    """The loss or the gradient norm stopped being finite."""


@dataclass
class FitResult:
    epochs_run: int
    best_epoch: int
    best_step: int
    best_val: float
    stop_reason: str
    seconds_per_epoch: float
    train_samples_per_s: float


class Trainer:
    def __init__(self, model: nn.Module, dataset: ProcessedDataset, task: Task, fingerprint: dict, config: dict,
                 cfg: TrainConfig, run_dir: Path, ctx: Dist, device: torch.device):
        """fingerprint: `dataset.fingerprint()`; config: the run's resolved config (config.yaml);
        both are stored in every checkpoint, for training/checkpoint.py's resume checks."""
        if cfg.batch_size % ctx.world_size:
            raise MDAFError(f"training config: key 'batch_size' ({cfg.batch_size}) must be a multiple of "
                            f"the number of processes ({ctx.world_size})")
        for split in ("train", "val"):
            if len(dataset.split(split)) == 0:
                raise MDAFError(f"{dataset.root / 'samples' / (split + '.parquet')}: no samples; training needs "
                                "train and validation samples (check the split days of the data config)")
        self.cfg, self.ctx, self.device, self.dataset, self.task = cfg, ctx, device, dataset, task
        self.fingerprint, self.config = fingerprint, config
        self.model = model.to(device)
        self.ckpt_dir = run_dir / "checkpoints"
        self.train_loader = BatchLoader(dataset, "train", cfg.seq_len, cfg.batch_size // ctx.world_size,
                                        shuffle=True, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
                                        rows=task.train_rows())
        self.fitted = isinstance(model, FittedModel)
        self.optimizer = None if self.fitted else adamw(self.model, cfg.lr, cfg.weight_decay, cfg.betas,
                                                        cfg.embedding_lr_scale)
        self.embedding_l2 = EmbeddingL2(self.model, cfg.embedding_l2) if cfg.embedding_l2 else None
        self.scheduler = None if self.fitted else warmup_cosine(
            self.optimizer, len(self.train_loader), cfg.epochs, cfg.warmup_epochs, cfg.warmup_start, cfg.final_lr_ratio)
        self.stopper = EarlyStopping(cfg.patience, cfg.min_delta)
        # steps between evaluations inside an epoch (0: none); a fraction of an epoch below 1
        self.eval_steps = (0 if not cfg.eval_every else int(cfg.eval_every) if cfg.eval_every >= 1
                           else max(1, round(cfg.eval_every * len(self.train_loader))))
        self.recorder = RunRecorder(run_dir, ctx.is_main)
        self.use_bf16 = cfg.bf16 and device.type == "cuda"
        if cfg.bf16 and not self.use_bf16:
            log.warning("bf16 autocast is for CUDA only; training in float32 on %s", device)
        task.setup(self.model, self._to_device(self.train_loader.batch(np.arange(min(2, len(self.train_loader.table))))))
        self.net = self.model
        if ctx.enabled and not self.fitted:
            view, unused = task.ddp_view(self.model)
            self.net = DistributedDataParallel(view, device_ids=[device] if device.type == "cuda" else None,
                                               find_unused_parameters=unused)
        # progress: the epoch in progress (1-based), batches done in it, optimiser steps in all
        self.epoch, self.position, self.step = 1, 0, 0
        self.partial: dict | None = None  # the train predictions, loss and time since the last evaluation
        self.history: list[EvalRecord] = []
        self.done, self.stop_reason = False, ""
        self.totals = {"seconds": 0.0, "train_seconds": 0.0, "train_samples": 0}

    # ----- set-up -----
    def _autocast(self):
        if self.use_bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # ----- checkpoints -----
    def _state(self) -> dict:
        rngs = distributed.gather_objects(rng_state())
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer and self.optimizer.state_dict(),
            "scheduler": self.scheduler and self.scheduler.state_dict(), "early_stopping": self.stopper.state_dict(),
            "epoch": self.epoch, "position": self.position, "step": self.step, "partial": self.partial,
            "history": self.history, "done": self.done, "stop_reason": self.stop_reason, "totals": self.totals,
            "config": self.config, "world_size": self.ctx.world_size, "rngs": rngs, "dataset": self.fingerprint,
        }

    def _save_last(self) -> None:
        state = self._state()
        if self.ctx.is_main:
            save_checkpoint(self.ckpt_dir / "last.pt", state)
        distributed.barrier()

    def restore(self, state: dict) -> None:
        """Continue from checkpoint `state` (its compatibility checked by training/checkpoint.py)."""
        self.model.load_state_dict(state["model"])
        if not self.fitted:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        self.stopper.load_state_dict(state["early_stopping"])
        for key in ("epoch", "position", "step", "partial", "history", "done", "stop_reason", "totals"):
            setattr(self, key, state[key])
        set_rng_state(state["rngs"][self.ctx.rank])
        log.info("resumed: epoch %d, batch %d of %d, step %d", self.epoch, self.position, len(self.train_loader),
                 self.step)

    # ----- training -----
    def fit(self, resume_from: dict | None = None) -> FitResult:
        """Train until early stopping or the last epoch (continuing checkpoint `resume_from` if
        given); the model ends with the best weights."""
        if resume_from is not None:
            self.restore(resume_from)
        while not self.done:
            self._fit_once() if self.fitted else self._train_epoch()
        best = load_checkpoint(self.ckpt_dir / "best.pt")
        self.model.load_state_dict(best["model"])
        log.info("training stopped: %s; best evaluation: epoch %d, step %d (val %s %.4f) restored",
                 self.stop_reason, self.stopper.best_epoch, self.stopper.best_step, self.task.monitor, self.stopper.best)
        self.recorder.close()
        epochs = self.history[-1].progress
        return FitResult(math.ceil(epochs - 1e-9), self.stopper.best_epoch, self.stopper.best_step, self.stopper.best,
                         self.stop_reason, self.totals["seconds"] / epochs,
                         self.totals["train_samples"] * self.ctx.world_size / self.totals["train_seconds"])

    def _train_epoch(self) -> None:
        """Batches from the current position to the end of the epoch, with an evaluation every
        `eval_every` steps and at the end of the epoch; stops early when early stopping says so."""
        cfg, loader = self.cfg, self.train_loader
        loader.set_epoch(self.epoch)
        self.model.train()
        began, since_log, loss_since_log = time.perf_counter(), 0, 0.0
        bar = tqdm(loader.batches(self.position), total=len(loader), initial=self.position, unit="batch",
                   desc=f"epoch {self.epoch}", disable=not self.ctx.is_main, leave=False, dynamic_ncols=True)
        for batch in bar:
            if self.partial is None:
                self.partial = {"kept": [], "loss_sum": 0.0, "count": 0, "seconds": 0.0}
            part = self.partial
            batch = self._to_device(batch)
            with self._autocast():
                out = self.net(batch)
                loss = self.task.loss(out, batch)
                objective = loss + self.embedding_l2.penalty() if self.embedding_l2 is not None else loss
            if not distributed.all_ranks(bool(torch.isfinite(objective)), self.device):
                self._diverged(f"loss is {objective.item()} on this rank (or not finite on another)")
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            if not distributed.all_ranks(bool(torch.isfinite(norm)), self.device):
                self._diverged(f"gradient norm is {norm.item()}")
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            self.position += 1
            n = int(batch["label"].shape[0])
            part["kept"].append(self.task.keep(out, batch))
            part["loss_sum"] += float(loss.item()) * n
            part["count"] += n
            since_log += n
            loss_since_log += float(loss.item()) * n
            if self.step % cfg.log_every == 0:
                rate = part["count"] * self.ctx.world_size / (part["seconds"] + time.perf_counter() - began)
                lr, mean_loss = self.scheduler.get_last_lr()[0], loss_since_log / since_log
                self.recorder.record("step", as_json(StepRecord(self.epoch, self.step, lr, mean_loss, rate)))
                self.recorder.scalars(self.step, **{"loss/train_step": mean_loss, "lr": lr,
                                                    "throughput/samples_per_s": rate})
                bar.set_postfix(loss=f"{mean_loss:.4f}", samples_s=f"{rate:,.0f}")
                since_log, loss_since_log = 0, 0.0
            end_of_epoch = self.position == len(loader)
            if end_of_epoch or (self.eval_steps and self.step % self.eval_steps == 0):
                part["seconds"] += time.perf_counter() - began
                self._evaluate(end_of_epoch)
                began = time.perf_counter()
                if self.done:
                    break
            elif cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                now = time.perf_counter()
                part["seconds"] += now - began
                began = now
                self._save_last()
        bar.close()

    def _fit_once(self) -> None:
        """A fitted model's one pass: `fit` on the whole training split (every rank alike), the
        training predictions scored for the train metrics, then the evaluation of any epoch."""
        cfg, rows = self.cfg, self.task.train_rows()
        train = BatchLoader(self.dataset, "train", cfg.seq_len, cfg.eval_batch_size, rows=rows)
        val = BatchLoader(self.dataset, "val", cfg.seq_len, cfg.eval_batch_size)
        began = time.perf_counter()
        fitted = self.model.fit(train, val)
        log.info("fitted %s: %s", type(self.model).__name__, fitted)
        self.model.to(self.device).eval()
        part = self.partial = {"kept": [], "loss_sum": 0.0, "count": 0, "seconds": 0.0}
        mine = BatchLoader(self.dataset, "train", cfg.seq_len, cfg.eval_batch_size, rank=self.ctx.rank,
                           world_size=self.ctx.world_size, rows=rows)
        with torch.no_grad():
            for batch in mine:
                batch = self._to_device(batch)
                out = self.model(batch)
                n = int(batch["label"].shape[0])
                part["kept"].append(self.task.keep(out, batch))
                part["loss_sum"] += float(self.task.loss(out, batch)) * n
                part["count"] += n
        part["seconds"] = time.perf_counter() - began
        self.position = len(self.train_loader)
        self.done, self.stop_reason = True, f"fitted in one pass ({fitted})"
        self._evaluate(end_of_epoch=True)

    def _diverged(self, what: str) -> None:
        last = self.ckpt_dir / "last.pt"
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
        raise TrainingDiverged(f"training stopped at epoch {self.epoch}, step {self.step + 1}: {what}; {kept} "
                               "(try a lower lr or grad_clip, or bf16: false)")

    def _evaluate(self, end_of_epoch: bool) -> None:
        """The task's metrics of the training predictions since the last evaluation and of the
        validation split, early stopping, checkpoints, the evaluation record (kind "epoch"; several
        per epoch with `eval_every`)."""
        part, monitor = self.partial, self.task.monitor
        kept = distributed.gather_arrays({k: np.concatenate([b[k] for b in part["kept"]]) for k in part["kept"][0]})
        sums = distributed.gather_objects((part["loss_sum"], part["count"]))
        train_loss = sum(s for s, _ in sums) / sum(c for _, c in sums)
        train_m = self.task.train_metrics(kept)
        seconds = part["seconds"]
        rate = part["count"] * self.ctx.world_size / seconds
        began = time.perf_counter()
        val_m, val = self.task.evaluate(self.model, "val")
        seconds += time.perf_counter() - began
        self.totals["seconds"] += seconds
        self.totals["train_seconds"] += part["seconds"]
        self.totals["train_samples"] += part["count"]
        improved = self.stopper.update(val_m[monitor], self.epoch, self.step)
        diagnostics = ({column: float(val[column].mean()) for column in val["diagnostics"].columns}
                       if "diagnostics" in val else {})
        record = EvalRecord(
            epoch=self.epoch, step=self.step, progress=self.epoch - 1 + self.position / len(self.train_loader),
            lr=self.scheduler.get_last_lr()[0] if self.scheduler else 0.0, train_loss=train_loss, train=train_m, val=val_m,
            gap=train_m.get(monitor, math.nan) - val_m[monitor], status=self.stopper.status(), seconds=seconds,
            samples_per_s=rate, diagnostics=diagnostics)
        self.history.append(record)
        self.recorder.record("epoch", as_json(record))
        self.recorder.scalars(self.step, **{
            "loss/train": train_loss, "gap": record.gap, "throughput/epoch_samples_per_s": rate,
            **{f"train/{name}": value for name, value in train_m.items()},
            **{f"val/{name}": value for name, value in val_m.items()},
            **{f"diagnostics/{name}": value for name, value in diagnostics.items()}})
        where = f"epoch {self.epoch}" if end_of_epoch else f"epoch {self.epoch} step {self.step}"
        log.info("%s: lr %.2e  train loss %.4f %s | val %s | gap %+.4f | %s | %.0f s, %.0f samples/s", where,
                 record.lr, train_loss, _figures(train_m), _figures(val_m), record.gap, record.status, seconds, rate)
        if improved and self.ctx.is_main:
            save_checkpoint(self.ckpt_dir / "best.pt", {"model": self.model.state_dict(), "epoch": self.epoch,
                                                        "step": self.step, f"val_{monitor}": val_m[monitor],
                                                        "dataset": self.fingerprint})
        if self.stopper.should_stop:
            self.done, self.stop_reason = True, (
                f"early stopping: no validation {monitor} gain above {self.cfg.min_delta} for {self.cfg.patience} "
                f"evaluations after epoch {self.stopper.best_epoch} (step {self.stopper.best_step})")
        elif end_of_epoch and self.epoch >= self.cfg.epochs:
            self.done, self.stop_reason = True, f"reached the last epoch ({self.cfg.epochs})"
        self.partial = None
        if end_of_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        self._save_last()


def _figures(metrics: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4f}" for name, value in metrics.items())
