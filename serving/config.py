"""How a run is served: `ServeConfig`, from defaults, an optional YAML (`serve.py --config`) and
the command line, with unknown keys and values out of range named (common/config.py)."""
from __future__ import annotations

from dataclasses import dataclass

from common.errors import MDAFError
from training.device import DEVICES


@dataclass
class ServeConfig:
    """checkpoint: best | last | a checkpoint path. device: one of training/device.py's.
    threads: torch's intra-op threads (0: its default).
    seq_len: the events per timeline a recompute reads, the newest before the sample (0: the run's
    seq_len, what it trained on; a Mamba reads any length, so a larger one reads a longer history).
    window: events kept per user and timeline, the newest (0: seq_len, all a recompute reads); older
    ones are dropped, so a user's memory is bounded. A streaming state is fixed-size anyway.
    streaming: fold events into per-user states where the model streams (models/ssm/streaming.py);
    false recomputes from the window on every request (what the benchmark compares against).
    max_candidates, max_events, max_k: the most candidates one /score, events one /events, and
    items one /recommend may ask for.
    batch_wait_ms: how long a lone request waits for others to share its forward pass (0: a batch
    is whatever arrived while the model was busy with the previous one).
    max_batch_rows: the most rows (candidates, users) of one forward pass.
    snapshot_every_s: seconds between snapshots of windows and states (one more on shutdown).
    state_dir: where the write-ahead log and the snapshots live (default <run>/serving).
    """

    checkpoint: str = "best"
    device: str = "cpu"
    threads: int = 0
    seq_len: int = 0
    window: int = 0
    streaming: bool = True
    max_candidates: int = 1000
    max_events: int = 1000
    max_k: int = 1000
    batch_wait_ms: float = 0.0
    max_batch_rows: int = 8192
    snapshot_every_s: float = 60.0
    state_dir: str | None = None

    def __post_init__(self) -> None:
        ranges = {"device": (self.device in DEVICES, f"one of {list(DEVICES)}"),
                  "threads": (self.threads >= 0, ">= 0"), "seq_len": (self.seq_len >= 0, ">= 0 (0: the run's)"),
                  "window": (self.window >= 0, ">= 0 (0: seq_len)"),
                  "max_candidates": (self.max_candidates >= 1, ">= 1"), "max_events": (self.max_events >= 1, ">= 1"),
                  "max_k": (self.max_k >= 1, ">= 1"), "batch_wait_ms": (0 <= self.batch_wait_ms <= 1000, "in [0, 1000]"),
                  "max_batch_rows": (self.max_batch_rows >= 1, ">= 1"),
                  "snapshot_every_s": (self.snapshot_every_s > 0, "> 0")}
        for key, (ok, expected) in ranges.items():
            if not ok:
                raise MDAFError(f"serve config: key {key!r} must be {expected}, got {getattr(self, key)!r}")
