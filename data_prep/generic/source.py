"""The generic CTR source: a click log described by a schema -> processed dataset.

The pipeline of the Taobao sources, driven by the schema (data_prep/generic/schema.py): the
samples' table and the log are streamed once into user buckets (one bucket in memory at a time),
side tables are read whole. Every check those sources make applies: missing columns named, values
of the wrong type with an example row, labels outside {0, 1}, times outside the table's window,
exact duplicates, a last line cut short, impressions whose side-table key is missing, bad numeric
values; each is counted in summary.txt and an error above its config bound. Vocabularies and
numeric fits come from the train split only. Histories are read strictly before each sample: the
`behavior` timeline from the log, the `click` timeline from the clicked impressions themselves (so
a schema without a log still has histories). With `samples_from_log`, the samples are the log's
rows of one type, labelled as the UserBehavior source labels its views, and the whole log is the
`behavior` timeline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from tqdm import tqdm

from common.errors import MDAFError
from data_prep import checks
from data_prep.buckets import count_buckets, drop_duplicates, read_bucket, scan_buckets, write_buckets
from data_prep.config import PrepConfig
from data_prep.generic import numeric
from data_prep.generic.fields import CALENDAR, POSITION, Plan
from data_prep.generic.schema import TYPE_FIELD, parse_schema
from data_prep.oracle import check_oracle, join_oracle
from data_prep.raw_files import explain_read_error, last_line_cut, read_keyed, require_file, scan_raw
from data_prep.samples import SampleWriter, split_column
from data_prep.static_features import calendar_columns
from data_prep.timeline import TimelineWriter, point_samples, raw_column, reachable
from data_prep.userbehavior import label_views
from data_prep.vocab import MISSING, Reused, ValueCounts, Vocab, encode, fill_missing, fixed_vocab, vocab_meta

log = logging.getLogger(__name__)

EVER = (-(2**62), 2**62)  # the window of a table that declares none


def prepare_generic(raw_dir: Path, cfg: PrepConfig, work: Path, out: Path, reused: Reused | None = None) -> dict:
    """Run the whole pipeline for `cfg.schema`; writes vocab/, timelines/, samples/ under `out`,
    returns meta. reused: the vocabularies and meta.json of an existing generic dataset
    (vocab.load_vocabularies) to encode with, numeric fits included; None fits them on train."""
    plan = Plan(parse_schema(cfg.schema))
    try:
        return _Pipeline(raw_dir, cfg, plan, work).run(out, reused)
    except pl.exceptions.PolarsError as exc:
        raise explain_read_error(exc, raw_dir, list(plan.specs.values())) from None


def raw_id(column: str, dtype: pl.DataType) -> pl.Expr:
    """A field's raw id as int64 (a sample's `<field>_raw`, a history's too): an integer id as it
    is, a text id by its 63-bit hash; MISSING (-1) where absent. Compared within one dataset only."""
    if dtype == pl.String:
        return pl.when(pl.col(column).is_null()).then(MISSING).otherwise((pl.col(column).hash(0) // 2).cast(pl.Int64))
    return fill_missing(pl.col(column), pl.Int64).cast(pl.Int64)


@dataclass
class _Pipeline:
    """One preparation. Its state grows stage by stage: the side tables (`sides`), the streamed
    tables (`scans`, `cut`, `n_buckets`), the split bounds (`bounds`), rows per file (`rows`), the
    vocabularies and numeric fits (`vocabs`, `fits`), and what was dropped or flagged (`drops`,
    from `counts`)."""

    raw_dir: Path
    cfg: PrepConfig
    plan: Plan
    work: Path
    drops: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"samples": 0, "log": 0, "no_sample": 0, "after_last": 0})

    def run(self, out: Path, reused: Reused | None) -> dict:
        plan, schema, cfg = self.plan, self.plan.schema, self.cfg
        self.sides = self._read_side_tables()
        big = [require_file(self.raw_dir, plan.specs[name]) for name in ("samples", "log") if name in plan.specs]
        self.n_buckets = count_buckets(big, cfg.bucket_mb)
        log.info("streaming %.0f MB of raw files once, into %d bucket(s)",
                 sum(p.stat().st_size for p in big) / 2**20, self.n_buckets)
        self.scans = self._bucket_tables()
        self.bounds = self._split_bounds()
        log.info("checking the raw rows")
        self._check()
        if reused is None:
            log.info("fitting vocabularies on the train split")
            vocabs, fits = self._fit()
        else:
            vocabs, fits = reused[0], reused[1].get("numeric", {})
            missing = [f for f in [*plan.static, *plan.log_fields] if f not in vocabs]
            if missing:
                raise MDAFError(f"--vocab-from: no vocabulary for field(s) {missing} in {reused[1].get('raw_dir')}'s "
                                "dataset: it was prepared with another schema")
        for vocab in vocabs.values():
            vocab.save(out / "vocab")
        self.vocabs, self.fits = vocabs, fits

        timelines = {}
        if plan.click:
            timelines["click"] = TimelineWriter(self.work, "click", plan.history, plan.history)
        if schema.log is not None:
            timelines["behavior"] = TimelineWriter(self.work, "behavior", plan.log_fields, plan.log_raw)
        samples = SampleWriter(self.work)
        for k in tqdm(range(self.n_buckets), desc="generic buckets", unit="bucket", disable=self.n_buckets < 2):
            frames = self._bucket(k)
            encoded, histories = self._samples_from_log(frames) if plan.from_log else self._impressions(frames)
            samples.add(point_samples(encoded, histories, timelines))
        self._count_duplicates()

        log.info("joining the buckets' samples and timelines")
        rows = samples.finish(out, self._sample_schema(list(timelines)))
        fields = {"click": plan.history, "behavior": plan.log_fields}
        raw_ids = {"click": plan.history, "behavior": plan.log_raw}
        meta = {
            "source": "generic",
            "synthetic": "oracle" in self.scans,
            **vocab_meta(vocabs),
            "static_fields": {f: f for f in plan.static},
            "target_fields": {f: f for f in plan.history},
            "raw_ids": plan.history,
            "timelines": {name: {"rows": writer.finish(out), "fields": {f: f for f in fields[name]},
                                 "raw_ids": raw_ids[name]} for name, writer in timelines.items()},
            "numeric": fits,
            "splits": {k: list(v) for k, v in self.bounds.items()},
            "split_by": schema.split.by,
            "utc_offset_hours": schema.utc_offset_hours,
            "rows": rows,
            "drops": self.drops,
            "user_buckets": self.n_buckets,
        }
        if plan.from_log:
            meta["label_horizon_hours"] = schema.samples_from_log.horizon_hours
        return meta

    # ----- reading -----
    def _path(self, name: str) -> Path:
        return self.raw_dir / self.plan.specs[name].name

    def _read_side_tables(self) -> list[tuple[str, pl.DataFrame]]:
        """(the key it joins on, the table with pipeline names) of each side table, read whole; bad
        numeric values made missing, counted and bounded."""
        sides = []
        for i, table in enumerate(self.plan.schema.side_tables):
            (key,) = table.of_kind("user", "item")
            frame = read_keyed(self.raw_dir, self.plan.specs[f"side{i}"], key.column)
            self._count_bad_numbers(frame.lazy(), table.of_kind("numeric"), self._path(f"side{i}"))
            sides.append((key.kind, frame.rename(self.plan.rename(table))))
        return sides

    def _count_bad_numbers(self, lf: pl.LazyFrame, columns: list, path: Path) -> None:
        """Rows with a numeric value that is NaN, infinite or below its column's `min`: made missing,
        counted and bounded (max_bad_price_fraction, the Taobao price's bound)."""
        if not columns:
            return
        bad = pl.any_horizontal(checks.bad_number(c.column, c.min) for c in columns)
        n_rows, n_bad = lf.select(pl.len(), bad.sum()).collect(engine="streaming").row(0)
        what = "have a numeric value that is NaN, infinite or below its min (kept, missing)"
        self.drops[f"{path.name}: a numeric value NaN, infinite or below its min (kept, missing)"] = \
            checks.limit_share(int(n_bad or 0), n_rows, self.cfg.max_bad_price_fraction, "max_bad_price_fraction",
                               path, what)

    def _bucket_tables(self) -> dict[str, tuple[pl.LazyFrame, pl.Schema]]:
        """Stream the samples' table, the log and the oracle into buckets by user (by row without a
        user column); each with every bucket's rows under the file's column names, and its schema."""
        plan, scans, self.cut = self.plan, {}, {}
        users = {"samples": plan.column(plan.samples, "user"),
                 "log": plan.column(plan.schema.log, "user") if plan.schema.log is not None else None,
                 "oracle": plan.schema.oracle.user if plan.schema.oracle is not None else None}
        for name, user in users.items():
            if name not in plan.specs or (name == "oracle" and not self._path(name).is_file()):
                continue  # the oracle's file: synthetic sets only
            spec = plan.specs[name]
            path = require_file(self.raw_dir, spec)
            self.cut[name] = not spec.parquet and last_line_cut(path)
            raw = scan_raw(self.raw_dir, spec, drop_last_line=self.cut[name])
            if name == "samples" and not plan.has_time:
                raw = raw.with_row_index(POSITION).with_columns(pl.col(POSITION).cast(pl.Int64))
                user = user or POSITION
            write_buckets(raw, user, self.n_buckets, self.work / name)
            scans[name] = (scan_buckets(self.work / name), raw.collect_schema())
        return scans

    def _bucket(self, k: int) -> dict[str, pl.LazyFrame]:
        """Bucket `k` of each streamed table, with pipeline names."""
        plan = self.plan
        frames = {name: read_bucket(self.work / name, k, schema) for name, (_, schema) in self.scans.items()}
        renames = {"samples": plan.rename(plan.samples) | {POSITION: "time"},
                   "log": plan.rename(plan.schema.log) if "log" in frames else {}}
        if "oracle" in frames:
            o = plan.schema.oracle
            renames["oracle"] = {o.user: "user", o.time: "time"}
        return {name: frame.rename(renames[name], strict=False) for name, frame in frames.items()}

    # ----- splits and checks -----
    def _split_bounds(self) -> dict[str, tuple[int, int]]:
        """Each split's [start, end): the schema's days, or quantiles of the sample times (inside the
        window), or fractions of the row positions."""
        schema, (lf, _) = self.plan.schema, self.scans["samples"]
        bounds = schema.split_bounds()
        if bounds is not None:
            return bounds
        split = schema.split
        if split.by == "position":
            n = lf.select(pl.len()).collect(engine="streaming").item()
            a, b = int(n * split.val_from), int(n * split.test_from)
            return {"train": (0, a), "val": (a, b), "test": (b, n)}
        time = self.plan.column(self.plan.samples, "time")
        lo, hi = schema.window(self.plan.samples) or EVER
        lf = lf.filter(pl.col(time).is_between(lo, hi, closed="left"))
        if self.plan.from_log:
            lf = lf.filter(pl.col(self.plan.column(self.plan.samples, "type")) == schema.samples_from_log.type)
        q = lf.select(first=pl.col(time).min(), val=pl.col(time).quantile(split.val_from, "lower"),
                      test=pl.col(time).quantile(split.test_from, "lower"), last=pl.col(time).max()) \
            .collect(engine="streaming").row(0)
        if q[0] is None:
            raise MDAFError(f"{self._path('samples')}: no sample inside the window to split by quantiles")
        first, val, test, last = (int(v) for v in q)
        return {"train": (first, val), "val": (val, test), "test": (test, last + 1)}

    def _check(self) -> None:
        """Fail on bad rows; count into `drops` what is dropped or flagged."""
        plan, schema, cfg = self.plan, self.plan.schema, self.cfg
        lf, path, spec = self.scans["samples"][0], self._path("samples"), plan.specs["samples"]
        col = {kind: plan.column(plan.samples, kind) for kind in ("user", "item", "label", "time")}
        if plan.from_log:
            self.rows = {"samples": self._check_log(lf, path, plan.samples)}
        else:
            checks.require_no_nulls(lf, [c for c in col.values() if c is not None], path)
            checks.require_none(lf, ~pl.col(col["label"]).is_in([0, 1]), path, col["label"],
                                f"a label in {{0, 1}}{spec.where(col['label'])}")
            self.rows = {"samples": self._count_window(lf, path, plan.samples)}
            self._check_impressions(lf, path, col)
        if col["time"] is not None:
            kept = " (kept in histories only)" if plan.from_log else ""
            self.drops[f"{path.name}: inside the window but in no split{kept}"] = checks.count_between_splits(
                lf, col["time"], schema.window(plan.samples) or EVER, self.bounds)
        if "log" in self.scans:
            self.rows["log"] = self._check_log(self.scans["log"][0], self._path("log"), schema.log)
        for name, n in self.rows.items():
            path = self._path(name)
            self.drops[f"{path.name}: last line cut short (no newline after it)"] = checks.limit_cut_line(
                self.cut[name], n, cfg.max_cut_line_fraction, path)
        if "oracle" in self.scans:
            check_oracle(self.scans["oracle"][0], [schema.oracle.user, schema.oracle.time], self._path("oracle"))

    def _count_window(self, lf: pl.LazyFrame, path: Path, table) -> int:
        """The rows of `table`, counting (and bounding) those outside its window."""
        window, time = self.plan.schema.window(table), self.plan.column(table, "time")
        if window is None:
            return lf.select(pl.len()).collect(engine="streaming").item()
        rows, n_out = checks.count_outside_window(lf, time, window, path, self.cfg.max_out_of_window_fraction,
                                                  self.plan.schema.zone)
        self.drops[f"{path.name}: {time} outside {'..'.join(table.window)}"] = n_out
        return rows

    def _check_impressions(self, lf: pl.LazyFrame, path: Path, col: dict) -> None:
        """Impressions whose side-table key is missing (bounded for item tables: user profiles are
        often incomplete, as in the Taobao Ad files), and bad numeric values."""
        rows = self.rows["samples"]
        for (kind, frame), table in zip(self.sides, self.plan.schema.side_tables):
            missing = lf.join(frame.lazy().select(kind), left_on=col[kind], right_on=kind, how="anti") \
                .select(pl.len()).collect(engine="streaming").item()
            what = f"{path.name}: {kind} missing from {table.file} (kept, its features missing)"
            if kind == "item":
                missing = checks.limit_share(missing, rows, self.cfg.max_missing_ad_fraction,
                                             "max_missing_ad_fraction", path,
                                             f"show an item missing from {table.file} (kept, its features missing)")
            self.drops[what] = missing
        self._count_bad_numbers(lf, self.plan.samples.of_kind("numeric"), path)

    def _check_log(self, lf: pl.LazyFrame, path: Path, table) -> int:
        """A log's rows: ids, time and type present, types known; rows outside its window counted."""
        col = {kind: self.plan.column(table, kind) for kind in ("user", "item", "time", "type")}
        checks.require_no_nulls(lf, [c for c in col.values() if c is not None], path)
        if col["type"] is not None:
            values = table.one("type").values
            checks.require_none(lf, ~pl.col(col["type"]).is_in(values), path, col["type"], f"one of {values}")
        return self._count_window(lf, path, table)

    # ----- vocabularies -----
    def _fit(self) -> tuple[dict[str, Vocab], dict]:
        """Every vocabulary and numeric fit from the train split, one bucket at a time: users, and
        the candidate's fields, from train samples; the history fields also from the log's rows
        before the train split ends."""
        plan, cfg = self.plan, self.cfg
        start, end = self.bounds["train"]
        counts, moments = ValueCounts(), numeric.Moments()
        for k in tqdm(range(self.n_buckets), desc="vocabularies", unit="bucket", disable=self.n_buckets < 2):
            frames = self._bucket(k)
            if plan.from_log:
                early = self._log_rows(self._in_window(frames["samples"], plan.samples), plan.samples)
                early = early.filter(pl.col("time") < end).collect()
                views = early.filter((pl.col("time") >= start)
                                     & (pl.col(TYPE_FIELD) == plan.schema.samples_from_log.type))
                counts.add("user", views["user"])
                for f in plan.history:
                    counts.add(f, early[f])
                continue
            train = frames["samples"].unique().filter(pl.col("time").is_between(start, end, closed="left"))
            train = self._joined(train).collect()
            for f in [*plan.ids, *plan.categorical]:
                counts.add(f, train[f])
            for f, column in plan.numeric.items():
                numeric.count_train(f, column, train[f], counts, moments)
            if "log" in frames:
                lo, _ = plan.schema.window(plan.schema.log) or EVER
                early = self._log_rows(frames["log"], plan.schema.log)
                early = early.filter(pl.col("time").is_between(lo, end, closed="left")).select(plan.log_raw).collect()
                for f in plan.log_raw:
                    counts.add(f, early[f])
        vocabs = {f: counts.vocab(f, self._min_count(f)) for f in [*plan.ids, *plan.categorical]}
        fits = {}
        for f, column in plan.numeric.items():
            vocabs[f], fits[f] = numeric.fit(f, column, counts, moments, column.min_count or cfg.min_count)
        if plan.schema.log is not None and plan.schema.log.one("type") is not None:
            vocabs[TYPE_FIELD] = fixed_vocab(TYPE_FIELD, plan.schema.log.one("type").values)
        if CALENDAR[0] in plan.static:
            vocabs |= {"hour": fixed_vocab("hour", list(range(24))), "dow": fixed_vocab("dow", list(range(7)))}
        return vocabs, fits

    def _min_count(self, field: str) -> int:
        column = self.plan.categorical.get(field)
        return (column.min_count if column is not None else None) or self.cfg.min_count

    def _in_window(self, lf: pl.LazyFrame, table) -> pl.LazyFrame:
        lo, hi = self.plan.schema.window(table) or EVER
        return lf.filter(pl.col("time").is_between(lo, hi, closed="left"))

    def _log_rows(self, lf: pl.LazyFrame, table) -> pl.LazyFrame:
        """A log's rows without exact duplicates when it names items (a repeat is one event logged
        twice); a log without item ids keeps them: two items of one category in the same second are
        identical rows, and real events (the Taobao behaviour log). Used where rows are counted."""
        return lf.unique() if table.one("item") is not None else lf

    def _joined(self, imp: pl.LazyFrame) -> pl.LazyFrame:
        """Impressions with their side tables' fields, numeric fields prepared (numeric.prepared)."""
        for key, frame in self.sides:
            imp = imp.join(frame.lazy(), on=key, how="left")
        return imp.with_columns(numeric.prepared(f, c) for f, c in self.plan.numeric.items())

    # ----- one bucket -----
    def _encode(self, frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
        """`<f>_idx` for each of `fields` with a fitted or fixed vocabulary."""
        return encode(frame, {f"{f}_idx": (f, self.vocabs[f]) for f in fields})

    def _select_samples(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The sample columns (the Taobao sources' order), sorted by user and time first so pointer
        searches run in order (joins do not keep row order)."""
        plan = self.plan
        static = {}
        for f in plan.static:
            fitted = self.fits.get(f, {})
            static[f] = numeric.index(f, fitted) if fitted.get("transform") in ("quantile", "standardise") \
                else pl.col(f if f in CALENDAR else f"{f}_idx")
        user_id = raw_id("user", plan.ids["user"]) if "user" in plan.ids else pl.lit(MISSING, dtype=pl.Int64)
        encoded = frame.select(
            "split", label=pl.col("label").cast(pl.Int8), time=pl.col("time"), user_id=user_id, **static,
            **({"oracle_p": pl.col("oracle_p")} if "oracle_p" in frame.columns else {}),
            **{raw_column(f): raw_id(f, self._dtype(f)) for f in plan.history})
        return encoded.sort(["user_id", "time", *encoded.columns])

    def _dtype(self, field: str) -> pl.DataType:
        return self.plan.ids[field] if field in self.plan.ids else self.plan.dtype(self.plan.categorical[field])

    def _history(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Log rows, encoded (`<f>_idx` of each log field), as `behavior` timeline rows."""
        plan = self.plan
        user_id = raw_id("user", plan.ids["user"])
        return rows.select(user_id=user_id, time=pl.col("time"), **{f: pl.col(f"{f}_idx") for f in plan.log_fields},
                           **{raw_column(f): raw_id(f, self._dtype(f)) for f in plan.log_raw})

    def _impressions(self, frames: dict[str, pl.LazyFrame]) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
        """One bucket's samples from an impressions file, and its histories."""
        plan, schema = self.plan, self.plan.schema
        imp, n_duplicates = drop_duplicates(frames["samples"].collect())
        self.counts["samples"] += n_duplicates
        imp = self._joined(imp.lazy().with_columns(split=split_column("time", self.bounds))
                           .filter(pl.col("split").is_not_null()))
        if CALENDAR[0] in plan.static:
            imp = imp.with_columns(calendar_columns("time", schema.offset_s))
        imp = imp.collect()
        if "oracle" in frames:
            imp = join_oracle(imp, frames["oracle"], ["user", "time"], schema.oracle.file)
        encoded_fields = [f for f in plan.static if f not in CALENDAR and self.fits.get(f, {}).get("transform")
                          not in ("quantile", "standardise")]
        encoded = self._select_samples(self._encode(imp, encoded_fields))
        histories = {}
        if plan.click:
            histories["click"] = encoded.filter(pl.col("label") == 1)
        if "log" in frames:
            beh = frames["log"].collect()
            unique = self._log_rows(beh.lazy(), schema.log).collect()
            self.counts["log"] += beh.height - beh.unique().height
            beh = self._in_window(unique.lazy(), schema.log).with_columns(user_id=raw_id("user", plan.ids["user"]))
            used, no_sample, after_last = reachable(beh.collect(), encoded, "user_id", "time")
            self.counts["no_sample"] += no_sample
            self.counts["after_last"] += after_last
            histories["behavior"] = self._history(self._encode(used, plan.log_fields))
        return encoded, histories

    def _samples_from_log(self, frames: dict[str, pl.LazyFrame]) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
        """One bucket's samples from the log's rows (UserBehavior's labels), and the log as history."""
        plan, schema = self.plan, self.plan.schema
        rows, n_duplicates = drop_duplicates(self._in_window(frames["samples"], plan.samples).collect())
        self.counts["samples"] += n_duplicates
        # every row encoded once: the samples are a subset, labelled on raw ids (OOV items differ)
        rows = self._encode(rows, list(dict.fromkeys([f for f in plan.static if f not in CALENDAR] + plan.log_fields)))
        frm = schema.samples_from_log
        views = label_views(rows, self.bounds, int(round(frm.horizon_hours * 3600)), frm.type, frm.conversions)
        if CALENDAR[0] in plan.static:
            views = views.with_columns(calendar_columns("time", schema.offset_s))
        if "oracle" in frames:
            views = join_oracle(views, frames["oracle"], ["user", "time"], schema.oracle.file)
        return self._select_samples(views), {"behavior": self._history(rows)}

    def _count_duplicates(self) -> None:
        plan, cfg = self.plan, self.cfg
        tables = {"samples": plan.samples} | ({"log": plan.schema.log} if "log" in self.rows else {})
        for name, table in tables.items():
            fate = "dropped" if name == "samples" or table.one("item") is not None else "kept: no item id"
            path = self._path(name)
            self.drops[f"{path.name}: exact duplicate of an earlier row ({fate})"] = checks.limit_duplicates(
                self.counts[name], self.rows[name], cfg.max_duplicate_fraction, path, fate)
        if "log" in self.rows:
            name = self._path("log").name
            self.drops[f"{name}: user has no impression in any split"] = self.counts["no_sample"]
            self.drops[f"{name}: after the user's last impression (in no history)"] = self.counts["after_last"]

    def _sample_schema(self, timelines: list[str]) -> pl.Schema:
        schema = {"label": pl.Int8, "time": pl.Int64, "user_id": pl.Int64, **{f: pl.Int32 for f in self.plan.static}}
        for name in sorted(timelines):
            schema |= {f"{name}_start": pl.Int64, f"{name}_end": pl.Int64}
        if "oracle" in self.scans:
            schema["oracle_p"] = pl.Float32
        return pl.Schema(schema | {raw_column(f): pl.Int64 for f in self.plan.history})
