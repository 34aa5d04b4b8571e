"""Append-mode CSV writers that make a set of files appear whole or not at all.

Each file is written to a hidden temporary name in the output directory, chunk by chunk (the
header, when the format has one, with the first chunk), and all are renamed into place only
after the last chunk; on an exception the temporaries are removed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import polars as pl

from common.errors import MDAFError


@dataclass(frozen=True)
class CsvSpec:
    """How one file is written."""

    name: str
    header: bool = True
    null_value: str = ""


class CsvSink:
    """Open a set of CSV files for appending; use as a context manager."""

    def __init__(self, out_dir: str | Path, specs: list[CsvSpec], crlf: bool = False):
        self.out_dir = Path(out_dir)
        self.specs = {spec.name: spec for spec in specs}
        self.terminator = "\r\n" if crlf else "\n"
        self.rows = {spec.name: 0 for spec in specs}
        self._handles: dict[str, BinaryIO] = {}
        self._started: set[str] = set()

    def _tmp(self, name: str) -> Path:
        return self.out_dir / f".{name}.tmp-{os.getpid()}"

    def __enter__(self) -> "CsvSink":
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in self.specs:
                self._handles[name] = open(self._tmp(name), "wb")
        except OSError as exc:
            self._close(keep=False)
            raise MDAFError(f"{self.out_dir}: cannot write the output files ({exc})") from None
        return self

    def write(self, name: str, frame: pl.DataFrame) -> None:
        """Append `frame` to file `name` (its columns in order, named as the header wants)."""
        spec = self.specs[name]
        first = name not in self._started
        if not first and frame.height == 0:
            return
        frame.write_csv(self._handles[name], include_header=spec.header and first,
                        null_value=spec.null_value, line_terminator=self.terminator)
        self._started.add(name)
        self.rows[name] += frame.height

    def _close(self, keep: bool) -> None:
        for name, handle in self._handles.items():
            handle.close()
            if keep:
                os.replace(self._tmp(name), self.out_dir / name)
            else:
                self._tmp(name).unlink(missing_ok=True)
        self._handles.clear()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close(keep=exc_type is None)
