"""The CTR feature baselines (logistic regression, gradient-boosted trees): they read only what
MDAF reads except the raw sequence, learn, and run through the same run, report and predict path."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from common.config import load_yaml
from common.errors import MDAFError
from data_prep.loader import BatchLoader
from models.baselines.logistic import Logistic, LogisticConfig
from models.layers.match import MatchFeatures
from models.registry import build_model
from training.config import load_experiment
from training.metrics import auc
from training.predict import predict
from training.run import run_experiment
from test_training import experiment_file

SEQUENCE_FIELDS = ("behavior_cate", "behavior_brand", "behavior_item")  # the raw sequence's id embeddings


class Reads(dict):
    """A batch that records the keys read from it."""

    def __init__(self, batch):
        super().__init__(batch)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def keys_read(model, batch) -> set[str]:
    reads = Reads(batch)
    with torch.no_grad():
        model(reads)
    return reads.read


@pytest.mark.parametrize("name", ["logistic", "gbdt"])
def test_feature_baselines_read_only_what_mdaf_reads_but_the_sequence(name, tiny_dataset, tiny_batch):
    mdaf = keys_read(build_model(load_yaml("configs/model/mdaf.yaml"), tiny_dataset.meta), tiny_batch)
    model = build_model({"name": name}, tiny_dataset.meta)
    if name == "gbdt":  # fitted on a few batches, so that its forward runs the trees
        model.fit([tiny_batch], [tiny_batch])
    theirs = keys_read(model, tiny_batch)
    assert theirs <= mdaf, sorted(theirs - mdaf)
    assert "label" not in theirs and "oracle_p" not in theirs
    assert not theirs & set(SEQUENCE_FIELDS)  # the window enters only through the match statistics
    assert set(tiny_dataset.meta["static_fields"]) <= theirs  # every static field MDAF's static branch reads


def test_logistic_is_linear_in_one_hot_fields_and_statistics(tiny_dataset, tiny_batch):
    model = Logistic(LogisticConfig(), tiny_dataset.meta)
    with torch.no_grad():
        for table in model.weights.embedding.tables.values():
            table.weight.normal_()
        got = model(tiny_batch).logit
    s = MatchFeatures(tiny_dataset.meta, "behavior").statistics(tiny_batch)
    by_hand = model.linear.bias + s @ model.linear.weight[0]
    for field, space in model.weights.fields.items():
        by_hand = by_hand + model.weights.embedding.tables[space].weight[tiny_batch[field], 0]
    torch.testing.assert_close(got, by_hand)


def test_gbdt_learns_and_its_seed_comes_from_the_run(tiny_dataset):
    train = BatchLoader(tiny_dataset, "train", 20, 4096)
    val = BatchLoader(tiny_dataset, "val", 20, 4096)
    logits = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        model = build_model({"name": "gbdt"}, tiny_dataset.meta)
        model.fit(train, val)
        logits.append(np.concatenate([model(b).logit.numpy() for b in val]))
    labels = np.concatenate([b["label"].numpy() for b in val])
    np.testing.assert_array_equal(logits[0], logits[1])  # one seed, one model
    assert not np.array_equal(logits[0], logits[2])      # bagging draws differ with the seed
    assert auc(labels, logits[0]) > 0.6


def test_gbdt_run_writes_a_report_and_predict_scores_like_the_run(tiny_dataset, tmp_path):
    cfg = load_experiment(experiment_file(tmp_path, tiny_dataset, {"name": "gbdt"}))
    run = run_experiment(cfg, "gbdt", tmp_path / "results")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"]["params"] == 0 and summary["train"]["epochs_run"] == 1
    assert "fitted" in (run / "train.log").read_text()
    assert "gbdt" in (run / "report.md").read_text()
    scored = pl.read_parquet(predict(run, ["test"], out=tmp_path / "scores.parquet"))
    np.testing.assert_array_equal(scored["logit"].to_numpy(),
                                  pl.read_parquet(run / "test_predictions.parquet")["logit"].to_numpy())
    assert auc(scored["label"].to_numpy(), scored["p"].to_numpy()) == pytest.approx(summary["test"]["auc"], abs=1e-6)


def test_mdaf_wide_adds_the_logistic_regression_to_its_logit(tiny_dataset, tiny_batch):
    torch.manual_seed(0)
    model = build_model({**load_yaml("configs/model/mdaf.yaml"), "wide": True}, tiny_dataset.meta).eval()
    with torch.no_grad():
        model.wide.linear.weight.normal_()  # a wide part that is not zero
        full = model(tiny_batch).logit
        wide = model.wide(tiny_batch).logit
        model.wide = None
        deep = model(tiny_batch).logit
    torch.testing.assert_close(full, deep + wide)


def test_item_rate_is_the_smoothed_click_rate_of_the_candidate(tiny_dataset, tiny_batch):
    model = build_model({"name": "item_rate", "prior": 5.0}, tiny_dataset.meta)
    model.fit([tiny_batch], [])
    assert keys_read(model, tiny_batch) == {"cate", "item"}  # nothing of the user, the context or the history
    y = tiny_batch["label"].double()
    p0 = y.mean()
    got = model(tiny_batch).logit
    for k in (0, 7):
        cate, item = tiny_batch["cate"] == tiny_batch["cate"][k], tiny_batch["item"] == tiny_batch["item"][k]
        pc = (y[cate].sum() + 5.0 * p0) / (cate.sum() + 5.0)
        pi = (y[item].sum() + 5.0 * pc) / (item.sum() + 5.0)
        assert got[k].item() == pytest.approx(torch.logit(pi).item(), abs=1e-5)
    unseen = {**tiny_batch, "item": torch.full_like(tiny_batch["item"], 10**9)}  # beyond the table: one OOV count
    assert torch.isfinite(model(unseen).logit).all()
    with pytest.raises(MDAFError, match="'levels'"):
        build_model({"name": "item_rate", "levels": ["brand_id"]}, tiny_dataset.meta)
