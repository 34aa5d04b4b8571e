"""Prepare one source: raw directory in, processed dataset directory out, whole or not at all."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

from common.atomic import atomic_dir
from common.errors import MDAFError
from data_prep.config import PrepConfig
from data_prep.dataset import SCHEMA_VERSION
from data_prep.summary import summarize, write_summary
from data_prep.taobao_ad import prepare_taobao_ad
from data_prep.userbehavior import prepare_userbehavior
from data_prep.vocab import load_vocabularies

log = logging.getLogger(__name__)

PIPELINES = {"taobao_ad": prepare_taobao_ad, "userbehavior": prepare_userbehavior}


def prepare(raw_dir: str | Path, out_dir: str | Path, cfg: PrepConfig, overwrite: bool = False,
            vocab_from: str | Path | None = None) -> dict:
    """Turn `raw_dir` into the dataset at `out_dir` (docs/data_format.md); returns the summary.

    With `vocab_from` (a processed dataset of the same source), its vocabularies and price edges
    encode the raw files instead of ones fitted on the train split, so the indices match the
    embedding tables of a model trained on it. Everything is built in a temporary sibling
    directory and renamed at the end, so a failure leaves no half-written dataset.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise MDAFError(f"{raw_dir}: raw data directory not found")
    reused = None
    inputs = {"raw_dir": str(raw_dir.resolve()), "raw_files": fingerprint(raw_dir),
              "config": dataclasses.asdict(cfg), "vocab_from": None, "vocab_files": None}
    if vocab_from is not None:
        vocab_from = Path(vocab_from).resolve()
        reused = load_vocabularies(vocab_from, cfg.source)
        # the files' fingerprint too: a source dataset rebuilt in place must not be reused
        inputs |= {"vocab_from": str(vocab_from), "vocab_files": fingerprint(vocab_from / "vocab")}
    if out_dir.exists() and not overwrite:
        if _built_from(out_dir, inputs):
            log.info("%s is up to date with %s and its config: reusing it", out_dir, raw_dir)
            return json.loads((out_dir / "summary.json").read_text())
        raise MDAFError(f"{out_dir}: already exists (from other raw files, config or vocabularies); "
                        "pass --overwrite to replace it")
    began = time.perf_counter()
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        work = tmp / "_work"
        meta = PIPELINES[cfg.source](raw_dir, cfg, work, tmp, reused)
        shutil.rmtree(work, ignore_errors=True)
        meta = {"schema_version": SCHEMA_VERSION, **meta,
                "splits": {k: list(v) for k, v in cfg.split_bounds.items()}, **inputs}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        log.info("summarising %s", out_dir)
        summary = summarize(tmp, meta)
        log.info("summary\n%s", write_summary(tmp, summary))
    log.info("wrote %s in %.1f s", out_dir, time.perf_counter() - began)
    return summary


def fingerprint(raw_dir: Path) -> dict[str, list[int]]:
    """Name -> [size, mtime_ns] of each file in `raw_dir`: enough to notice a changed download."""
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(raw_dir.iterdir()) if p.is_file()}


def _built_from(out_dir: Path, inputs: dict) -> bool:
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return all(meta.get(k) == v for k, v in inputs.items()) and (out_dir / "summary.json").is_file()
