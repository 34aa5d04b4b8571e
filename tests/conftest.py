"""Fixtures shared by the model tests: a small prepared synthetic Taobao Ad set and its batches."""
from __future__ import annotations

import pytest
import torch

from data_prep.config import load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from data_prep.prepare import prepare
from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config

@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The test tensors are tiny: a second intra-op thread only adds synchronisation, which costs up
    to 50x when other processes share the two cores. (Tests of threading set their own count.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = {"n_users": 400, "impressions_per_user": 20, "behaviors_per_user": 60}


def prepared(source: str, seed: int, tmp_path_factory) -> ProcessedDataset:
    root = tmp_path_factory.mktemp(f"tiny_{source}")
    raw = ensure_synthetic_raw(source, synthetic_config(seed=seed, **TINY), root=root)
    prepare(raw, root / "prepared", load_prep_config(source))
    return ProcessedDataset(root / "prepared")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> ProcessedDataset:
    """A prepared synthetic Taobao Ad set of 400 users (about 8K impressions)."""
    return prepared("taobao_ad", 11, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_batch(tiny_dataset) -> dict[str, torch.Tensor]:
    """One shuffled train batch of 256 samples with L = 20 windows."""
    loader = BatchLoader(tiny_dataset, "train", seq_len=20, batch_size=256, shuffle=True, seed=0)
    return next(iter(loader))


@pytest.fixture(scope="session")
def tiny_userbehavior(tmp_path_factory) -> ProcessedDataset:
    """A prepared synthetic UserBehavior set of 400 users."""
    return prepared("userbehavior", 12, tmp_path_factory)
