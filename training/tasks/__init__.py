"""The tasks the one trainer serves (training/tasks/base.py): click-through rate and next-item."""
from __future__ import annotations

import torch

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from models.registry import model_task
from training.config import ExperimentConfig
from training.distributed import Dist
from training.scoring import history_timeline
from training.tasks.base import Task
from training.tasks.ctr import CTRTask
from training.tasks.next_item import NextItemTask


def task_of(meta: dict) -> str:
    """The task a processed dataset is for (meta.json `task`; CTR datasets record none)."""
    return meta.get("task", "ctr")


def check_model_fits(model: dict, dataset: ProcessedDataset) -> None:
    """MDAFError unless the model serves the task the dataset was prepared for."""
    needs, has = model_task(model.get("name", "")), task_of(dataset.meta)
    if needs != has:
        raise MDAFError(f"model {model.get('name')!r} is a {needs} model but {dataset.root} holds {has} data; "
                        f"expected a {'next-item' if needs == 'next_item' else 'CTR'} dataset "
                        f"(data_prep.next_item for next-item models, data_prep for CTR models)")


def build_task(cfg: ExperimentConfig, dataset: ProcessedDataset, device: torch.device, ctx: Dist) -> Task:
    bf16 = cfg.train.bf16 and device.type == "cuda"
    if task_of(dataset.meta) == "next_item":
        return NextItemTask(dataset, cfg.train, cfg.ranking, device, ctx, bf16)
    return CTRTask(dataset, cfg.train, device, ctx, history_timeline(cfg.model, dataset.meta), bf16)
