"""Long histories in next-item models: what a training step costs from L 50 to 5,000 for Mamba4Rec,
the MambaRec hybrid and SASRec at equal depth, what streaming one event saves against recomputing
from the whole history, and whether the loader keeps up.

    python benchmarks/bench_long_history.py            # L 50, 200, 1000, 2000, 5000
    python benchmarks/bench_long_history.py --quick    # L 50 and 200 only: a smoke run

1. Training step, equal depth: each model at 2 layers, hidden 64, otherwise its configs/model/
   settings (Mamba4Rec: d_state 32, dropout 0.2; MambaRec: 2 heads, gate per sequence; SASRec: 2
   heads, inner 256, dropout 0.5, max_len raised to L), batch 8 full windows, a catalogue of 1,000
   items; forward, cross-entropy of the last position over the catalogue, backward, Adam. Time:
   the best of 2 to 5 steps after 2 warm-up steps. Memory: peak resident memory the steps add, in
   a fresh process per (model, L) (benchmarks/measure.py). A shape of an attention model is
   skipped, and reported as not fitting, when its memory extrapolated quadratically in L from its
   last measured shape exceeds the budget (default half the available memory).
2. Streaming (models/ssm/streaming.py), Mamba4Rec at its published settings (1 layer), 256 users
   whose states already hold L events: one new event per user folded in and the catalogue scored
   from the state, against scoring the same users by a forward over their L + 1 events. Both give
   the same scores: the largest difference is printed. Time: the best of 5 repetitions each.
3. The loader (data_prep/loader.py): seconds per batch of 16,000 positions (16,000 / L windows of
   L) on a long-signal synthetic set (300 users of about 5,200 events), against L 50: does a
   position cost the same at every L?
Writes benchmarks/results/bench_long_history.md (not with --quick).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bench_next_item import train_step
from measure import RunStart, argument_parser, best_step_time, memory_budget, publish, run_fresh

from common.memory import read_peak, reset_peak
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader, batch_key
from data_prep.next_item.config import load_next_item_config
from data_prep.next_item.prepare import prepare_copy
from data_prep.next_item.synthetic import generate_sequences, load_sequence_config
from models.registry import build_model
from models.ssm.streaming import Streamer
from training.config import resolve_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_long_history.md"
ITEMS = 1000
META = {"vocab_sizes": {"item": ITEMS + 2}}
LENGTHS = [50, 200, 1000, 2000, 5000]
BATCH, DEPTH, USERS = 8, 2, 256
MODELS = {"Mamba4Rec": "configs/model/mamba4rec.yaml", "MambaRec": "configs/model/mambarec.yaml",
          "SASRec": "configs/model/sasrec.yaml"}
QUADRATIC = ("MambaRec", "SASRec")
TARGET_L, TARGET_SPEED, TARGET_MEMORY = 2000, 3.0, 5.0  # Mamba4Rec vs SASRec, equal depth
STREAM_L, STREAM_SPEED = 1000, 20.0
LOADER_POSITIONS = 16_000


@dataclass
class Measurement:
    seconds: float
    peak_mb: float


def build(name: str, length: int, depth: int | None = DEPTH) -> nn.Module:
    cfg = resolve_section(str(ROOT / MODELS[name]), name)
    if depth is not None:
        cfg["n_layers"] = depth
    if "max_len" in cfg:
        cfg["max_len"] = max(cfg["max_len"], length)
    return build_model(cfg, META)


def window(users: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    items = torch.randint(2, ITEMS + 2, (users, length), generator=torch.Generator().manual_seed(seed))
    return {batch_key("history", "item"): items, batch_key("history", "mask"): torch.ones_like(items, dtype=torch.bool)}


def measure_step(name: str, length: int, threads: int) -> Measurement:
    """Time and peak memory of training steps; run in a fresh process."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name, length).train()
    optimiser = torch.optim.Adam(model.parameters())
    batch, tiny = window(BATCH, length), window(2, 4)
    target = batch[batch_key("history", "item")][:, 0]
    train_step(model, optimiser, tiny, tiny[batch_key("history", "item")][:, 0])
    in_use = reset_peak("cpu")
    seconds = best_step_time(lambda: train_step(model, optimiser, batch, target))
    return Measurement(seconds, (read_peak("cpu") - in_use) / 2**20)


def training_steps(lengths: list[int], threads: int, budget: float) -> dict[int, dict[str, Measurement | str]]:
    rows: dict[int, dict[str, Measurement | str]] = {}
    last: dict[str, tuple[int, Measurement]] = {}
    for length in lengths:
        row: dict[str, Measurement | str] = {}
        for name in MODELS:
            if name in QUADRATIC and name in last:
                before, m = last[name]
                estimate = m.peak_mb * 2**20 * (length / before) ** 2
                if estimate > budget:
                    row[name] = f"does not fit (~{estimate / 2**30:.0f} GB)"
                    continue
            row[name] = run_fresh(f"measuring {name} at L {length}", measure_step, name, length, threads)
            last[name] = (length, row[name])
        rows[length] = row
        print(f"L {length}: " + "; ".join(f"{n} {m}" if isinstance(m, str) else
                                          f"{n} {1000 * m.seconds:.0f} ms {m.peak_mb:.0f} MB" for n, m in row.items()),
              flush=True)
    return rows


def best_of(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


@torch.no_grad()
def streaming(length: int, threads: int) -> tuple[float, float, float]:
    """(seconds to recompute, seconds to stream, largest score difference) for USERS users at `length`."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build("Mamba4Rec", length, depth=None).eval()
    batch = window(USERS, length + 1, seed=1)
    items = batch[batch_key("history", "item")]
    streamer = Streamer(model)
    ids = list(range(USERS))
    states = streamer.empty(ids)
    for t in range(length):
        streamer.update(states, ids, {"item": items[:, t]})
    new_event = {"item": items[:, length]}
    diff = float((model.score(streamer.update(states, ids, new_event)) - model(batch).logit).abs().max())
    # later repetitions fold the same item in again: the cost of a step does not depend on the state
    one = best_of(lambda: model.score(streamer.update(states, ids, new_event)))
    return best_of(lambda: model(batch).logit), one, diff


def loader_times(lengths: list[int]) -> dict[int, float]:
    """Seconds per batch of LOADER_POSITIONS positions at each L on a long-signal set."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_sequence_config(None, long_signal=True, n_users=300, events_per_user=5200.0, mean_gap_hours=1.0)
        inter = generate_sequences(cfg, tmp)
        dataset = ProcessedDataset(prepare_copy(inter, tmp, load_next_item_config(None)))
        out = {}
        for length in lengths:
            batch = max(1, LOADER_POSITIONS // length)
            loader = BatchLoader(dataset, "train", length, batch, shuffle=True, seed=0)
            rows = [loader.indices()[i * batch:(i + 1) * batch] for i in range(10)]
            out[length] = best_of(lambda: [loader.batch(r) for r in rows], repeat=3) / len(rows)
        return out


def render(header: list[str], steps, streams, loads, budget: float) -> str:
    lines = ["# bench_long_history: next-item models from L 50 to 5,000, CPU, float32", "", *header, "",
             f"## Training step, equal depth ({DEPTH} layers), batch {BATCH}", "",
             "| L | " + " | ".join(f"{n} ms | {n} peak MB" for n in MODELS)
             + " | SASRec / Mamba4Rec time | SASRec / Mamba4Rec memory | MambaRec / Mamba4Rec time |",
             "|---|" + "---|---|" * len(MODELS) + "---|---|---|"]
    for length, row in steps.items():
        cells = [str(length)]
        for m in row.values():
            cells += [m, ""] if isinstance(m, str) else [f"{1000 * m.seconds:.0f}", f"{m.peak_mb:.0f}"]
        mamba, sasrec, hybrid = row["Mamba4Rec"], row["SASRec"], row["MambaRec"]
        for other, attr in ((sasrec, "seconds"), (sasrec, "peak_mb"), (hybrid, "seconds")):
            cells.append("" if isinstance(other, str) else f"{getattr(other, attr) / max(getattr(mamba, attr), 1e-9):.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    at = steps.get(TARGET_L)
    if at is not None:
        mamba, sasrec = at["Mamba4Rec"], at["SASRec"]
        lines += ["", f"Targets at L {TARGET_L}: Mamba4Rec at least {TARGET_SPEED:g}x faster and {TARGET_MEMORY:g}x "
                  "lighter than SASRec at equal depth; SASRec fits at the same batch or is reported as not fitting."]
        if isinstance(sasrec, str):
            lines.append(f"- SASRec at L {TARGET_L}: {sasrec}.")
        else:
            speed, memory = sasrec.seconds / mamba.seconds, sasrec.peak_mb / max(mamba.peak_mb, 1e-9)
            lines += [f"- speed: {'met' if speed >= TARGET_SPEED else 'NOT met'} ({speed:.2f}x).",
                      f"- memory: {'met' if memory >= TARGET_MEMORY else 'NOT met'} ({memory:.2f}x).",
                      f"- SASRec fits at L {TARGET_L}, batch {BATCH}: {sasrec.peak_mb / 1024:.1f} GB."]
    lines += ["", f"## Streaming one event against recomputing, Mamba4Rec (1 layer), {USERS} users", "",
              "| L (events already folded in) | recompute ms | stream one event + score ms | speed-up | largest score difference |",
              "|---|---|---|---|---|"]
    for length, (full, one, diff) in streams.items():
        lines.append(f"| {length} | {1000 * full:.1f} | {1000 * one:.2f} | {full / one:.0f}x | {diff:.1e} |")
    if STREAM_L in streams:
        full, one, diff = streams[STREAM_L]
        lines += ["", f"Target at L {STREAM_L}: streaming at least {STREAM_SPEED:g}x faster with equal outputs: "
                  f"{'met' if full / one >= STREAM_SPEED and diff < 1e-3 else 'NOT met'} ({full / one:.0f}x, "
                  f"largest difference {diff:.1e})."]
    base = loads[min(loads)]
    lines += ["", f"## Loader, batches of {LOADER_POSITIONS:,} positions", "",
              "| L | windows per batch | ms per batch | relative to L 50 |", "|---|---|---|---|"]
    lines += [f"| {length} | {max(1, LOADER_POSITIONS // length)} | {1000 * s:.1f} | {s / base:.2f}x |"
              for length, s in loads.items()]
    lines += ["", "ms: the best of 2 to 5 steps (training) or of 5 repetitions (streaming, loader). Peak MB: "
              "resident memory the steps add over the model, optimiser and batch, from a fresh process. "
              f"Memory budget {budget / 2**30:.1f} GB."]
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__, quick="L 50 and 200 only", limited="an attention model's shape")
    args = parser.parse_args()
    lengths = LENGTHS[:2] if args.quick else LENGTHS
    start = RunStart()
    budget = memory_budget("cpu", args.memory_budget_gb)
    steps = training_steps(lengths, args.threads, budget)
    streams = {length: run_fresh(f"streaming at L {length}", streaming, length, args.threads)
               for length in ([50, 200] if args.quick else [STREAM_L, LENGTHS[-1]])}
    print("streaming:", streams, flush=True)
    loads = loader_times(lengths)
    print("loader:", loads, flush=True)
    publish(render(start.header(args.threads), steps, streams, loads, budget), RESULTS, write=not args.quick)


if __name__ == "__main__":
    main()
