"""The report's sections, built from a loaded run and the figures computed from it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.ranking import ranking_metrics
from training.report.compare import RunRow
from training.report.criteria import CriterionResult
from training.report.document import Document, Facts, Image, Section, Table, num
from training.report.gate import HISTORY_BINS, GateStats, bin_name, describe_shape
from training.report.run_files import Run, as_float

LEARNING_CURVES = "learning_curves.png"
GATE_DISTRIBUTION = "gate_distribution.png"
RELIABILITY = "reliability.png"


def build_document(run: Run, criteria: list[CriterionResult] | None, runs: list[RunRow],
                   results_root: Path, gate: GateStats | None) -> Document:
    """Title and the numbered sections; success criteria for a CTR run, the gate section for a run
    with a gate."""
    test = test_section(run) if run.summary.task == "ctr" else ranking_section(run)
    sections = [data_section(run), epochs_section(run), stopping_section(run), test]
    if criteria is not None:
        sections.append(criteria_section(criteria))
    sections += [comparison_section(runs, results_root), efficiency_section(run)]
    if gate is not None:
        sections.append(gate_section(gate))
    for number, section in enumerate(sections, 1):
        section.title = f"{number}. {section.title}"
    summary = run.summary
    header = Section("Run", [Facts([
        ("run", summary.run_name), ("label", run.label), ("model", summary.model.name),
        ("experiment", summary.experiment), ("task", TASKS[summary.task]),
        ("train config", _settings(run.config.get("train"))),
    ])])
    return Document(f"Training report: {summary.run_name}", [header, *sections])


TASKS = {"ctr": "click-through rate", "next_item": "next-item ranking over the whole catalogue"}


def metric_name(key: str) -> str:
    """A metric's key as the report writes it: auc -> AUC, ndcg@10 -> NDCG@10; logloss stays."""
    return key if key == "logloss" else key.upper()


def data_section(run: Run) -> Section:
    data = run.summary.data
    source = data.source + (" (synthetic)" if data.synthetic else "")
    ctr = run.summary.task == "ctr"
    headers, align = (["split", "rows", "CTR"], "lrr") if ctr else (["split", "targets"], "lr")
    blocks: list[Any] = [
        Facts([("source", source), ("dir", data.dir), ("sequence length", str(data.seq_len))]),
        Table(headers, [[s, num(data.rows[s], ","), num(data.ctr.get(s))][: len(headers)] for s in data.rows], align),
    ]
    oracle = run.oracle
    if not oracle:
        return Section("Data", blocks)
    if ctr:
        blocks.append("The oracle scores the true click probabilities of the synthetic data: the "
                      "best any model could reach.")
        keys = ["auc", "logloss"]
    else:
        blocks.append("The oracle ranks the catalogue by the true next-item probabilities of the synthetic "
                      "data: the best any model could reach in expectation.")
        keys = ["hr@10", "ndcg@10", "mrr@10"]
    blocks.append(Table(["split", *(f"oracle {metric_name(k)}" for k in keys)],
                        [[s, *(num(oracle[s].get(k)) for k in keys)] for s in ("val", "test") if oracle.get(s)],
                        "l" + "r" * len(keys)))
    name, value = run.summary.figures[0]
    best = as_float(oracle["test"].get(name.lower()))
    if ctr:
        lift = (value - 0.5) / (best - 0.5) if best > 0.5 else float("nan")
        blocks.append(f"Test AUC {num(value)} captures {num(100 * lift, '.1f')}% of the "
                      f"achievable lift over 0.5 (oracle test AUC {num(best)}).")
    else:
        blocks.append(f"Test {name} {num(value)} is {num(100 * value / best, '.1f')}% of the oracle's "
                      f"{num(best)}.")
    return Section("Data", blocks)


def epochs_section(run: Run) -> Section:
    train_keys = list(dict.fromkeys(k for e in run.epochs for k in e.train))
    val_keys = list(dict.fromkeys(k for e in run.epochs for k in e.val))
    diagnostics = list(dict.fromkeys(name for e in run.epochs for name in e.diagnostics))
    headers = ["epoch", "step", "lr", "train loss", *(f"train {metric_name(k)}" for k in train_keys),
               *(f"val {metric_name(k)}" for k in val_keys), "gap", "status",
               *(name.replace("_", " ") for name in diagnostics)]
    rows = [[str(e.epoch), str(e.step), num(e.lr, ".3g"), num(e.train_loss),
             *(num(e.train.get(k)) for k in train_keys), *(num(e.val.get(k)) for k in val_keys),
             num(e.gap, "+.4f"), e.status, *(num(e.diagnostics.get(name), ".3f") for name in diagnostics)]
            for e in run.epochs]
    align = "r" * (5 + len(train_keys) + len(val_keys)) + "l" + "r" * len(diagnostics)
    monitor = metric_name(run.summary.train.monitor)
    if run.summary.task == "ctr":
        about = ("train loss: the training objective (smoothed targets, plus Tri-BCE's terms where the "
                 "model has sub-network heads); train AUC and logloss: of the training predictions since "
                 "the previous evaluation, the quantities val AUC and logloss measure.")
    else:
        about = ("train loss: cross-entropy of the target over the whole catalogue; train HR, NDCG and "
                 "MRR: of the training targets since the previous evaluation, ranked as the validation "
                 "targets are.")
    blocks: list[Any] = [Table(headers, rows, align),
                         "One row per evaluation: at the end of each epoch, and every `eval_every` steps when set. "
                         f"{about} gap: train {monitor} minus val {monitor}, the metric early stopping watches."]
    if run.resumed_epochs:
        blocks.append(f"The run was resumed: metrics.jsonl records evaluations of epoch(s) "
                      f"{', '.join(map(str, run.resumed_epochs))} more than once; the last record "
                      f"of each is shown.")
    blocks.append(Image(LEARNING_CURVES, "Learning curves"))
    return Section("Epochs", blocks)


def stopping_section(run: Run) -> Section:
    train, best = run.summary.train, run.best
    name = metric_name(train.monitor)
    return Section("Best epoch and stopping", [Facts([
        ("best evaluation", f"epoch {train.best_epoch} (step {train.best_step}) of {train.epochs_run} run"),
        ("at the best evaluation", f"val {name} {num(best.val.get(train.monitor))}, train {name} "
                                   f"{num(best.train.get(train.monitor))}, gap {num(best.gap, '+.4f')}"),
        ("stopped because", train.stop_reason),
    ])])


def test_section(run: Run) -> Section:
    test, calibration, oracle = run.summary.test, run.summary.calibration, run.oracle
    oracle_test = (oracle or {}).get("test") or {}
    rows = [["AUC", num(test.auc), num(test.auc), num(oracle_test.get("auc"))],
            ["logloss", num(test.logloss_raw), num(test.logloss), num(oracle_test.get("logloss"))],
            ["group AUC", num(test.gauc), num(test.gauc), "-"],
            ["mean prediction", num(test.mean_pred_raw), num(test.mean_pred), "-"],
            ["expected calibration error", num(test.ece_raw), num(test.ece), "-"],
            ["click rate", num(test.ctr), num(test.ctr), "-"],
            ["samples", num(test.n, ","), num(test.n, ","), "-"]]
    headers, align = ["metric", "before calibration", "value"], "lrr"
    if oracle_test:
        headers, align = headers + ["oracle"], align + "r"
    else:
        rows = [r[:-1] for r in rows]
    return Section("Test (best weights)", [
        Table(headers, rows, align), _calibration(test.mean_pred, test.ctr),
        f"Calibration: p = sigma({calibration['a']:.3f} z + {calibration['b']:.3f}), fitted on the validation "
        "split after training (Platt scaling; training/calibration.py); 'before calibration' is the model's "
        "own sigma(z). AUC and group AUC do not change.", Image(RELIABILITY, "Reliability diagram")])


def ranking_section(run: Run) -> Section:
    """Next-item test: HR, NDCG and MRR at each cutoff, the oracle's beside them, and by history length."""
    test, oracle_test = run.summary.test, ((run.oracle or {}).get("test") or {})
    cutoffs = list(test.hr)
    rows = [[f"{metric_name(name)}@{k}", num(getattr(test, name)[k]),
             *([num(oracle_test.get(f"{name}@{k}"))] if oracle_test else [])]
            for name in ("hr", "ndcg", "mrr") for k in cutoffs]
    headers = ["metric", "value", *(["oracle"] if oracle_test else [])]
    masked = bool((run.config.get("ranking") or {}).get("mask_history"))
    blocks: list[Any] = [
        Table(headers, rows, "l" + "r" * (len(headers) - 1)),
        f"{test.n:,} test targets, each ranked against every item of the catalogue (no sampled negatives); "
        "ties rank above the target, so a constant score ranks it last. "
        + ("The window's items are taken out of the ranking (mask_history)." if masked else
           "Items already in the history stay in the ranking (mask_history: false, RecBole's default).")]
    if test.repeat is not None and test.new is not None:
        blocks += [Table(["targets", "count", "share", "HR@10", "NDCG@10", "MRR@10"],
                         [[name, num(group.n, ","), f"{group.n / max(test.n, 1):.1%}", num(group.hr), num(group.ndcg),
                           num(group.mrr)] for name, group in (("repeat: in the window", test.repeat),
                                                               ("new: not in the window", test.new))], "lrrrrr"),
                   "A repeat target is an item the user has in the window the model reads (the last "
                   f"{run.summary.data.seq_len} items); a model can score high by recommending what the user "
                   "just saw (Li et al., SIGIR 2023, \"Repetition and Exploration in Sequential Recommendation\")."]
    lengths = run.predictions["history_length"].to_numpy()
    ranks = run.predictions["rank"].to_numpy()
    groups = [(bin_name(lo, hi), (lengths >= lo) & (lengths <= (np.inf if hi is None else hi)))
              for lo, hi in HISTORY_BINS]
    groups = [(name, mask) for name, mask in groups if mask.any()]
    if len(groups) > 1:
        blocks.append(Table(["history length", "targets", "HR@10", "NDCG@10"],
                            [[name, num(int(mask.sum()), ","), *(num(ranking_metrics(ranks[mask], (10,))[k])
                                                                 for k in ("hr@10", "ndcg@10"))]
                             for name, mask in groups], "lrrr"))
    return Section("Test (best weights)", blocks)


def _calibration(mean_pred: float | None, ctr: float | None) -> str:
    if not mean_pred or not ctr:
        return "Mean prediction: not available (no mean prediction or no clicks)."
    ratio = mean_pred / ctr
    direction = "above" if ratio >= 1 else "below"
    return (f"Mean prediction {mean_pred:.4f}: {abs(ratio - 1):.1%} {direction} the click rate {ctr:.4f} "
            f"(ratio {ratio:.3f}).")


def criteria_section(results: list[CriterionResult]) -> Section:
    rows = [[r.name, r.measured, r.requirement, "PASS" if r.passed else "FAIL"] for r in results]
    failed = [r.name for r in results if not r.passed]
    overall = (f"Overall: PASS, all {len(results)} criteria met." if not failed else
               f"Overall: FAIL, {len(results) - len(failed)} of {len(results)} criteria met "
               f"(failed: {', '.join(failed)}).")
    return Section("Success criteria", [Table(["criterion", "measured", "requirement", "result"],
                                              rows, "llll"), overall])


def comparison_section(runs: list[RunRow], results_root: Path) -> Section:
    this = next(r for r in runs if r.this)
    same = [r for r in runs if r.same_data]
    other = sorted({r.data for r in runs if not r.same_data})
    apart = ([f"Not compared: {len(runs) - len(same)} finished run(s) of this task on other data "
              f"({'; '.join(other[:3])}{'; ...' if len(other) > 3 else ''})."] if other else [])
    if len(same) < 2:
        return Section("Comparison", [f"No other finished runs of this task on this data ({this.data}) were "
                                      f"found under {results_root}.", *apart])
    rows = [[r.run + (" (this run)" if r.this else ""), r.label, r.model,
             *(num(value) for _, value in r.figures), num(r.best_epoch, "d"), num(r.params, ",")] for r in same]
    names = [name for name, _ in runs[0].figures]
    return Section("Comparison", [
        f"Finished runs of the same task on the same data ({this.data}: the file or folder it was prepared "
        f"from, the fingerprint of the prepared dataset and the split) under the results folder, best test "
        f"{names[0]} first.",
        Table(["run", "label", "model", *(f"test {name}" for name in names), "best epoch", "params"],
              rows, "lll" + "r" * (len(names) + 2)), *apart])


def efficiency_section(run: Run) -> Section:
    e = run.summary.efficiency
    return Section("Efficiency", [Facts([
        ("seconds per epoch", num(e.seconds_per_epoch, ".1f")),
        ("train samples/s", num(e.train_samples_per_s, ",.0f")),
        ("eval samples/s", num(e.eval_samples_per_s, ",.0f")),
        ("peak memory", "-" if e.peak_memory_mb is None else f"{e.peak_memory_mb:,.0f} MB"),
        ("parameters", num(e.params, ",")),
        ("device", e.device),
        ("world size", str(e.world_size)),
        ("total time", _duration(e.total_seconds)),
    ])])


def gate_section(stats: GateStats) -> Section:
    blocks: list[Any] = [
        "The fusion gate g weighs the sequential branch against the static one (models/mdaf/fusion.py): "
        "g near 1 leans on the behaviour sequence, near 0 on the static features.",
        Facts([("mean", num(stats.mean)), ("std", num(stats.std)),
               (f"per-dimension means ({stats.dims} dims)",
                f"min {num(stats.dim_min, '.3f')}, median {num(stats.dim_median, '.3f')}, "
                f"max {num(stats.dim_max, '.3f')}")]),
        describe_shape(stats),
        Table(["test samples", "n", "mean gate"],
              [[g.name, num(g.n, ","), num(g.gate)] for g in stats.by_label], "lrr"),
        Table(["history length", "n", "mean gate", "CTR"],
              [[g.name, num(g.n, ","), num(g.gate), num(g.ctr)] for g in stats.by_history], "lrrr"),
    ]
    if len(stats.by_history) > 1:
        first, last = stats.by_history[0], stats.by_history[-1]
        blocks.append(f"Per-sample mean gate on the test set: {num(first.gate)} at history length "
                      f"{first.name}, {num(last.gate)} at {last.name}.")
    blocks.append(Image(GATE_DISTRIBUTION, "Gate distribution"))
    return Section("Gate analysis", blocks)


def _settings(train: Any) -> str:
    """The scalar settings of the config's `train` mapping, as key=value pairs."""
    if not isinstance(train, dict):
        return "-"
    pairs = [f"{k}={v}" for k, v in train.items() if isinstance(v, (int, float, str, bool))]
    return ", ".join(pairs) or "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s ({seconds:,.0f} s)"
    return f"{minutes}m {secs:02d}s ({seconds:,.1f} s)" if minutes else f"{seconds:.1f} s"
