"""The report's sections, built from a loaded run and the figures computed from it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from training.report.compare import RunRow
from training.report.criteria import CriterionResult
from training.report.document import Document, Facts, Image, Section, Table, num
from training.report.gate import GateStats, describe_shape
from training.report.run_files import Run, as_float

LEARNING_CURVES = "learning_curves.png"
GATE_DISTRIBUTION = "gate_distribution.png"
RELIABILITY = "reliability.png"


def build_document(run: Run, criteria: list[CriterionResult], runs: list[RunRow],
                   results_root: Path, gate: GateStats | None) -> Document:
    """Title and the numbered sections; the gate section only for a run with a gate."""
    sections = [data_section(run), epochs_section(run), stopping_section(run), test_section(run),
                criteria_section(criteria), comparison_section(runs, results_root),
                efficiency_section(run)]
    if gate is not None:
        sections.append(gate_section(gate))
    for number, section in enumerate(sections, 1):
        section.title = f"{number}. {section.title}"
    summary = run.summary
    header = Section("Run", [Facts([
        ("run", summary.run_name), ("label", run.label), ("model", summary.model.name),
        ("experiment", summary.experiment),
        ("train config", _settings(run.config.get("train"))),
    ])])
    return Document(f"Training report: {summary.run_name}", [header, *sections])


def data_section(run: Run) -> Section:
    data = run.summary.data
    source = data.source + (" (synthetic)" if data.synthetic else "")
    blocks: list[Any] = [
        Facts([("source", source), ("dir", data.dir), ("sequence length", str(data.seq_len))]),
        Table(["split", "rows", "CTR"],
              [[s, num(data.rows[s], ","), num(data.ctr.get(s))] for s in data.rows], "lrr"),
    ]
    oracle = run.oracle
    if oracle:
        blocks.append("The oracle scores the true click probabilities of the synthetic data: the "
                      "best any model could reach.")
        blocks.append(Table(["split", "oracle AUC", "oracle logloss"],
                            [[s, num(oracle[s]["auc"]), num(oracle[s]["logloss"])]
                             for s in ("val", "test") if oracle.get(s)], "lrr"))
        test_auc, best = run.summary.test.auc, as_float(oracle["test"]["auc"])
        lift = (test_auc - 0.5) / (best - 0.5) if best > 0.5 else float("nan")
        blocks.append(f"Test AUC {num(test_auc)} captures {num(100 * lift, '.1f')}% of the "
                      f"achievable lift over 0.5 (oracle test AUC {num(best)}).")
    return Section("Data", blocks)


def epochs_section(run: Run) -> Section:
    diagnostics = list(dict.fromkeys(name for e in run.epochs for name in e.diagnostics))
    headers = ["epoch", "step", "lr", "train loss", "train logloss", "train AUC", "val AUC", "val logloss", "gap",
               "status", *(name.replace("_", " ") for name in diagnostics)]
    rows = [[str(e.epoch), str(e.step), num(e.lr, ".3g"), num(e.train_loss), num(e.train_logloss),
             num(e.train_auc), num(e.val_auc), num(e.val_logloss), num(e.gap, "+.4f"), e.status,
             *(num(e.diagnostics.get(name), ".3f") for name in diagnostics)] for e in run.epochs]
    blocks: list[Any] = [Table(headers, rows, "rrrrrrrrrl" + "r" * len(diagnostics))]
    blocks.append("One row per evaluation: at the end of each epoch, and every `eval_every` steps when set. "
                  "train loss: the training objective (smoothed targets, plus Tri-BCE's terms where the "
                  "model has sub-network heads); train AUC and logloss: of the training predictions since "
                  "the previous evaluation, the quantities val AUC and logloss measure.")
    if run.resumed_epochs:
        blocks.append(f"The run was resumed: metrics.jsonl records evaluations of epoch(s) "
                      f"{', '.join(map(str, run.resumed_epochs))} more than once; the last record "
                      f"of each is shown.")
    blocks.append(Image(LEARNING_CURVES, "Learning curves"))
    return Section("Epochs", blocks)


def stopping_section(run: Run) -> Section:
    train, best = run.summary.train, run.best
    return Section("Best epoch and stopping", [Facts([
        ("best evaluation", f"epoch {train.best_epoch} (step {train.best_step}) of {train.epochs_run} run"),
        ("at the best evaluation", f"val AUC {num(best.val_auc)}, train AUC {num(best.train_auc)}, "
                                   f"gap {num(best.gap, '+.4f')}"),
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
    if len(runs) < 2:
        return Section("Comparison", [f"No other finished runs were found under {results_root}."])
    rows = [[r.run + (" (this run)" if r.this else ""), r.label, r.model, r.data, num(r.test_auc),
             num(r.test_logloss), num(r.best_epoch, "d"), num(r.params, ",")] for r in runs]
    return Section("Comparison", [
        "Finished runs under the results folder, best test AUC first. Runs on different data "
        "are not comparable.",
        Table(["run", "label", "model", "data", "test AUC", "test logloss", "best epoch", "params"],
              rows, "llllrrrr")])


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
