"""The preparation config: which source, the time split, and the knobs of each pipeline.

Defaults per source live in configs/data/<source>.yaml; every value here is a config value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import load_config, load_yaml
from common.errors import MDAFError
from data_prep.calendar import TAOBAO_AD_BEHAVIOR_DAYS, TAOBAO_AD_IMPRESSION_DAYS, window
from data_prep.generic.schema import parse_schema

SOURCES = ("taobao_ad", "userbehavior", "generic")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "data"
GENERIC_SCHEMA = CONFIG_DIR / "generic.yaml"  # the generic source's default: the Taobao Ad files as a schema


@dataclass
class PrepConfig:
    """How to turn one source's raw files into a processed dataset."""

    source: str = "taobao_ad"
    # Split by Beijing calendar days, each [first, last] inclusive; train < val < test in time.
    train_days: list[str] = field(default_factory=lambda: ["2017-05-06", "2017-05-11"])
    val_days: list[str] = field(default_factory=lambda: ["2017-05-12", "2017-05-12"])
    test_days: list[str] = field(default_factory=lambda: ["2017-05-13", "2017-05-13"])
    # The data set's documented window of samples and of history behaviours; rows outside are
    # dropped and counted, and more than `max_out_of_window_fraction` of a file is an error.
    sample_days: list[str] = field(default_factory=lambda: list(TAOBAO_AD_IMPRESSION_DAYS))
    history_days: list[str] = field(default_factory=lambda: list(TAOBAO_AD_BEHAVIOR_DAYS))
    max_out_of_window_fraction: float = 0.05
    # Wrong input is counted in the summary and the log, and an error above its share of the file:
    max_missing_ad_fraction: float = 0.01  # impressions whose ad is not in ad_feature.csv (kept)
    max_duplicate_fraction: float = 0.05  # exact duplicate rows of the event files (dropped)
    max_bad_price_fraction: float = 0.01  # ads whose price is NaN, infinite or negative (-> missing)
    max_cut_line_fraction: float = 0.0001  # a last line with no newline after it (cut short; dropped)
    # UserBehavior: a pv is positive when the user carts, favours or buys the item within this
    # many hours after it (never past the end of the pv's own split).
    label_horizon_hours: float = 24.0
    # Vocabularies keep values seen at least this often in the train period.
    min_count: int = 1
    # Price is bucketed into this many quantile buckets of the train impressions.
    price_buckets: int = 20
    # Raw megabytes per user bucket: the unit of work held in memory at once.
    bucket_mb: int = 256
    # Taobao Ad without behavior_log.csv: warn and build click histories only (False), or fail.
    require_behavior_log: bool = False
    # The generic source only: its schema (data_prep/generic/schema.py), the mapping read from
    # --schema (default configs/data/generic.yaml). It holds the split, the windows and the label
    # horizon, so the days, label_horizon_hours, price_buckets and require_behavior_log above do not apply.
    schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise MDAFError(f"config key 'source': expected one of {SOURCES}, got {self.source!r}")
        if (self.source == "generic") != (self.schema is not None):
            raise MDAFError(f"config key 'schema' (--schema): for source 'generic' only, and required there "
                            f"(source is {self.source!r})")
        for key in ("train_days", "val_days", "test_days", "sample_days", "history_days"):
            days = getattr(self, key)
            if len(days) != 2:
                raise MDAFError(f"config key {key!r}: expected [first_day, last_day], got {days!r}")
            window(days[0], days[1], f"config key {key!r}")
        bounds = [self.split_bounds[s] for s in ("train", "val", "test")]
        for (a_start, a_end), (b_start, _), name in zip(bounds, bounds[1:], ("val_days", "test_days")):
            if b_start < a_end:
                raise MDAFError(f"config key {name!r}: must start after the previous split ends")
        lo, hi = self.sample_window
        if bounds[0][0] < lo or bounds[-1][1] > hi:
            raise MDAFError("config keys train_days/val_days/test_days: must lie inside sample_days "
                            f"{self.sample_days}")
        positive = {"label_horizon_hours": self.label_horizon_hours, "min_count": self.min_count,
                    "price_buckets": self.price_buckets, "bucket_mb": self.bucket_mb}
        for key, value in positive.items():
            if value <= 0:
                raise MDAFError(f"config key {key!r}: expected a positive number, got {value!r}")
        for key in ("max_out_of_window_fraction", "max_missing_ad_fraction", "max_duplicate_fraction",
                    "max_bad_price_fraction", "max_cut_line_fraction"):
            if not 0 <= getattr(self, key) <= 1:
                raise MDAFError(f"config key {key!r}: expected a value in [0, 1], got {getattr(self, key)!r}")

    @property
    def split_bounds(self) -> dict[str, tuple[int, int]]:
        """Each split's [start, end) in Unix seconds."""
        return {name: window(*getattr(self, f"{name}_days"))
                for name in ("train", "val", "test")}

    @property
    def sample_window(self) -> tuple[int, int]:
        return window(*self.sample_days)

    @property
    def history_window(self) -> tuple[int, int]:
        return window(*self.history_days)

    @property
    def label_horizon_s(self) -> int:
        return int(round(self.label_horizon_hours * 3600))


def default_config_path(source: str) -> Path:
    return CONFIG_DIR / f"{source}.yaml"


def load_prep_config(source: str, path: str | Path | None = None, **overrides) -> PrepConfig:
    """The config for `source`: its YAML defaults (or `path`), then `overrides`. For the generic
    source the defaults are the dataclass's, and `schema` (an override, else `path`'s key) is the
    path of the schema's YAML (default GENERIC_SCHEMA) or the mapping itself."""
    if source not in SOURCES:
        raise MDAFError(f"--source: expected one of {SOURCES}, got {source!r}")
    if source == "generic":
        given = overrides.get("schema", load_yaml(path).get("schema") if path is not None else None)
        overrides = {**({"source": "generic"} if path is None else {}), **overrides, "schema": read_schema(given)}
    cfg = load_config(PrepConfig, path or (None if source == "generic" else default_config_path(source)), overrides)
    if cfg.source != source:
        raise MDAFError(f"{path}: config key 'source' is {cfg.source!r} but {source!r} was asked for")
    return cfg


def read_schema(schema: str | Path | dict | None) -> dict[str, Any]:
    """A generic schema checked (one line naming its key when wrong): the mapping `schema`, or the
    one in the YAML file it names, relative to the working directory or else to the repository
    (GENERIC_SCHEMA when None)."""
    if isinstance(schema, dict):
        parse_schema(schema)
        return schema
    path = Path(schema or GENERIC_SCHEMA)
    if not path.is_file() and not path.is_absolute() and (CONFIG_DIR.parents[1] / path).is_file():
        path = CONFIG_DIR.parents[1] / path
    data = load_yaml(path)
    parse_schema(data, f"{path}: schema")
    return data

