"""The prepared dataset an experiment trains on: given, prepared from raw files, or synthetic.

Only rank 0 prepares; the other torchrun ranks wait at a barrier and then open the result.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from common.errors import MDAFError
from data_prep.config import load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.prepare import prepare
from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config, synthetic_home
from training import distributed
from training.config import DataConfig
from training.distributed import Dist

log = logging.getLogger(__name__)


def raw_dataset_dir(source: str, raw_dir: Path) -> Path:
    """data/<source>-<hash of the raw directory's path>: one prepared copy per raw directory."""
    digest = hashlib.sha256(str(raw_dir.resolve()).encode()).hexdigest()[:8]
    return Path("data") / f"{source}-{digest}"


def _prepare(cfg: DataConfig) -> Path:
    prep = load_prep_config(cfg.source, cfg.prep_config)
    if cfg.raw_dir is not None:
        raw = Path(cfg.raw_dir)
        out = raw_dataset_dir(cfg.source, raw)
        log.info("preparing the raw files in %s into %s (reused when up to date)", raw, out)
        prepare(raw, out, prep)
        return out
    synth = synthetic_config(None, **cfg.synthetic)
    out = synthetic_home(synth) / cfg.source
    log.info("no data given: using a small synthetic %s set of %d users in %s, so that the run finishes in "
             "minutes on 2 CPU cores (generator defaults updated by data.synthetic %s; generated and prepared "
             "on first use; pass --raw-dir or --data-dir for real data)", cfg.source, synth.n_users, out,
             cfg.synthetic)
    prepare(ensure_synthetic_raw(cfg.source, synth), out, prep)
    return out


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
