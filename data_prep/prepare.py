"""Prepare one source: raw directory in, processed dataset directory out, whole or not at all."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from common.atomic import atomic_dir, build_lock, remove_stale
from common.errors import MDAFError
from data_prep.config import PrepConfig
from data_prep.dataset import SCHEMA_VERSION
from data_prep.generic.schema import parse_schema
from data_prep.generic.source import prepare_generic
from data_prep.raw_files import SOURCE_FILES
from data_prep.summary import summarize, write_summary
from data_prep.taobao_ad import prepare_taobao_ad
from data_prep.userbehavior import prepare_userbehavior
from data_prep.vocab import load_vocabularies

log = logging.getLogger(__name__)

PIPELINES = {"taobao_ad": prepare_taobao_ad, "userbehavior": prepare_userbehavior, "generic": prepare_generic}


MARKER = ".mdaf-dataset"  # written into every dataset directory; --overwrite replaces only those
DATASET_ENTRIES = {MARKER, "meta.json", "summary.json", "summary.txt", "vocab", "samples", "timelines"}


def prepare(raw_dir: str | Path, out_dir: str | Path, cfg: PrepConfig, overwrite: bool = False,
            vocab_from: str | Path | None = None) -> dict:
    """Turn `raw_dir` into the dataset at `out_dir` (docs/data_format.md); returns the summary.

    With `vocab_from` (a processed dataset of the same source), its vocabularies and price edges
    encode the raw files instead of ones fitted on the train split, so the indices match the
    embedding tables of a model trained on it. Everything is built in a temporary sibling
    directory and renamed at the end, so a failure leaves no half-written dataset. An existing
    `out_dir` built from the same inputs is reused; `overwrite` replaces one only when it is a
    dataset data_prep wrote (`check_replaceable`).
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    require_raw_dir(raw_dir, cfg.source)
    inputs = prep_inputs(raw_dir, cfg, vocab_from)
    reused = load_vocabularies(Path(vocab_from), cfg.source) if vocab_from is not None else None
    if out_dir.exists():
        if not overwrite:
            if _built_from(out_dir, inputs):
                log.info("%s is up to date with %s and its config: reusing it", out_dir, raw_dir)
                return json.loads((out_dir / "summary.json").read_text())
            ours = out_dir.is_dir() and ((out_dir / MARKER).is_file() or not any(out_dir.iterdir()))
            hint = "pass --overwrite to replace it" if ours else "choose another --out"
            raise MDAFError(f"{out_dir}: already exists (from other raw files, config or vocabularies); {hint}")
        check_replaceable(out_dir, [raw_dir, *([Path(vocab_from)] if vocab_from is not None else [])])
    began = time.perf_counter()
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        work = tmp / "_work"
        meta = PIPELINES[cfg.source](raw_dir, cfg, work, tmp, reused)
        shutil.rmtree(work, ignore_errors=True)
        meta = {"schema_version": SCHEMA_VERSION, **meta,  # a source that splits by its data says how
                "splits": meta.get("splits") or {k: list(v) for k, v in cfg.split_bounds.items()}, **inputs}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        log.info("summarising %s", out_dir)
        summary = summarize(tmp, meta)
        log.info("summary\n%s", write_summary(tmp, summary))
        (tmp / MARKER).write_text(json.dumps({"written_by": "data_prep", "schema_version": SCHEMA_VERSION}))
    log.info("wrote %s in %.1f s", out_dir, time.perf_counter() - began)
    return summary


def prepare_copy(raw_dir: str | Path, root: str | Path, cfg: PrepConfig,
                 vocab_from: str | Path | None = None) -> Path:
    """`raw_dir` prepared under `root`/<source>-<hash of its inputs>; returns that directory.

    The inputs are the raw files' names, sizes and modification times, the resolved `cfg` and
    the vocabularies' files: unchanged inputs reuse the copy, changed ones prepare a new one
    (the log says what changed) and the older copy stays until the user removes it.
    """
    raw_dir, root = Path(raw_dir), Path(root)
    require_raw_dir(raw_dir, cfg.source)
    inputs = prep_inputs(raw_dir, cfg, vocab_from)
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:8]
    out = root / f"{cfg.source}-{digest}"
    if not out.exists():
        for older, changes in _older_copies(root, cfg.source, inputs):
            log.info("%s changed since %s was prepared (%s): preparing a new copy in %s; %s stays until you "
                     "remove it", raw_dir, older, changes, out, older)
    remove_stale(root)  # what a process killed mid-build left
    with build_lock(out):  # a second run preparing the same copy waits, then reuses it
        prepare(raw_dir, out, cfg, vocab_from=vocab_from)
    return out


def require_raw_dir(raw_dir: Path, source: str) -> None:
    """MDAFError unless `raw_dir` is a folder, naming what --raw-dir expects."""
    if raw_dir.is_dir():
        return
    names = [spec.name for spec in SOURCE_FILES.get(source, ()) if "oracle" not in spec.name]
    listed = f" ({', '.join(names)})" if names else ""
    expected = f"--raw-dir expects the folder holding the raw {source} files{listed}"
    if not raw_dir.exists():
        raise MDAFError(f"{raw_dir}: not found; {expected}")
    hint = (f": pass {raw_dir.parent}" if raw_dir.name in names else
            "; an interactions file for next-item recommendation goes to --data of experiments/train_mamba4rec.py")
    raise MDAFError(f"{raw_dir}: a file, but {expected}{hint}")


def prep_inputs(raw_dir: Path, cfg: PrepConfig, vocab_from: str | Path | None) -> dict:
    """What a dataset is built from: the format version, the raw directory and the source's files
    in it, the config, and the vocabularies reused (their dataset and files; a dataset rebuilt in
    place must not be mistaken for the one it replaced)."""
    names = (parse_schema(cfg.schema).files() if cfg.schema is not None
             else [spec.name for spec in SOURCE_FILES[cfg.source]])
    inputs = {"schema_version": SCHEMA_VERSION, "raw_dir": str(Path(raw_dir).resolve()),
              "raw_files": file_stats(Path(raw_dir), names), "config": dataclasses.asdict(cfg),
              "vocab_from": None, "vocab_files": None}
    if vocab_from is not None:
        vocab_dir = Path(vocab_from).resolve() / "vocab"
        names = sorted(p.name for p in vocab_dir.glob("*.parquet"))
        inputs |= {"vocab_from": str(Path(vocab_from).resolve()), "vocab_files": file_stats(vocab_dir, names)}
    return inputs


def file_stats(directory: Path, names: list[str]) -> dict[str, list[int]]:
    """Name -> [size, mtime_ns] of each of `names` present in `directory`: enough to notice a
    changed download."""
    stats = {name: (directory / name).stat() for name in names if (directory / name).is_file()}
    return {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}


def check_replaceable(out_dir: Path, inputs: list[Path]) -> None:
    """Raise unless `out_dir` may be deleted and rebuilt: an empty directory, or a dataset this
    module wrote (its MARKER) holding nothing else, and neither one of `inputs` (the raw files, a
    vocabulary source) nor a directory above one."""
    out = out_dir.resolve()
    for path in inputs:
        if out == path.resolve() or out in path.resolve().parents:
            relation = "is" if out == path.resolve() else "holds"
            raise MDAFError(f"{out_dir}: {relation} the input {path}; --overwrite never replaces an input: "
                            "choose another --out")
    if not out_dir.is_dir():
        raise MDAFError(f"{out_dir}: not a directory; choose another --out")
    entries = sorted(p.name for p in out_dir.iterdir())
    if entries and MARKER not in entries:
        raise MDAFError(f"{out_dir}: not a dataset data_prep wrote (no {MARKER} in it); --overwrite replaces "
                        "only those: choose another --out")
    other = [name for name in entries if name not in DATASET_ENTRIES]
    if other:
        raise MDAFError(f"{out_dir}: holds files data_prep did not write ({', '.join(other[:5])}); --overwrite "
                        "would delete them: move them out first, or choose another --out")


def _built_from(out_dir: Path, inputs: dict) -> bool:
    meta = _read_meta(out_dir)
    return meta is not None and all(meta.get(k) == v for k, v in inputs.items()) and (out_dir / "summary.json").is_file()


def _read_meta(directory: Path) -> dict | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _older_copies(root: Path, source: str, inputs: dict) -> list[tuple[Path, str]]:
    """Copies under `root` prepared from the same raw directory, each with what changed since."""
    found = []
    for directory in sorted(root.glob(f"{source}-*")):
        meta = _read_meta(directory)
        if meta is None or meta.get("raw_dir") != inputs["raw_dir"]:
            continue
        files = sorted(n for n in {*meta.get("raw_files", {}), *inputs["raw_files"]}
                       if meta.get("raw_files", {}).get(n) != inputs["raw_files"].get(n))
        keys = sorted(k for k, v in inputs["config"].items() if meta.get("config", {}).get(k) != v)
        parts = ([f"raw files {files}"] if files else []) + ([f"config keys {keys}"] if keys else [])
        if meta.get("vocab_files") != inputs["vocab_files"]:
            parts.append("vocabularies")
        found.append((directory, "; ".join(parts) or "inputs"))
    return found
