"""The data sets' calendars: documented windows and day boundaries, in Beijing time (UTC+8).

Both Tianchi data sets were logged in Beijing; days, hours and weekdays are read in that zone.
The generic source names its own zone (a fixed UTC offset, `utc_zone`).
"""
from __future__ import annotations

import datetime as dt

from common.errors import MDAFError

BEIJING = dt.timezone(dt.timedelta(hours=8), "UTC+8")
DAY = 86_400

# Alibaba display-ad click data (Tianchi 56): impressions and the behaviour log's 22 days.
TAOBAO_AD_IMPRESSION_DAYS = ("2017-05-06", "2017-05-13")
TAOBAO_AD_BEHAVIOR_DAYS = ("2017-04-22", "2017-05-13")
# Taobao user behaviour data (Tianchi 649).
USERBEHAVIOR_DAYS = ("2017-11-25", "2017-12-03")


def utc_zone(offset_hours: float) -> dt.tzinfo:
    """The fixed zone `offset_hours` from UTC (8: Beijing, the same object as BEIJING)."""
    return BEIJING if offset_hours == 8 else dt.timezone(dt.timedelta(hours=offset_hours))


def day_start(day: str, where: str = "date", zone: dt.tzinfo = BEIJING) -> int:
    """Unix seconds at 00:00 of `day` ("YYYY-MM-DD") in `zone`."""
    try:
        date = dt.date.fromisoformat(day)
    except (TypeError, ValueError):
        raise MDAFError(f"{where}: expected a date as YYYY-MM-DD, got {day!r}") from None
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=zone).timestamp())


def window(first_day: str, last_day: str, where: str = "window", zone: dt.tzinfo = BEIJING) -> tuple[int, int]:
    """[start, end) in Unix seconds covering `first_day` 00:00 to the end of `last_day` in `zone`."""
    start, end = day_start(first_day, where, zone), day_start(last_day, where, zone) + DAY
    if end <= start:
        raise MDAFError(f"{where}: last day {last_day} is before first day {first_day}")
    return start, end


def to_day(ts: int, zone: dt.tzinfo = BEIJING) -> str:
    """The calendar day in `zone` of Unix time `ts`, as YYYY-MM-DD."""
    return dt.datetime.fromtimestamp(ts, zone).date().isoformat()


def zone_name(zone: dt.tzinfo) -> str:
    return "Beijing time" if zone is BEIJING else str(zone)
