"""Each default stated once: where a YAML restates a dataclass's defaults, or the calendar's
windows, the two must agree (the dataclass is the source; the YAML documents it)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from common.config import from_dict, load_yaml
from data_prep.calendar import TAOBAO_AD_BEHAVIOR_DAYS, TAOBAO_AD_IMPRESSION_DAYS, USERBEHAVIOR_DAYS
from data_prep.config import PrepConfig
from data_prep.next_item.config import NextItemConfig
from data_prep.next_item.synthetic import SequenceConfig
from training.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_v2_recipe_states_every_training_default():
    v2 = load_yaml(CONFIGS / "train" / "v2.yaml")
    assert set(v2) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert from_dict(TrainConfig, v2) == TrainConfig()


def test_taobao_ad_preparation_states_every_preparation_default():
    taobao = load_yaml(CONFIGS / "data" / "taobao_ad.yaml")  # all but UserBehavior's and the generic source's keys
    assert set(taobao) == {f.name for f in dataclasses.fields(PrepConfig)} - {"label_horizon_hours", "schema"}
    assert from_dict(PrepConfig, taobao) == PrepConfig()
    assert PrepConfig().sample_days == list(TAOBAO_AD_IMPRESSION_DAYS)
    assert PrepConfig().history_days == list(TAOBAO_AD_BEHAVIOR_DAYS)


def test_userbehavior_windows_are_the_calendars():
    ub = load_yaml(CONFIGS / "data" / "userbehavior.yaml")
    assert ub["sample_days"] == ub["history_days"] == list(USERBEHAVIOR_DAYS)
    assert [ub["train_days"][0], ub["test_days"][1]] == list(USERBEHAVIOR_DAYS)


def test_next_item_yamls_state_every_default():
    for path, cls in ((CONFIGS / "data" / "next_item.yaml", NextItemConfig),
                      (CONFIGS / "data" / "next_item_synthetic.yaml", SequenceConfig)):
        data = load_yaml(path)
        assert set(data) == {f.name for f in dataclasses.fields(cls)}, path
        assert from_dict(cls, data) == cls(), path
