"""How much of the synthetic generator's sequential click term a model's inputs and its sequence
branch carry (experiments/probe_sequence_signal.py).

The Taobao Ad generator (data_prep/synthetic/taobao_ad.py, data_prep/synthetic/history.py) adds
to each impression's click logit

    seq(a) = sum_{k < K} exp(-k / tau) beta(btag_k) (alpha_c [cate_k = cate_a] + alpha_b [brand_k = brand_a])

over the user's last K behaviours before it (k = 0 the newest). This module recomputes seq(a)
exactly from a prepared dataset's windows and the generator's recorded settings, then reports:
  - R^2 of a cross-validated ridge regression of seq(a) on the window's match statistics
    (models/layers/match.py) and, for a run whose model has a sequential branch, on its readout;
  - validation and test AUC of gradient-boosted trees on the static fields and the match
    statistics, without and with seq(a) as one more feature: the AUC the exact sequential term
    adds over the statistics is the most any sequence model can add over them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_score

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader, batch_key
from data_prep.synthetic.taobao_ad import BTAGS
from data_prep.vocab import MISSING, with_min_count
from models.baselines.gbdt import GBDT, GBDTConfig
from models.layers.match import MatchFeatures
from models.registry import build_model
from training.metrics import auc
from training.predict import run_config
from training.checkpoint import load_checkpoint

TIMELINE = "behavior"


def generator_settings(dataset: ProcessedDataset) -> dict[str, Any]:
    """The generator config recorded beside the raw files the dataset was prepared from."""
    path = Path(dataset.meta.get("raw_dir", "")) / "generator.json"
    if not dataset.meta.get("synthetic") or dataset.meta.get("source") != "taobao_ad" or not path.is_file():
        raise MDAFError(f"{dataset.root}: the probe needs a synthetic taobao_ad dataset whose raw folder holds "
                        f"generator.json (expected {path})")
    return json.loads(path.read_text())["config"]


def sequential_term(batch: dict[str, torch.Tensor], gen: dict[str, Any], beta: torch.Tensor) -> torch.Tensor:
    """seq(a) of the module docstring for a batch whose windows hold the last K behaviours."""
    t = TIMELINE
    mask = batch[batch_key(t, "mask")]
    length = mask.shape[1]
    decay = torch.exp(-torch.arange(length - 1, -1, -1, dtype=torch.float64) / gen["recency_tau"])  # newest at L-1
    match = torch.zeros(mask.shape, dtype=torch.float64)
    for field, alpha in (("cate", gen["cate_match_weight"]), ("brand", gen["brand_match_weight"])):
        cand = batch[f"{field}_raw"][:, None]
        match += alpha * ((batch[batch_key(t, f"{field}_raw")] == cand) & (cand != MISSING) & mask)
    return (match * beta[batch[batch_key(t, "btag")]] * decay).sum(dim=1)


def btag_weights(dataset: ProcessedDataset, gen: dict[str, Any]) -> torch.Tensor:
    """beta by behaviour-type index (0 at padding and unknown)."""
    vocab = pl.read_parquet(dataset.root / "vocab" / "btag.parquet")
    beta = torch.zeros(int(vocab["index"].max()) + 1, dtype=torch.float64)
    for raw, index in zip(vocab["raw"], vocab["index"]):
        beta[index] = gen["btag_weights"][BTAGS.index(raw)]
    return beta


def split_features(dataset: ProcessedDataset, meta: dict, split: str, gen: dict[str, Any], beta: torch.Tensor,
                   model: torch.nn.Module | None) -> dict[str, np.ndarray]:
    """Per sample of `split`: seq(a), the GBDT features (static fields and statistics), the label,
    and the model's sequential readout when it has one."""
    gbdt = GBDT(GBDTConfig(timeline=TIMELINE), meta)
    out: dict[str, list[np.ndarray]] = {"seq": [], "features": [], "label": [], "readout": []}
    with torch.no_grad():
        for batch in BatchLoader(dataset, split, gen["history_len"], 4096, timelines=[TIMELINE]):
            out["seq"].append(sequential_term(batch, gen, beta).numpy())
            out["features"].append(gbdt.features(batch))
            out["label"].append(batch["label"].numpy())
            if model is not None:
                out["readout"].append(model.sequence(batch).numpy())
    return {k: np.concatenate(v) for k, v in out.items() if v}


def ridge_r2(x: np.ndarray, y: np.ndarray) -> float:
    return float(cross_val_score(RidgeCV(alphas=np.logspace(-3, 3, 7)), x, y, cv=5, scoring="r2").mean())


def probe(run_dir: str | Path) -> dict[str, Any]:
    """The figures of the module docstring for a finished CTR run on a synthetic taobao_ad set."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    dataset = ProcessedDataset(cfg["data"]["prepared_dir"])
    gen = generator_settings(dataset)
    meta = with_min_count(dataset.meta, cfg["data"].get("min_count") or {})
    model = build_model(cfg["model"], meta)
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
    model.eval()
    branch = model if getattr(model, "sequence", None) is not None else None
    beta = btag_weights(dataset, gen)
    splits = {s: split_features(dataset, meta, s, gen, beta, branch) for s in ("train", "val", "test")}
    val = splits["val"]
    n_static = len(meta["static_fields"])
    r2 = {"match statistics": ridge_r2(val["features"][:, n_static:], val["seq"])}
    if "readout" in val:
        hidden = val["readout"].shape[1]
        r2["branch readout"] = ridge_r2(val["readout"], val["seq"])
        if hidden % 2 == 0 and cfg["model"].get("sequence", {}).get("target_attention", True):
            r2["branch last position"] = ridge_r2(val["readout"][:, : hidden // 2], val["seq"])
    trees = {}
    for name, extra in (("statistics", False), ("statistics + exact seq(a)", True)):
        torch.manual_seed(0)
        gbdt = GBDT(GBDTConfig(timeline=TIMELINE), meta)
        columns = {s: np.c_[f["features"], f["seq"]] if extra else f["features"] for s, f in splits.items()}
        gbdt.fit_arrays(columns["train"], splits["train"]["label"], columns["val"], splits["val"]["label"])
        trees[name] = {s: auc(splits[s]["label"], gbdt.booster.predict(columns[s], raw_score=True))
                       for s in ("val", "test")}
    return {"r2": r2, "gbdt_auc": trees, "seq_auc": {s: auc(splits[s]["label"], splits[s]["seq"]) for s in ("val", "test")}}
