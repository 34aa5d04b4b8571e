"""The next-item preparation config: which file, how to read it, filtering, and the protocol.

Defaults are RecBole's for sequential models (which Mamba4Rec's code inherits): users and items
with at least 5 interactions (5-core, iterated until stable), leave-one-out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common.config import load_config
from common.errors import MDAFError
from data_prep.calendar import utc_zone, window
from data_prep.userbehavior import BTAGS

FORMATS = ("auto", "atomic", "movielens_100k", "movielens_1m", "csv", "parquet", "userbehavior")
PROTOCOLS = ("loo", "temporal", "days")
DAY_KEYS = ("val_days", "test_days", "utc_offset_hours")  # read by protocol days alone
REPEATS = ("keep", "drop_consecutive")


@dataclass
class NextItemConfig:
    """format: how `--data` is read (auto: by file name: `*.inter` atomic, `u.data`,
    `ratings.dat`, `UserBehavior.csv`, else by extension `.csv` / `.parquet`).
    user_column, item_column, time_column, rating_column: the columns of a generic CSV or Parquet
    (rating_column: None for none); separator: of a generic CSV.
    min_rating: keep interactions rated at least this (None: all). behaviors: UserBehavior types kept.
    k_core: users and items need at least this many interactions, filtered until both hold.
    repeats: keep | drop_consecutive (the same item twice in a row by one user: once).
    protocol: loo (leave-one-out: each user's last item tests, second-last validates, every
    earlier position trains) | temporal (global cut-offs at `temporal_quantiles` of all
    interaction times: targets before the first train, between validate, after test) | days
    (calendar days: targets on `val_days` validate, on `test_days` test, before them train; none
    after the test days; as a shop predicts tomorrow from everything up to today).
    val_days, test_days: [first, last] calendar days of protocol days, in the zone `utc_offset_hours`
    from UTC (8: Beijing, where Taobao's data sets were logged); None for UserBehavior.csv: the
    days of its CTR split (configs/data/userbehavior.yaml: validation 2017-12-02, test 2017-12-03).
    """

    format: str = "auto"
    user_column: str = "user_id"
    item_column: str = "item_id"
    time_column: str = "timestamp"
    rating_column: str | None = None
    separator: str = ","
    min_rating: float | None = None
    behaviors: list[str] = field(default_factory=lambda: ["pv", "cart", "fav", "buy"])
    k_core: int = 5
    repeats: str = "keep"
    protocol: str = "loo"
    temporal_quantiles: list[float] = field(default_factory=lambda: [0.8, 0.9])
    val_days: list[str] | None = None
    test_days: list[str] | None = None
    utc_offset_hours: float = 8.0

    def __post_init__(self) -> None:
        for key, value, allowed in (("format", self.format, FORMATS), ("protocol", self.protocol, PROTOCOLS),
                                    ("repeats", self.repeats, REPEATS)):
            if value not in allowed:
                raise MDAFError(f"next-item config: key {key!r} is {value!r}; expected one of {list(allowed)}")
        unknown = [b for b in self.behaviors if b not in BTAGS]
        if unknown:
            raise MDAFError(f"next-item config: key 'behaviors' holds {unknown}; UserBehavior's types are {BTAGS}")
        if self.k_core < 2:
            raise MDAFError(f"next-item config: key 'k_core' must be >= 2 (a history and a target), got {self.k_core}")
        q = self.temporal_quantiles
        if len(q) != 2 or not 0 < q[0] < q[1] < 1:
            raise MDAFError(f"next-item config: key 'temporal_quantiles' must be [a, b] with 0 < a < b < 1, got {q}")
        for key in ("val_days", "test_days"):
            days = getattr(self, key)
            if days is not None and len(days) != 2:
                raise MDAFError(f"next-item config: key {key!r}: expected [first_day, last_day], got {days!r}")
        if self.val_days is not None and self.test_days is not None:
            (_, val_end), (test_start, _) = self.day_bounds(self.val_days, self.test_days)
            if test_start < val_end:
                raise MDAFError(f"next-item config: key 'test_days' {self.test_days} must start after 'val_days' "
                                f"{self.val_days} end")

    def day_bounds(self, val_days: list[str], test_days: list[str]) -> tuple[tuple[int, int], tuple[int, int]]:
        """[start, end) in Unix seconds of the validation days and of the test days, in the config's zone."""
        zone = utc_zone(self.utc_offset_hours)
        return (window(*val_days, "next-item config: key 'val_days'", zone),
                window(*test_days, "next-item config: key 'test_days'", zone))


CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "data" / "next_item.yaml"


def load_next_item_config(path: str | Path | None = None, **overrides) -> NextItemConfig:
    """configs/data/next_item.yaml (or `path`), then `overrides`."""
    return load_config(NextItemConfig, path or CONFIG_PATH, overrides)
