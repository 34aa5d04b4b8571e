"""The prepared dataset an experiment trains on: given, prepared from raw files (CTR) or an
interactions file (next-item, source "next_item"), or synthetic.

Only rank 0 prepares; the other torchrun ranks wait at a barrier and then open the result.
"""
from __future__ import annotations

import logging
from pathlib import Path

from common.errors import MDAFError
from data_prep.config import load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.next_item import prepare as next_item
from data_prep.next_item.config import load_next_item_config
from data_prep.next_item.synthetic import generate_sequences, load_sequence_config
from data_prep.prepare import prepare_copy
from data_prep.synthetic_raw import SYNTHETIC_DIR, ensure_synthetic_raw, synthetic_config, synthetic_home
from training import distributed
from training.config import DataConfig
from training.distributed import Dist

log = logging.getLogger(__name__)

PREPARED_DIR = Path("data")  # raw folders are prepared into data/<source>-<hash of the inputs>


NEXT_ITEM = "next_item"


def _prepare(cfg: DataConfig) -> Path:
    if cfg.source == NEXT_ITEM:
        return _prepare_next_item(cfg)
    prep = load_prep_config(cfg.source, cfg.prep_config, **cfg.prep)
    if cfg.raw_dir is not None:
        log.info("preparing the raw files in %s under %s (reused while the files and config are unchanged)",
                 cfg.raw_dir, PREPARED_DIR)
        return prepare_copy(cfg.raw_dir, PREPARED_DIR, prep)
    synth = synthetic_config(None, **cfg.synthetic)
    home = synthetic_home(synth)
    log.info("no data given: using a small synthetic %s set of %d users under %s, so that the run finishes in "
             "minutes on 2 CPU cores (generator defaults updated by data.synthetic %s; generated and prepared "
             "on first use; pass --raw-dir or --data-dir for real data)", cfg.source, synth.n_users, home,
             cfg.synthetic)
    return prepare_copy(ensure_synthetic_raw(cfg.source, synth), home, prep)


def _prepare_next_item(cfg: DataConfig) -> Path:
    prep = load_next_item_config(cfg.prep_config, **cfg.prep)
    if cfg.raw_dir is not None:
        log.info("preparing the interactions in %s under %s (reused while the file and config are unchanged)",
                 cfg.raw_dir, PREPARED_DIR)
        return next_item.prepare_copy(cfg.raw_dir, PREPARED_DIR, prep)
    synth = load_sequence_config(None, **cfg.synthetic)
    home = synthetic_home(synth, SYNTHETIC_DIR / NEXT_ITEM)
    inter = home / "synthetic.inter"
    log.info("no data given: using synthetic next-item sequences of %d users over %d items under %s (generator "
             "defaults updated by data.synthetic %s; pass --data for a real interactions file)",
             synth.n_users, synth.n_items, home, cfg.synthetic)
    if not inter.is_file():
        generate_sequences(synth, home)
    return next_item.prepare_copy(inter, home, prep)


def open_dataset(cfg: DataConfig, ctx: Dist) -> ProcessedDataset:
    """The dataset of `cfg` (module docstring), checked against `cfg.source`."""
    if cfg.dir is not None:
        path = Path(cfg.dir)
    else:
        path = _prepare(cfg) if ctx.is_main else None
        distributed.barrier()
        path = distributed.broadcast_object(path)
    dataset = ProcessedDataset(path)
    if dataset.meta.get("source") != cfg.source:
        raise MDAFError(f"{path / 'meta.json'}: source is {dataset.meta.get('source')!r}, but the experiment's "
                        f"data.source is {cfg.source!r}; pass --source or use a {cfg.source} dataset")
    return dataset
