"""Ablations: several models over several seeds on one dataset and recipe, then a table.

Every (model, seed) pair is an ordinary run in <results>/<model slug>/seed<k>/; a finished run is
skipped and an interrupted one resumed, so the grid can be stopped and started at will. A run
directory that holds a run of other settings (data, protocol, model, recipe, seed) stops the grid
before anything trains: skipping it would put this command on that run's figures. The seeds
pair the runs: seed k of every model sees the same data and sample order, so each model's
difference to the reference (MDAF-Full) is tested with a paired t-test over seeds,
    t = mean(d) / (sd(d) / sqrt(n)),  d_k = M_model,k - M_ref,k,  n - 1 degrees of freedom,
with M the first figure the runs are compared by (test AUC for CTR, test NDCG@10 for next-item).
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from common.atomic import atomic_write_bytes
from common.config import from_dict, load_yaml
from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from training.config import RESUME_FREE_KEYS, ExperimentConfig, load_experiment, merge, repo_path, resolve_section
from training.data import open_dataset
from training.distributed import Dist
from training.records import RankingMetrics, RunSummary, data_identity, read_summary
from training.run import resolved_config, run_experiment

log = logging.getLogger(__name__)

# settings of a run that do not change its figures, or that name its data by a path (the data is
# compared by its fingerprint instead)
NOT_COMPARED = {*(f"train.{key}" for key in RESUME_FREE_KEYS), "data.dir", "data.raw_dir", "data.prepared_dir",
                "data.prep_config"}


@dataclass
class AblationEntry:
    """model: a model YAML path or mapping, as in an experiment config; train: recipe keys this
    entry changes (e.g. {aux_loss: none})."""

    label: str
    model: Any
    train: dict[str, Any] = field(default_factory=dict)


@dataclass
class AblationConfig:
    """base: the experiment config every run starts from (data, recipe, criteria); models: the grid;
    reference: the label the others are compared with; seeds: training seeds; data: keys of the
    base's data section this grid changes (e.g. {synthetic: {seed: 1}}: another generator seed)."""

    base: str
    models: list[AblationEntry]
    reference: str
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    data: dict[str, Any] = field(default_factory=dict)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def load_ablation(path: str | Path) -> AblationConfig:
    cfg = from_dict(AblationConfig, load_yaml(repo_path(path) if not Path(path).is_file() else path), str(path))
    labels = [m.label for m in cfg.models]
    if cfg.reference not in labels:
        raise MDAFError(f"{path}: key 'reference' is {cfg.reference!r}; expected one of the model labels {labels}")
    return cfg


def run_grid(cfg: AblationConfig, results: Path, overrides: dict[str, Any], labels: list[str] | None = None) -> None:
    """Train every (model, seed) not finished yet, once every run already started is known to
    have this command's settings (check_started)."""
    chosen = [m for m in cfg.models if labels is None or m.label in labels]
    unknown = sorted(set(labels or []) - {m.label for m in cfg.models})
    if unknown:
        raise MDAFError(f"--models: unknown label(s) {unknown}; expected some of {[m.label for m in cfg.models]}")
    runs = {}
    for seed in cfg.seeds:
        for entry in chosen:
            exp = load_experiment(cfg.base, merge({"data": cfg.data}, merge(overrides, {"train": {**entry.train, "seed": seed}})))
            exp.model, exp.label = resolve_section(entry.model, f"ablation model {entry.label!r}"), entry.label
            runs[f"{slug(entry.label)}/seed{seed}"] = exp
    check_started(runs, results)
    for name, exp in runs.items():
        run_dir = results / name
        if _finished(run_dir):
            log.info("%s seed %d: finished already, skipped", exp.label, exp.train.seed)
            continue
        log.info("%s seed %d: training into %s", exp.label, exp.train.seed, run_dir)
        run_experiment(exp, name, results, resume=run_dir.exists())


def check_started(runs: dict[str, ExperimentConfig], results: Path) -> None:
    """MDAFError naming the first run directory under `results` whose run (finished or not) has
    other settings than `runs` (run name -> experiment) give it: another data set (its
    fingerprint), protocol, model, recipe or seed."""
    started = {name: exp for name, exp in runs.items() if (results / name / "config.yaml").is_file()}
    if not started:
        return
    dataset = open_dataset(next(iter(started.values())).data, Dist())  # one data set for the whole grid
    for name, exp in started.items():
        run_dir = results / name
        ours = json.loads(json.dumps(resolved_config(exp, name, dataset)))  # as config.yaml holds it
        theirs = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
        changed = _changed(theirs, ours)
        summary = _finished(run_dir)
        if summary is not None and summary.data.fingerprint:
            same, was = summary.data.fingerprint == dataset.meta_sha256, summary.data.identity
        else:  # interrupted (its checkpoint's fingerprint is checked on resume), or recorded before fingerprints
            was = (theirs.get("data") or {}).get("prepared_dir")
            same, was = was == ours["data"]["prepared_dir"], f"prepared in {was}"
        if not same:
            changed.insert(0, f"data {was} -> {_identity(dataset)}")
        if changed:
            more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
            raise MDAFError(f"{run_dir}: holds a run with other settings than this command ({'; '.join(changed[:4])}"
                            f"{more}); skipping or resuming it would put this command on that run's figures: pass "
                            f"another --results-dir for these settings, or remove {run_dir} to train it again")


def _changed(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """'key old -> new' for each setting (dotted key) that differs, but for NOT_COMPARED ones."""
    a, b = (_flat({k: v for k, v in c.items() if k in ("data", "model", "train", "ranking")}) for c in (theirs, ours))
    return [f"{key} {a.get(key, 'unset')!r} -> {b.get(key, 'unset')!r}" for key in sorted({*a, *b} - NOT_COMPARED)
            if a.get(key, "unset") != b.get(key, "unset")]


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        out |= _flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def _identity(dataset: ProcessedDataset) -> str:
    return data_identity(dataset.prepared_from or dataset.root.name, dataset.meta_sha256,
                         dataset.meta.get("protocol", ""), bool(dataset.meta.get("synthetic")))


def _finished(run_dir: Path) -> RunSummary | None:
    """The run's summary when it finished, else None."""
    try:
        return read_summary(run_dir / "summary.json")
    except MDAFError:
        return None


def collect(cfg: AblationConfig, results: Path) -> dict[str, dict[int, RunSummary]]:
    """label -> seed -> summary of every finished run of the grid; MDAFError when they trained on
    different data (one table compares runs on one data set)."""
    found: dict[str, dict[int, RunSummary]] = {}
    first: tuple[Path, RunSummary] | None = None
    for entry in cfg.models:
        for seed in cfg.seeds:
            run_dir = results / slug(entry.label) / f"seed{seed}"
            summary = _finished(run_dir)
            if summary is None:
                continue
            first = first or (run_dir, summary)
            if not summary.data.same_data(first[1].data):
                raise MDAFError(f"{results}: its finished runs trained on different data ({first[0]}: "
                                f"{first[1].data.identity}; {run_dir}: {summary.data.identity}); one table compares "
                                "runs on one data set: give each data set its own --results-dir")
            found.setdefault(entry.label, {})[seed] = summary
    return found


def paired_test(ours: list[float], ref: list[float]) -> tuple[float, float]:
    """(mean difference, two-sided p of the paired t-test); p is NaN below 2 pairs or with no spread."""
    d = np.asarray(ours) - np.asarray(ref)
    if len(d) < 2 or np.allclose(d, d[0]):
        return float(d.mean()) if len(d) else math.nan, math.nan
    return float(d.mean()), float(stats.ttest_rel(ours, ref).pvalue)


def table_rows(cfg: AblationConfig, found: dict[str, dict[int, RunSummary]]) -> list[dict[str, Any]]:
    """One row per model with finished runs: the mean and std over seeds of each test figure the
    runs are compared by (RunSummary.figures: AUC and logloss, or NDCG@10 and HR@10; keys
    "<name>_mean", "<name>_std" in lower case), and the paired difference of the first to the
    reference over the seeds both finished. Sorted by the first figure, best first."""
    ref = found.get(cfg.reference, {})
    rows = []
    for entry in cfg.models:
        runs = found.get(entry.label)
        if not runs:
            continue
        seeds = sorted(runs)
        names = [name for name, _ in runs[seeds[0]].figures]
        row: dict[str, Any] = {"label": entry.label, "model": runs[seeds[0]].model.name, "seeds": len(seeds),
                               "metrics": names}
        for i, name in enumerate(names):
            values = np.array([runs[s].figures[i][1] for s in seeds])
            row[f"{name.lower()}_mean"] = float(values.mean())
            row[f"{name.lower()}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        shared = [s for s in seeds if s in ref]
        ours, theirs = [runs[s].figures[0][1] for s in shared], [ref[s].figures[0][1] for s in shared]
        diff, p = paired_test(ours, theirs)
        wins = sum(a > b for a, b in zip(ours, theirs))
        is_ref = entry.label == cfg.reference
        row.update({
            "diff_vs_ref": 0.0 if is_ref else diff, "p_value": math.nan if is_ref else p,
            "wins_vs_ref": "" if is_ref else f"{wins}/{len(shared)}" if shared else "n/a",
            "params": runs[seeds[0]].model.params,
            "seconds_per_epoch": float(np.mean([runs[s].efficiency.seconds_per_epoch for s in seeds])),
            "best_epoch_mean": float(np.mean([runs[s].train.best_epoch for s in seeds])),
            "groups": target_groups([runs[s] for s in seeds]),
        })
        rows.append(row)
    return sorted(rows, key=lambda r: -r[f"{r['metrics'][0].lower()}_mean"])


def target_groups(summaries: list[RunSummary]) -> dict[str, float] | None:
    """Means over next-item runs of the share of test targets in the window ("repeat_share") and
    of HR, NDCG and MRR at 10 on the repeat and on the new targets ("repeat_ndcg@10", ...); None
    unless every run recorded them."""
    tests = [s.test for s in summaries]
    if not all(isinstance(t, RankingMetrics) and t.repeat is not None and t.new is not None for t in tests):
        return None
    out = {"repeat_share": float(np.mean([t.repeat.n / t.n for t in tests]))}
    for group in ("repeat", "new"):
        for name in ("hr", "ndcg", "mrr"):
            out[f"{group}_{name}@10"] = float(np.mean([getattr(getattr(t, group), name) for t in tests]))
    return out


# the columns of `group_cells`
GROUP_HEAD = ("in the window | repeat HR@10 | repeat NDCG@10 | repeat MRR@10 | new HR@10 | new NDCG@10 | "
              "new MRR@10")
GROUP_NOTE = ("In the window: the share of test targets the user has among the L items the model reads (repeat "
              "targets); repeat and new: the metrics on those targets and on the others (Li et al., SIGIR 2023, "
              "\"Repetition and Exploration in Sequential Recommendation\"). Means over seeds.")


def group_cells(groups: dict[str, float] | None) -> str:
    """The cells of GROUP_HEAD from `target_groups` (n/a for runs without them)."""
    if groups is None:
        return " | ".join(["n/a"] * (GROUP_HEAD.count("|") + 1))
    return " | ".join([f"{groups['repeat_share']:.1%}", *(_fmt(groups[f"{group}_{name}@10"]) for group in ("repeat", "new")
                                                          for name in ("hr", "ndcg", "mrr"))])


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]], reference: str) -> str:
    names = rows[0]["metrics"]
    head = ("| model | seeds | " + " | ".join(f"test {n} (mean ± std)" for n in names) + f" | Δ{names[0]} vs "
            + reference + " | paired t-test p | beats it | best epoch (mean) | params | s/epoch |\n"
            "|---|---|" + "---|" * len(names) + "---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        diff = "" if r["label"] == reference else "n/a" if math.isnan(r["diff_vs_ref"]) else f"{r['diff_vs_ref']:+.4f}"
        figures = " | ".join(f"{_fmt(r[m.lower() + '_mean'])} ± {_fmt(r[m.lower() + '_std'])}" for m in r["metrics"])
        lines.append(f"| {r['label']} | {r['seeds']} | {figures} | {diff} | "
                     f"{'' if r['label'] == reference else _fmt(r['p_value'], 3)} | {r['wins_vs_ref']} | "
                     f"{r['best_epoch_mean']:.1f} | {r['params']:,} | {r['seconds_per_epoch']:.0f} |")
    return head + "\n".join(lines) + "\n"


def summary_markdown(cfg: AblationConfig, rows: list[dict[str, Any]], found: dict[str, dict[int, RunSummary]],
                     command: str) -> str:
    """The generated summary: the table, the data and recipe it came from, and the oracle."""
    first = next(iter(next(iter(found.values())).values()))
    data, ctr = first.data, first.task == "ctr"
    recipe_seconds = sum(r.efficiency.total_seconds for runs in found.values() for r in runs.values())
    ref = next((r for r in rows if r["label"] == cfg.reference), None)
    main = rows[0]["metrics"][0]
    key = main.lower()
    title = "Baseline results (generated by experiments/run_ablations.py" if ctr else \
        "Next-item results (generated by experiments/run_next_item.py"
    out = [f"# {title}; do not edit by hand)", "", f"Command: `{command}`", ""]
    if ctr:
        out += [f"Data: {data.identity}, {data.source}, prepared in `{data.dir}`: {data.rows['train']:,} train, "
                f"{data.rows['val']:,} validation and {data.rows['test']:,} test impressions (split by day), "
                f"click rate {data.ctr['test']:.4f} on test; history windows of L = {data.seq_len}.", ""]
    else:
        out += [f"Data: {data.identity}, {data.source}, prepared in `{data.dir}`: {data.rows['train']:,} training, "
                f"{data.rows['val']:,} validation and {data.rows['test']:,} test targets, each ranked against the "
                f"whole catalogue; history windows of L = {data.seq_len}.", ""]
    if data.oracle:
        o = data.oracle["test"]
        truth = "click probabilities" if ctr else "next-item probabilities"
        other = f"logloss {o['logloss']:.4f}" if ctr else f"HR@10 {o['hr@10']:.4f}"
        out += [f"Synthetic data: the true {truth} score test {main} **{o[key]:.4f}** ({other}), "
                "the best any model can reach in expectation."]
        if ref:
            out += [f"{cfg.reference} reaches {ref[key + '_mean']:.4f}, {o[key] - ref[key + '_mean']:.4f} below it.", ""]
    out += [f"Test metrics of the best-validation evaluation of each run; std is over seeds (ddof 1). Δ{main} "
            "and the paired t-test compare each model with " + cfg.reference + " seed by seed (same data, same "
            f"sample order); 'beats it' counts the seeds where the model's {main} is higher.", "",
            markdown_table(rows, cfg.reference),
            f"{sum(len(v) for v in found.values())} runs, {recipe_seconds / 3600:.1f} h of training in all. "
            "Each run's report: <results-dir>/<model>/seed<k>/report.md."]
    if any(r["groups"] is not None for r in rows):
        out += ["", "## Repeat and new targets", "", GROUP_NOTE, "",
                f"| model | test {main} | {GROUP_HEAD} |", "|---|---|" + "---|" * (GROUP_HEAD.count("|") + 1),
                *(f"| {r['label']} | {_fmt(r[key + '_mean'])} | {group_cells(r['groups'])} |" for r in rows)]
    if ref:
        others = [r for r in rows if r["label"] != cfg.reference]
        spread = ref[key + "_std"] if not math.isnan(ref[key + "_std"]) else 0.0
        beaten = [r["label"] for r in others if r[key + "_mean"] < ref[key + "_mean"] - spread]
        ahead = [r["label"] for r in others if r[key + "_mean"] >= ref[key + "_mean"]]
        out += ["", f"Where {cfg.reference} stands: ahead of {', '.join(beaten) or 'none'} by more than its own "
                f"seed spread ({_fmt(ref[key + '_std'])}); "
                f"{'level with or behind ' + ', '.join(ahead) if ahead else 'no model is level with or ahead of it'}."]
    return "\n".join(out) + "\n"


def write_summary(cfg: AblationConfig, results: Path, command: str, doc: Path | None = None) -> list[dict]:
    """<results>/summary.{json,md} from the finished runs, and the same Markdown at `doc` when
    given (the repository's docs/ summary is rewritten only when asked)."""
    found = collect(cfg, results)
    if not found:
        raise MDAFError(f"{results}: no finished runs of this ablation to summarise")
    rows = table_rows(cfg, found)
    atomic_write_bytes(results / "summary.json", json.dumps(rows, indent=2).encode())
    text = summary_markdown(cfg, rows, found, command)
    atomic_write_bytes(results / "summary.md", text.encode())
    if doc is not None:
        atomic_write_bytes(doc, text.encode())
    log.info("ablation table (%s):\n%s", results / "summary.md", markdown_table(rows, cfg.reference))
    return rows
