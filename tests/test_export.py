"""Export (experiments/export.py, serving/export.py): the TorchScript program of a run's scoring
forward runs without this repository and scores the test split as the run itself did."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from common.errors import MDAFError
from data_prep.loader import BatchLoader
from serving.export import ScoringForward, export_run
from serving_runs import CTR_TRAIN, NEXT_TRAIN, TINY_MDAF, sequences, train
from training.ranking import target_ranks

# a fresh interpreter in which no package of this repository can be imported
STANDALONE = """
import sys, torch
for name in ("common", "data_prep", "models", "serving", "training"):
    sys.modules[name] = None
program = torch.jit.load(sys.argv[1])
batches = torch.load(sys.argv[2], weights_only=True)
with torch.no_grad():
    torch.save([program(b) for b in batches], sys.argv[3])
"""


def standalone_scores(program, batches, tmp_path) -> list[torch.Tensor]:
    torch.save(batches, tmp_path / "batches.pt")
    subprocess.run([sys.executable, "-c", STANDALONE, str(program), str(tmp_path / "batches.pt"),
                    str(tmp_path / "out.pt")], check=True, cwd=tmp_path)
    return torch.load(tmp_path / "out.pt", weights_only=True)


@pytest.fixture(scope="module")
def ctr_run(tiny_dataset, tmp_path_factory):
    return train(tmp_path_factory.mktemp("export"), "mdaf", TINY_MDAF, tiny_dataset, "taobao_ad",
                 {**CTR_TRAIN, "seq_len": 20})


def test_exported_ctr_program_scores_the_test_split_as_the_run_did(ctr_run, tiny_dataset, tmp_path):
    run = ctr_run
    program = export_run(run, tmp_path / "scoring.pt")
    extra = {"mdaf.json": ""}
    torch.jit.load(program, _extra_files=extra)
    spec = json.loads(extra["mdaf.json"])
    assert spec["task"] == "ctr" and spec["calibration"] is not None and "behavior_mask" in spec["inputs"]
    loader = BatchLoader(tiny_dataset, "test", 20, 300)  # another batch size than the trace's example
    logits = torch.cat(standalone_scores(program, list(loader), tmp_path)).numpy()
    expected = pl.read_parquet(run / "test_predictions.parquet")["logit"].to_numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_exported_next_item_program_ranks_the_test_targets_as_the_run_did(tmp_path):
    dataset = sequences(tmp_path / "sequences")
    run = train(tmp_path, "mamba4rec", {"base": "configs/model/mamba4rec.yaml", "hidden": 16, "d_state": 8},
                dataset, "next_item", NEXT_TRAIN)
    batches = list(BatchLoader(dataset, "test", NEXT_TRAIN["seq_len"], 50))
    scores = standalone_scores(export_run(run), batches, tmp_path)
    ranks = torch.cat([target_ranks(s, b["item"]) for s, b in zip(scores, batches)]).numpy()
    np.testing.assert_array_equal(ranks, pl.read_parquet(run / "test_predictions.parquet")["rank"].to_numpy())


def test_a_program_that_does_not_hold_on_other_batches_is_refused(ctr_run, tmp_path, monkeypatch):
    def baked(self, batch):  # a Python number taken from the data: the trace keeps the example's
        return self.model(batch).logit + float(batch["time"].double().mean()) * 1e-3

    monkeypatch.setattr(ScoringForward, "forward", baked)
    with pytest.raises(MDAFError, match="cannot be exported: the traced program differs from the model"):
        export_run(ctr_run, tmp_path / "scoring.pt")
    assert not (tmp_path / "scoring.pt").exists()
