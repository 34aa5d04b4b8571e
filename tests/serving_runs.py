"""Tiny finished runs for the serving tests (hidden 16, one epoch, a few seconds each), and the
raw events and samples that reproduce a dataset's timelines and test rows through the service."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import yaml

from data_prep.dataset import ProcessedDataset
from data_prep.next_item.config import load_next_item_config
from data_prep.next_item.prepare import prepare_next_item
from data_prep.next_item.synthetic import generate_sequences, load_sequence_config
from data_prep.raw_files import AD_FEATURE, RAW_SAMPLE, USER_PROFILE, scan_raw
from data_prep.timeline import raw_column
from data_prep.vocab import Vocab
from training.config import load_experiment
from training.run import run_experiment

CTR_TRAIN = {"base": "configs/train/v2.yaml", "epochs": 1, "batch_size": 256, "seq_len": 10, "eval_batch_size": 1024,
             "warmup_epochs": 0, "threads": 1}
TINY_MDAF = {"base": "configs/model/mdaf.yaml", "hidden": 16, "mlp": {"hidden": [16]},
             "sequence": {"hidden": 16, "n_layers": 1}, "static": {"dcnv3": {"ecn_layers": 1, "lcn_layers": 1}}}
# MDAF whose sequential branch streams: no target attention, match features or statistics
STREAMING_MDAF = {**TINY_MDAF, "match_statistics": False,
                  "sequence": {"hidden": 16, "n_layers": 1, "timeline": "behavior", "target_attention": False,
                               "match_features": False}}
NEXT_TRAIN = {"base": "configs/train/next_item.yaml", "epochs": 1, "batch_size": 64, "seq_len": 30, "threads": 1}


def train(root: Path, name: str, model: dict, dataset: ProcessedDataset, source: str, train: dict,
          **sections) -> Path:
    cfg = {"experiment": name, "model": model, "train": train, "data": {"source": source, "dir": str(dataset.root)},
           **sections}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return run_experiment(load_experiment(path), name, root / "results")


def sequences(root: Path) -> ProcessedDataset:
    """Synthetic next-item sequences: 80 users, 60 items, 20 events each."""
    inter = generate_sequences(load_sequence_config(None, n_users=80, n_items=60, n_clusters=6,
                                                    events_per_user=20), root)
    prepare_next_item(inter, root / "prepared", load_next_item_config())
    return ProcessedDataset(root / "prepared")


def timeline_events(dataset: ProcessedDataset, timeline: str, user: int) -> list[dict]:
    """The raw events of `user` on `timeline`, in the timeline's order, as /events takes them."""
    arrays = dataset.timeline(timeline)
    rows = np.flatnonzero(np.asarray(arrays["user_id"]) == user)
    raw_fields = dataset.timeline_raw_ids(timeline)
    decoded = {f: Vocab.load(dataset.root / "vocab", s).raw.to_list()
               for f, s in dataset.timeline_fields(timeline).items() if f not in raw_fields}
    events = []
    for r in rows:
        event = {"timeline": timeline, "time": int(arrays["time"][r])}
        event |= {f: int(arrays[raw_column(f)][r]) for f in raw_fields}
        event |= {f: values[int(arrays[f][r]) - 2] if arrays[f][r] >= 2 else None for f, values in decoded.items()}
        events.append(event)
    return events


def raw_impressions(dataset: ProcessedDataset) -> pl.DataFrame:
    """Every impression of a Taobao Ad dataset's raw files, joined with its ad and user profile,
    under the processed dataset's field names."""
    raw_dir = Path(dataset.meta["raw_dir"])
    ads = scan_raw(raw_dir, AD_FEATURE).collect().rename(
        {"adgroup_id": "item", "cate_id": "cate", "campaign_id": "campaign"})
    profiles = scan_raw(raw_dir, USER_PROFILE).collect().rename({"userid": "user"})
    return (scan_raw(raw_dir, RAW_SAMPLE).collect().rename({"adgroup_id": "item", "time_stamp": "time"})
            .join(ads, on="item", how="left").join(profiles, on="user", how="left"))
