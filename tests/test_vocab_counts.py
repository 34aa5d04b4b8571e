"""Vocabulary counts and the minimum count applied at model time (data_prep.vocab.with_min_count)."""
from __future__ import annotations

import json

import pytest
import torch

from common.errors import MDAFError
from data_prep.config import load_prep_config
from data_prep.prepare import prepare
from data_prep.vocab import OOV, with_min_count
from models.layers.embedding import FeatureEmbedding
from raw_builders import taobao_ad_raw


@pytest.fixture(scope="module")
def meta(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("counts")
    prepare(taobao_ad_raw(tmp / "raw"), tmp / "out", load_prep_config("taobao_ad"))
    return json.loads((tmp / "out" / "meta.json").read_text())


def test_sizes_by_min_count_by_hand(meta):
    # train impressions show ad 502 twice, 501 and 503 once: 3 ids seen >= 1 time, 1 id >= 2 times
    item = meta["vocab_sizes_by_min_count"]["item"]
    assert item[:3] == [5, 3, 2] and len(item) == 20
    assert "btag" not in meta["vocab_sizes_by_min_count"]  # fixed vocabularies have no counts


def test_with_min_count_cuts_the_vocabulary_and_checks_keys(meta):
    cut = with_min_count(meta, {"item": 2})
    assert cut["vocab_sizes"]["item"] == 3 and meta["vocab_sizes"]["item"] == 5  # meta itself untouched
    assert cut["vocab_sizes"]["cate"] == meta["vocab_sizes"]["cate"]
    with pytest.raises(MDAFError, match="min_count.btag"):
        with_min_count(meta, {"btag": 2})
    with pytest.raises(MDAFError, match=r"min_count.item' must be in \[1, 20\]"):
        with_min_count(meta, {"item": 0})


def test_embedding_reads_indices_beyond_its_table_as_out_of_vocabulary():
    layer = FeatureEmbedding({"item": 3}, ["item"], 2)
    got = layer("item", torch.tensor([[0, 1, 2, 3, 4]]))
    table = layer.tables["item"].weight
    expected = torch.stack([table[0], table[OOV], table[2], table[OOV], table[OOV]])[None]
    assert torch.equal(got, expected)
