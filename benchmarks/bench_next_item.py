"""Next-item models: training-step time and peak memory of Mamba4Rec against SASRec, and of the
repeat-explore head against the dot-product head.

    python benchmarks/bench_next_item.py            # L 50, 200, 1000, 2000 at batch 32, and L 50 at batch 2048
    python benchmarks/bench_next_item.py --quick    # L 50 and 200 only: a smoke run
    python benchmarks/bench_next_item.py --heads    # the heads: each model at L 50 and 1,000

What: one training step of the published protocol (the last position's scores against the whole
catalogue, cross-entropy, backward, an Adam step), float32 on the CPU, for each model at its
published settings (configs/model/): Mamba4Rec (hidden 64, 1 layer, d_state 32, d_conv 4,
expand 2, dropout 0.2) and SASRec (hidden 64, 2 layers, 2 heads, inner 256, dropout 0.5), each
with max_len raised to the window. The catalogue holds 3,706 items, MovieLens-1M's, where
Mamba4Rec's paper reports 1.7x less time per epoch and 3.1x less GPU memory than SASRec at L 200.
Windows are full (no padding), random items, seed 0. Batch 32 at every L, so that SASRec's
(batch, heads, L, L) attention fits at L 2000; one extra row at batch 2048, the training batch,
at L 50.

Time: after a tiny step and 2 warm-up steps, the best of 2 to 5 steps (as many as fit in about
10 s). Memory: each (model, shape) in a fresh spawned process; peak resident memory the steps
add on top of the model, its optimiser and the batch (benchmarks/measure.py). A SASRec shape is
skipped when its memory, extrapolated quadratically in L from the last measured shape, exceeds
the budget (default half the available memory).
Writes benchmarks/results/bench_next_item.md (not with --quick).

--heads: each model with `head: repeat_explore` (models/next_item/repeat_explore.py) against
itself with the dot head, in the same run, at L 50 and 1,000: the published protocol's step at
batch 32 (the last position), and a step on every position (train_on: all) at the grids' batches
of 4,000 positions (80 windows of 50, 4 of 1,000). Windows hold one event a minute. Writes
benchmarks/results/bench_next_item_heads.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from measure import RunStart, argument_parser, best_step_time, memory_budget, publish, run_fresh

from common.memory import read_peak, reset_peak
from data_prep.loader import batch_key
from models.registry import build_model
from training.config import resolve_section
from training.tasks.next_item import catalogue_cross_entropy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_next_item.md"
HEAD_RESULTS = ROOT / "benchmarks" / "results" / "bench_next_item_heads.md"
ITEMS = 3706  # MovieLens-1M's catalogue
META = {"vocab_sizes": {"item": ITEMS + 2}}
BATCH, WIDE_BATCH = 32, 2048
LENGTHS = [50, 200, 1000, 2000]
MODELS = {"Mamba4Rec": "configs/model/mamba4rec.yaml", "SASRec": "configs/model/sasrec.yaml"}
WARM_UP_STEPS = 2
REPEAT_SECONDS = 10.0
TARGET_L, TARGET_SPEED, TARGET_MEMORY = 200, 1.7, 3.0  # the paper's GPU ratios at ML-1M's L 200
HEADS = ("dot", "repeat_explore")
HEAD_SHAPES = [(50, BATCH, "last"), (1000, BATCH, "last"), (50, 80, "all"), (1000, 4, "all")]  # (L, batch, positions)
TARGET_HEAD_COST = 1.3  # the head's step at most this many times the dot head's


@dataclass(frozen=True, order=True)
class Shape:
    length: int
    batch: int


@dataclass
class Measurement:
    seconds: float
    peak_mb: float


def build(name: str, length: int, head: str = "dot") -> nn.Module:
    cfg = resolve_section(str(ROOT / MODELS[name]), name)
    if "max_len" in cfg:
        cfg["max_len"] = max(cfg["max_len"], length)
    return build_model({**cfg, "head": head}, META)


def make_batch(shape: Shape) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    items = torch.randint(2, ITEMS + 2, (shape.batch, shape.length), generator=gen)
    minutes = torch.arange(shape.length, 0, -1).expand_as(items) * 60
    batch = {batch_key("history", "item"): items, batch_key("history", "mask"): torch.ones_like(items, dtype=torch.bool),
             batch_key("history", "time_gap"): minutes}
    return batch, torch.randint(2, ITEMS + 2, (shape.batch,), generator=gen)


def train_step(model: nn.Module, optimiser: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               target: torch.Tensor, every_position: bool = False) -> float:
    """One step: the last position's scores against `target`, or with `every_position` each
    position's against the item after it (training/tasks/next_item.py)."""
    began = time.perf_counter()
    out = model(batch)
    if every_position:
        items = batch[batch_key("history", "item")]
        labels = torch.cat([items[:, 1:], target[:, None]], dim=1).flatten()  # windows are full
        scores = model.head_scores(batch, out.states, every_position=True)
    else:
        scores, labels = out.logit, target
    loss = catalogue_cross_entropy(scores, labels, log_probabilities=model.log_probabilities)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return time.perf_counter() - began


def measure(name: str, shape: Shape, threads: int) -> Measurement:
    """Time and peak memory of training steps; run in a fresh process (module doc)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name, shape.length).train()
    optimiser = torch.optim.Adam(model.parameters())
    batch, target = make_batch(shape)
    train_step(model, optimiser, *make_batch(Shape(4, 2)))
    in_use = reset_peak("cpu")
    seconds = best_step_time(lambda: train_step(model, optimiser, batch, target), WARM_UP_STEPS, REPEAT_SECONDS)
    return Measurement(seconds, (read_peak("cpu") - in_use) / 2**20)


def bench(shapes: list[Shape], threads: int, budget: float) -> dict[Shape, dict[str, Measurement | str]]:
    rows: dict[Shape, dict[str, Measurement | str]] = {}
    last: tuple[Shape, Measurement] | None = None  # SASRec's last measured shape
    for shape in shapes:
        row: dict[str, Measurement | str] = {}
        for name in MODELS:
            if name == "SASRec" and last is not None:
                before, m = last
                estimate = m.peak_mb * 2**20 * shape.batch / before.batch * (shape.length / before.length) ** 2
                if estimate > budget:
                    row[name] = f"skipped: needs ~{estimate / 2**30:.1f} GB"
                    continue
            row[name] = run_fresh(f"measuring {name} at {shape}", measure, name, shape, threads)
            if name == "SASRec":
                last = (shape, row[name])
        rows[shape] = row
        print(f"L {shape.length} batch {shape.batch}: " + "; ".join(
            f"{n} {m}" if isinstance(m, str) else f"{n} {1000 * m.seconds:.0f} ms, {m.peak_mb:.0f} MB"
            for n, m in row.items()), flush=True)
    return rows


def ratios(row: dict[str, Measurement | str]) -> tuple[float, float] | None:
    """(SASRec time / Mamba4Rec time, SASRec peak / Mamba4Rec peak), or None when not both measured."""
    mamba, sasrec = row["Mamba4Rec"], row["SASRec"]
    if isinstance(mamba, str) or isinstance(sasrec, str):
        return None
    return sasrec.seconds / mamba.seconds, sasrec.peak_mb / max(mamba.peak_mb, 1e-9)


def verdict(rows: dict[Shape, dict[str, Measurement | str]]) -> list[str]:
    lines = [f"Targets: at L {TARGET_L} (batch {BATCH}), Mamba4Rec at least {TARGET_SPEED:g}x faster per step and "
             f"at least {TARGET_MEMORY:g}x lighter in peak memory than SASRec; both ratios growing with L."]
    at = rows.get(Shape(TARGET_L, BATCH))
    r = None if at is None else ratios(at)
    if r is None:
        return lines + ["- not measured."]
    lines.append(f"- speed at L {TARGET_L}: {'met' if r[0] >= TARGET_SPEED else 'NOT met'} ({r[0]:.2f}x).")
    lines.append(f"- memory at L {TARGET_L}: {'met' if r[1] >= TARGET_MEMORY else 'NOT met'} ({r[1]:.2f}x).")
    series = [(s.length, ratios(row)) for s, row in sorted(rows.items()) if s.batch == BATCH and ratios(row)]
    for i, what in ((0, "speed"), (1, "memory")):
        values = [v[i] for _, v in series]
        growing = all(b >= a for a, b in zip(values, values[1:]))
        lines.append(f"- {what} ratio growing with L: {'met' if growing else 'NOT met'} ("
                     + ", ".join(f"{v[i]:.2f}x at L {length}" for length, v in series) + ").")
    return lines


def render(header: list[str], rows: dict[Shape, dict[str, Measurement | str]], budget: float) -> str:
    lines = ["# bench_next_item: training step of Mamba4Rec vs SASRec, published settings, float32, CPU", "",
             *header, "",
             "| L | batch | Mamba4Rec ms | Mamba4Rec peak MB | SASRec ms | SASRec peak MB | speed-up | memory ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for shape in sorted(rows):
        row = rows[shape]
        cells = [str(shape.length), str(shape.batch)]
        for m in row.values():
            cells += [m, ""] if isinstance(m, str) else [f"{1000 * m.seconds:.0f}", f"{m.peak_mb:.0f}"]
        r = ratios(row)
        cells += ["", ""] if r is None else [f"{r[0]:.2f}x", f"{r[1]:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *verdict(rows), "",
              f"ms: the best of 2 to 5 training steps (forward, cross-entropy over {ITEMS:,} items, backward, Adam) "
              f"after {WARM_UP_STEPS} warm-up steps. Peak MB: resident memory the steps add on top of the model, "
              "its optimiser state and the batch, from a fresh process. Speed-up: SASRec ms / Mamba4Rec ms; "
              f"memory ratio: SASRec peak / Mamba4Rec peak. Skipped: over the {budget / 2**30:.1f} GB budget."]
    return "\n".join(lines)


def head_times(name: str, shape: Shape, threads: int, every_position: bool) -> dict[str, float]:
    """Head -> best training-step seconds of `name` with it; the two models' steps alternate in
    one fresh process, so both see the same load on a shared machine."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    models = {head: build(name, shape.length, head).train() for head in HEADS}
    optimisers = {head: torch.optim.Adam(model.parameters()) for head, model in models.items()}
    batch, target = make_batch(shape)

    def step(head: str) -> float:
        return train_step(models[head], optimisers[head], batch, target, every_position)

    for head in HEADS:
        train_step(models[head], optimisers[head], *make_batch(Shape(4, 2)), every_position)
        last = [step(head) for _ in range(WARM_UP_STEPS)][-1]
    rounds = max(2, min(5, int(REPEAT_SECONDS / last)))
    times: dict[str, list[float]] = {head: [] for head in HEADS}
    for _ in range(rounds):
        for head in HEADS:
            times[head].append(step(head))
    return {head: min(values) for head, values in times.items()}


def head_peak(name: str, shape: Shape, threads: int, head: str, every_position: bool) -> float:
    """Peak MB one training step adds on top of the model, its optimiser and the batch, after a
    step to warm up; run in a fresh process."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name, shape.length, head).train()
    optimiser = torch.optim.Adam(model.parameters())
    batch, target = make_batch(shape)
    train_step(model, optimiser, batch, target, every_position)
    in_use = reset_peak("cpu")
    train_step(model, optimiser, batch, target, every_position)
    return (read_peak("cpu") - in_use) / 2**20


HeadRow = tuple[str, Shape, str, dict[str, float], dict[str, float]]  # model, shape, positions, seconds, peak MB


def bench_heads(threads: int) -> list[HeadRow]:
    rows = []
    for name in MODELS:
        for length, batch, positions in HEAD_SHAPES:
            shape, every = Shape(length, batch), positions == "all"
            what = f"{name} at {shape} ({positions})"
            seconds = run_fresh(f"timing the heads of {what}", head_times, name, shape, threads, every)
            peak = {head: run_fresh(f"measuring the peak memory of {what} with head {head}", head_peak, name, shape,
                                    threads, head, every) for head in HEADS}
            rows.append((name, shape, positions, seconds, peak))
            print(f"{what}: dot {1000 * seconds['dot']:.0f} ms, repeat-explore {1000 * seconds['repeat_explore']:.0f} "
                  f"ms ({seconds['repeat_explore'] / seconds['dot']:.2f}x)", flush=True)
    return rows


def render_heads(header: list[str], rows: list[HeadRow]) -> str:
    lines = ["# bench_next_item --heads: training step with the repeat-explore head vs the dot head, float32, CPU", "",
             *header, "",
             "| model | L | batch | positions | dot ms | repeat-explore ms | time ratio | dot peak MB | "
             "repeat-explore peak MB | memory ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    ratio = {}
    for name, shape, positions, seconds, peak in rows:
        ratio[name, shape, positions] = seconds["repeat_explore"] / seconds["dot"]
        lines.append(f"| {name} | {shape.length:,} | {shape.batch} | {positions} | {1000 * seconds['dot']:.0f} | "
                     f"{1000 * seconds['repeat_explore']:.0f} | {ratio[name, shape, positions]:.2f}x | "
                     f"{peak['dot']:.0f} | {peak['repeat_explore']:.0f} | "
                     f"{peak['repeat_explore'] / max(peak['dot'], 1e-9):.2f}x |")
    over = [f"{name} at L {shape.length} ({positions}, {r:.2f}x)" for (name, shape, positions), r in ratio.items()
            if r > TARGET_HEAD_COST]
    lines += ["", f"Target: the head's training step at most {TARGET_HEAD_COST:g}x the dot head's at L 50 and 1,000: "
              + ("met everywhere." if not over else "NOT met for " + "; ".join(over) + "."), "",
              f"ms: the best of 2 to 5 training steps (forward, cross-entropy over {ITEMS:,} items, backward, Adam) after "
              f"{WARM_UP_STEPS} warm-up steps, the two heads' steps alternating in one fresh process (so both see the "
              "same load). positions: last (the published protocol: one target per window) or all (train_on: all: "
              "every position predicts the item after it). Peak MB: resident memory one step adds on top of the "
              "model, its optimiser and the batch, each head in a fresh process."]
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__, quick="L 50 and 200 only", limited="a SASRec shape")
    parser.add_argument("--heads", action="store_true", help="the repeat-explore head against the dot head instead")
    args = parser.parse_args()
    if args.heads:
        start = RunStart()
        rows = bench_heads(args.threads)
        publish(render_heads(start.header(args.threads), rows), HEAD_RESULTS, write=not args.quick)
        return
    lengths = LENGTHS[:2] if args.quick else LENGTHS
    shapes = sorted([Shape(50, WIDE_BATCH), *(Shape(length, BATCH) for length in lengths)])
    start = RunStart()
    budget = memory_budget("cpu", args.memory_budget_gb)
    rows = bench(shapes, args.threads, budget)
    publish(render(start.header(args.threads), rows, budget), RESULTS, write=not args.quick)


if __name__ == "__main__":
    main()
