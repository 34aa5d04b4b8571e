"""Sample tables: written bucket by bucket into per-split parts, then joined per split."""
from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

SPLITS = ("train", "val", "test")


def split_column(time: str, bounds: dict[str, tuple[int, int]]) -> pl.Expr:
    """The split each row's time falls in ("train"/"val"/"test"), null outside every split."""
    expr = pl.lit(None, dtype=pl.String)
    for name, (start, end) in reversed(list(bounds.items())):
        expr = pl.when((pl.col(time) >= start) & (pl.col(time) < end)).then(pl.lit(name)).otherwise(expr)
    return expr


class SampleWriter:
    """Collects samples bucket by bucket; `finish` writes `samples/<split>.parquet`."""

    def __init__(self, work_dir: Path) -> None:
        self._parts = work_dir / "sample_parts"
        self._n = 0

    def add(self, frame: pl.DataFrame) -> None:
        """Store one bucket's samples; `frame` carries a `split` column that is not kept."""
        for (split,), part in frame.partition_by("split", as_dict=True).items():
            directory = self._parts / split
            directory.mkdir(parents=True, exist_ok=True)
            part.drop("split").write_parquet(directory / f"{self._n:05d}.parquet", compression="lz4")
        self._n += 1

    def finish(self, out_dir: Path, schema: pl.Schema) -> dict[str, int]:
        """Join each split's parts (streaming) and return rows per split."""
        (out_dir / "samples").mkdir(parents=True, exist_ok=True)
        rows = {}
        for split in SPLITS:
            parts = sorted((self._parts / split).glob("*.parquet"))
            lf = pl.scan_parquet(parts) if parts else pl.LazyFrame(schema=schema)
            lf.select(list(schema)).sink_parquet(out_dir / "samples" / f"{split}.parquet")
            rows[split] = pl.scan_parquet(out_dir / "samples" / f"{split}.parquet").select(pl.len()).collect().item()
        shutil.rmtree(self._parts, ignore_errors=True)
        return rows
