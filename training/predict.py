"""Score samples with a trained run: a split of its own dataset, or new raw impressions.

New raw files are prepared with the run's vocabularies (`prepare(..., vocab_from=...)`), so every
id means what it meant in training; ids the model never saw become out-of-vocabulary.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import torch
import yaml
from torch import nn

from common.atomic import atomic_write_parquet
from common.errors import MDAFError
from data_prep.config import load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.prepare import prepare_copy
from data_prep.samples import SPLITS
from data_prep.vocab import with_min_count
from models.registry import build_model, model_task
from training.checkpoint import check_same_data, load_checkpoint
from training.device import resolve_device
from training.calibration import CALIBRATION_FILE, Calibration, sigmoid
from training.metrics import split_metrics
from training.scoring import history_timeline, score_split

log = logging.getLogger(__name__)


def run_config(run_dir: Path) -> dict:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise MDAFError(f"{path}: missing; expected the config.yaml of a training run (results/<run>/)")
    return yaml.safe_load(path.read_text())


def scoring_dataset(run_dir: Path, cfg: dict, trained_on: ProcessedDataset, raw_dir: Path | None,
                    data_config: Path | None) -> ProcessedDataset:
    """The run's own prepared dataset, or `raw_dir` prepared with its vocabularies under
    <run_dir>/scored_data/<source>-<hash of the inputs>/ (reused while the files are unchanged)."""
    if raw_dir is None:
        return trained_on
    source = cfg["data"]["source"]  # a generic run's files are read with its schema unless data_config says
    schema = {"schema": trained_on.meta["config"]["schema"]} if source == "generic" and data_config is None else {}
    prep = load_prep_config(source, data_config, **schema)
    return ProcessedDataset(prepare_copy(raw_dir, run_dir / "scored_data", prep, vocab_from=trained_on.root))


def trained_model(run_dir: Path, cfg: dict, checkpoint: str, trained_on: ProcessedDataset,
                  device: torch.device) -> nn.Module:
    """The run's model with the weights of `checkpoint` ("best", "last" or a path) on `device`,
    refused unless the checkpoint was written for `trained_on` as it is now (its vocabularies index
    the model). The one way a finished run's model is loaded (predict.py, serving/scorer.py)."""
    ckpt = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / "checkpoints" / f"{checkpoint}.pt"
    state = load_checkpoint(ckpt)
    check_same_data(state, trained_on.fingerprint(), ckpt, trained_on.root)
    model = build_model(cfg["model"], with_min_count(trained_on.meta, cfg["data"].get("min_count") or {})).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise MDAFError(f"{ckpt}: its weights do not fit the model of {run_dir / 'config.yaml'} ({exc})") from None
    return model


def run_calibration(run_dir: Path, checkpoint: str) -> Calibration:
    """The calibration the run fitted for its best weights; sigma(z) for other checkpoints."""
    if checkpoint == "best" and (run_dir / CALIBRATION_FILE).is_file():
        return Calibration.read(run_dir / CALIBRATION_FILE)
    log.warning("%s: no calibration for checkpoint %r (one is fitted for the best weights only); p is the "
                "model's sigma(z)", run_dir, checkpoint)
    return Calibration()


def predict(run_dir: str | Path, splits: list[str], checkpoint: str = "best", raw_dir: str | Path | None = None,
            data_config: str | Path | None = None, out: str | Path | None = None, device: str = "auto") -> Path:
    """Write a parquet of scores (split, row, user_id, time, label, logit, p (calibrated), p_raw
    (sigma(z))[, oracle_p]) and log each split's AUC; returns its path (default
    <run_dir>/predictions.parquet)."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    if model_task(cfg["model"]["name"]) != "ctr":
        raise MDAFError(f"{run_dir}: a next-item run ({cfg['model']['name']}); predict.py scores CTR runs, and a "
                        "next-item run's ranks of its test targets are in its test_predictions.parquet")
    for split in splits:
        if split not in SPLITS:
            raise MDAFError(f"--split: expected some of {list(SPLITS)}, got {split!r}")
    trained_on = ProcessedDataset(cfg["data"]["prepared_dir"])
    dev = resolve_device(device)
    model = trained_model(run_dir, cfg, checkpoint, trained_on, dev)
    dataset = scoring_dataset(run_dir, cfg, trained_on, Path(raw_dir) if raw_dir else None,
                              Path(data_config) if data_config else None)
    calibration = run_calibration(run_dir, checkpoint)
    train = cfg["train"]
    frames = []
    for split in splits:
        scores = score_split(model, dataset, split, train["seq_len"], train["eval_batch_size"], dev,
                             history_timeline(cfg["model"], dataset.meta))
        if len(scores["label"]) == 0:
            log.warning("split %s of %s has no samples", split, dataset.root)
            continue
        if len(np.unique(scores["label"])) == 2:
            m = split_metrics(scores["label"], scores["logit"], scores["user_id"], calibration)
            log.info("%s: %d samples, AUC %.4f, logloss %.4f, GAUC %.4f", split, m["n"], m["auc"], m["logloss"],
                     m["gauc"])
        cols = {"split": [split] * len(scores["label"]), "row": scores["row"], "user_id": scores["user_id"],
                "time": dataset.split(split).time, "label": scores["label"], "logit": scores["logit"],
                "p": calibration(scores["logit"]).astype(np.float32),
                "p_raw": sigmoid(scores["logit"]).astype(np.float32)}
        if "oracle_p" in scores:
            cols["oracle_p"] = scores["oracle_p"]
        frames.append(pl.DataFrame(cols))
    if not frames:
        raise MDAFError(f"{dataset.root}: splits {splits} hold no samples; nothing to score")
    path = Path(out) if out else run_dir / "predictions.parquet"
    atomic_write_parquet(pl.concat(frames, how="diagonal"), path)
    log.info("wrote %s", path)
    return path
