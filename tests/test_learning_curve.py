"""The learning curve over data size: one grid per number of users, tabulated against training rows."""
from __future__ import annotations

import json

import pytest
import yaml

from training.learning_curve import load_learning_curve, run_learning_curve, write_learning_curve

TINY_DATA = {"synthetic": {"impressions_per_user": 10, "behaviors_per_user": 30}}
TINY_TRAIN = {"epochs": 1, "batch_size": 256, "eval_batch_size": 4096, "threads": 1}


def curve_config(tmp_path, **changes) -> dict:
    cfg = {"base": "configs/experiments/mdaf.yaml", "reference": "DNN+match", "versus": "GBDT", "seeds": [0],
           "users": [100, 400], "data": TINY_DATA,
           "models": [{"label": "DNN+match", "train": TINY_TRAIN,
                       "model": {"base": "configs/model/dnn.yaml", "match_features": True, "mlp": {"hidden": [16]}}},
                      {"label": "GBDT", "model": "configs/model/gbdt.yaml", "train": TINY_TRAIN}], **changes}
    path = tmp_path / "curve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_learning_curve_runs_each_size_and_tabulates_against_training_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the synthetic sets are generated under ./data
    cfg = load_learning_curve(curve_config(tmp_path))
    results = tmp_path / "curve"
    run_learning_curve(cfg, results, {})
    rows = write_learning_curve(cfg, results, "python experiments/run_learning_curve.py", tmp_path / "doc.md")
    assert [(r["model"], r["users"]) for r in rows] == [("DNN+match", 100), ("DNN+match", 400), ("GBDT", 100),
                                                        ("GBDT", 400)]
    for r in rows:
        summary = json.loads((results / f"users_{r['users']}" / r["model"].lower().replace("+", "_")
                              / "seed0" / "summary.json").read_text())
        assert r["train_rows"] == summary["data"]["rows"]["train"] and r["auc"] == summary["test"]["auc"]
        assert r["oracle"] == summary["data"]["oracle"]["test"]["auc"]
    small, large = rows[0]["train_rows"], rows[1]["train_rows"]
    assert large > 3 * small  # four times the users, about four times the rows
    gbdt = {r["users"]: r["auc"] for r in rows if r["model"] == "GBDT"}
    assert [r["lead"] for r in rows[:2]] == pytest.approx([rows[0]["auc"] - gbdt[100], rows[1]["auc"] - gbdt[400]])
    doc = (tmp_path / "doc.md").read_text()
    assert "| DNN+match | 400 |" in doc and (tmp_path / "doc.png").is_file()


def test_learning_curve_config_names_a_bad_key(tmp_path):
    from common.errors import MDAFError
    with pytest.raises(MDAFError, match="key 'versus'"):
        load_learning_curve(curve_config(tmp_path, versus="XGB"))
    with pytest.raises(MDAFError, match="key 'users'"):
        load_learning_curve(curve_config(tmp_path, users=[0]))
