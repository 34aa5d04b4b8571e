"""The probe of the generator's sequential term (training/sequence_probe.py)."""
from __future__ import annotations

import math

import pytest
import torch

from data_prep.vocab import MISSING
from training.config import load_experiment
from training.run import run_experiment
from training.sequence_probe import TIMELINE, probe, sequential_term
from test_training import experiment_file

GEN = {"recency_tau": 2.0, "cate_match_weight": 0.3, "brand_match_weight": 0.5}


def test_sequential_term_by_hand():
    t = TIMELINE
    # one sample, window of 4 (left-padded: the newest behaviour last), candidate cate 7, brand 9
    batch = {"cate_raw": torch.tensor([7]), "brand_raw": torch.tensor([9]),
             f"{t}_cate_raw": torch.tensor([[0, 7, 5, 7]]), f"{t}_brand_raw": torch.tensor([[0, 9, 9, 3]]),
             f"{t}_btag": torch.tensor([[0, 3, 2, 2]]), f"{t}_mask": torch.tensor([[False, True, True, True]])}
    beta = torch.tensor([0.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    # k = 0 (newest): cate match, pv; k = 1: brand match, pv; k = 2: both, cart
    expected = 0.3 * 1.0 + math.exp(-1 / 2) * 0.5 * 1.0 + math.exp(-2 / 2) * 0.8 * 2.0
    assert sequential_term(batch, GEN, beta).item() == pytest.approx(expected)
    batch["brand_raw"] = torch.tensor([MISSING])  # an ad without a brand never matches on brand
    assert sequential_term(batch, GEN, beta).item() == pytest.approx(0.3 + math.exp(-1.0) * 0.3 * 2.0)


def test_probe_of_a_run_on_the_synthetic_set(tiny_dataset, tmp_path):
    cfg = load_experiment(experiment_file(tmp_path, tiny_dataset, epochs=1))
    found = probe(run_experiment(cfg, "probe", tmp_path / "results"))
    assert set(found["r2"]) == {"match statistics", "branch readout", "branch last position"}
    assert found["r2"]["match statistics"] > 0.5  # the statistics summarise the recency-weighted matches
    assert found["seq_auc"]["test"] > 0.6          # the term predicts clicks on its own
    assert set(found["gbdt_auc"]) == {"statistics", "statistics + exact seq(a)"}
