"""Synthetic raw files on demand: generated once per generator config, then reused.

The raw files land in data/synthetic/<key>/raw/, where <key> is the seed and a hash of the
generator config, so a changed config never reuses stale files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from common.atomic import atomic_dir
from data_prep.synthetic import (SyntheticConfig, generate_taobao_ad, generate_userbehavior,
                                 load_synthetic_config)

log = logging.getLogger(__name__)

SYNTHETIC_DIR = Path("data") / "synthetic"
GENERATORS = {"taobao_ad": generate_taobao_ad, "userbehavior": generate_userbehavior}
LAYOUTS = {"generic": "taobao_ad"}  # the generic source's default schema describes the Taobao Ad files


def synthetic_config(path: Path | None = None, seed: int | None = None, **overrides) -> SyntheticConfig:
    """The generator config: defaults (configs/data/synthetic.yaml holds the same), or `path`."""
    if seed is not None:
        overrides["seed"] = seed
    return load_synthetic_config(path, overrides)


def synthetic_home(cfg: Any, root: Path = SYNTHETIC_DIR) -> Path:
    """<root>/seed<seed>-<hash of the config>/ for a generator config (a dataclass with a `seed`)."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode()).hexdigest()
    return Path(root) / f"seed{cfg.seed}-{digest[:8]}"


def ensure_synthetic_raw(source: str, cfg: SyntheticConfig, root: Path = SYNTHETIC_DIR) -> Path:
    """The raw files of `source` for `cfg` under `root`, generated now unless already there."""
    source = LAYOUTS.get(source, source)
    raw = synthetic_home(cfg, root) / f"raw_{source}"
    if raw.is_dir():
        log.info("reusing synthetic raw files in %s", raw)
        return raw
    log.info("no raw data given: generating a synthetic %s set in the Tianchi format into %s", source, raw)
    with atomic_dir(raw) as tmp:
        counts = GENERATORS[source](cfg, tmp)
        counts.pop("seconds", None)  # keep the record reproducible: same seed, same bytes
        (tmp / "generator.json").write_text(json.dumps(
            {"config": dataclasses.asdict(cfg), "counts": counts}, indent=2, default=str))
    return raw
