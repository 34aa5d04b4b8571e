"""Where a run's numbers go: console and train.log, metrics.jsonl, TensorBoard. Rank 0 only.

Other torchrun ranks log warnings and errors to the console and write no file.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(run_dir: Path | None, is_main: bool) -> None:
    """Console logging (INFO on rank 0, WARNING elsewhere) and, on rank 0, `run_dir/train.log`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_mdaf", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if is_main and run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler._mdaf = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO if is_main else logging.WARNING)


class RunRecorder:
    """metrics.jsonl records and TensorBoard scalars of one run; does nothing when not `active`."""

    def __init__(self, run_dir: Path, active: bool):
        self.active = active
        self.path = run_dir / "metrics.jsonl"
        self.writer = None
        if active:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def record(self, kind: str, values: dict[str, Any]) -> None:
        """Append {"kind": kind, **values} (a record of training/records.py as JSON) to metrics.jsonl."""
        if self.active:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"kind": kind, **values}) + "\n")

    def scalars(self, step: int, **values: float | None) -> None:
        """TensorBoard scalars at `step`; names may hold a '/' group ('auc/val'); None is skipped."""
        if self.writer is not None:
            for name, value in values.items():
                if value is not None:
                    self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
