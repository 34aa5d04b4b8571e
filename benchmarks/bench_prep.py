"""End-to-end preparation of synthetic Taobao Ad sets: throughput and peak memory, and how they grow.

    python benchmarks/bench_prep.py                 # 1M impressions + 20M behaviours, then 10x
    python benchmarks/bench_prep.py --scales 1      # the small one only
    python benchmarks/bench_prep.py --quick         # a tenth of x1, to check it runs; the results file is left alone

Each scale is generated once (cached under benchmarks/.work/), then prepared by
`python -m data_prep` in a child process whose wall time and peak resident memory are measured.
Figures are printed as ratios against baselines measured in the same run, since the machines are
noisy: the preparation's time against a bare streaming parse of the same CSV files (the least any
pipeline must spend), and the larger scale's time and memory against the smaller one's. The same
files are then prepared by the generic source (`--source generic`, whose default schema describes
them), against the taobao_ad source's time and memory.
Writes benchmarks/results/bench_prep.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from data_prep.raw_files import BEHAVIOR_LOG, RAW_SAMPLE, scan_raw
from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config

ROOT = Path(__file__).resolve().parent.parent

WORK = ROOT / "benchmarks" / ".work"
RESULTS = ROOT / "benchmarks" / "results" / "bench_prep.md"
# 1x: 50,000 users x 20 impressions x 400 behaviours = 1M impressions, 20M behaviour rows.
BASE = {"n_users": 50_000, "impressions_per_user": 20, "behaviors_per_user": 400}


# Children print their own peak RSS: VmHWM, the high-water mark of the process's own memory since
# it started (getrusage's ru_maxrss would not do: on Linux a child inherits its parent's, so the
# generator's or an earlier parse's peak would leak into every later figure).
_PEAK = ("; print('PEAK_KB', next(int(line.split()[1]) for line in open('/proc/self/status') "
         "if line.startswith('VmHWM')))")
PARSE = ("import sys, polars as pl; from pathlib import Path; "
         "from data_prep.raw_files import BEHAVIOR_LOG, RAW_SAMPLE, scan_raw; "
         "[scan_raw(Path(sys.argv[1]), s).select(pl.all().max()).collect(engine='streaming') "
         "for s in (RAW_SAMPLE, BEHAVIOR_LOG)]" + _PEAK)
PREPARE = ("import sys; from data_prep.__main__ import main; "
           "rc = main(['--raw-dir', sys.argv[1], '--out', sys.argv[2], *sys.argv[3:]])" + _PEAK + "; sys.exit(rc)")
GENERIC = "--source", "generic"  # the default schema (configs/data/generic.yaml) describes the Taobao Ad files


def run_child(code: str, *args: Path | str) -> tuple[float, float]:
    """(wall seconds, peak RSS in GiB) of `python -c code args...` in a fresh child process."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    return seconds, int(done.stdout.split("PEAK_KB")[-1].split()[0]) / 2**20


def count_rows(raw: Path) -> tuple[int, int]:
    """Rows of raw_sample.csv and behavior_log.csv (streaming, in this process: a small result)."""
    return tuple(scan_raw(raw, spec).select(pl.len()).collect(engine="streaming").item()
                 for spec in (RAW_SAMPLE, BEHAVIOR_LOG))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10], help="multiples of the 1x set")
    parser.add_argument("--keep", action="store_true", help="keep the prepared datasets")
    parser.add_argument("--quick", action="store_true", help="x0.1 only (5,000 users); the results file is left alone")
    args = parser.parse_args()

    rows = []
    for scale in [0.1] if args.quick else args.scales:
        cfg = synthetic_config(**{k: v if k != "n_users" else int(v * scale) for k, v in BASE.items()})
        raw = ensure_synthetic_raw("taobao_ad", cfg, root=WORK)
        n_imp, n_beh = count_rows(raw)
        baseline, baseline_peak = run_child(PARSE, raw)
        out = WORK / f"prepared_x{scale}"
        shutil.rmtree(out, ignore_errors=True)
        seconds, peak = run_child(PREPARE, raw, out)
        generic_out = WORK / f"prepared_generic_x{scale}"
        shutil.rmtree(generic_out, ignore_errors=True)
        generic_seconds, generic_peak = run_child(PREPARE, raw, generic_out, *GENERIC)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(generic_out, ignore_errors=True)
        rows.append({"scale": scale, "impressions": n_imp, "behaviors": n_beh, "seconds": seconds,
                     "baseline": baseline, "peak_gib": peak, "baseline_peak_gib": baseline_peak,
                     "generic_seconds": generic_seconds, "generic_peak_gib": generic_peak})
        print(f"x{scale}: {n_imp:,} impressions, {n_beh:,} behaviours: {seconds:.1f} s "
              f"({n_beh / seconds / 1e6:.2f}M behaviour rows/s), peak {peak:.2f} GiB; "
              f"a bare streaming CSV parse: {baseline:.1f} s, {baseline_peak:.2f} GiB; "
              f"the generic source: {generic_seconds:.1f} s, {generic_peak:.2f} GiB", flush=True)
    report = render(rows)
    print(report)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report + "\n")


def render(rows: list[dict]) -> str:
    base = rows[0]
    lines = ["# bench_prep: end-to-end preparation (`python -m data_prep`), Taobao Ad synthetic",
             "",
             f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
             f"Python {platform.python_version()}, Polars {pl.__version__}. "
             f"Command: `python benchmarks/bench_prep.py`.",
             "",
             "| scale | impressions | behaviour rows | seconds | behaviour rows/s | peak memory | "
             "time / bare parse | memory / bare parse | rows vs x1 | time vs x1 | memory vs x1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| x{r['scale']} | {r['impressions']:,} | {r['behaviors']:,} | {r['seconds']:.1f} | "
            f"{r['behaviors'] / r['seconds'] / 1e6:.2f}M | {r['peak_gib']:.2f} GiB | "
            f"{r['seconds'] / r['baseline']:.2f}x | {r['peak_gib'] / r['baseline_peak_gib']:.2f}x | "
            f"{r['behaviors'] / base['behaviors']:.1f}x | {r['seconds'] / base['seconds']:.2f}x | "
            f"{r['peak_gib'] / base['peak_gib']:.2f}x |")
    lines += ["", "Bare parse: a streaming Polars parse of every column of raw_sample.csv and "
              "behavior_log.csv, in a child process like the preparation: the least any pipeline "
              "must spend. Seconds include starting Python.",
              "", "The generic source (`--source generic`) on the same files, described by its default schema "
              "(configs/data/generic.yaml); rows: impressions and behaviours together.", "",
              "| scale | rows | generic seconds | generic rows/s | generic peak memory | "
              "time vs taobao_ad | memory vs taobao_ad |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        total = r["impressions"] + r["behaviors"]
        lines.append(f"| x{r['scale']} | {total:,} | {r['generic_seconds']:.1f} | "
                     f"{total / r['generic_seconds'] / 1e6:.2f}M | {r['generic_peak_gib']:.2f} GiB | "
                     f"{r['generic_seconds'] / r['seconds']:.2f}x | {r['generic_peak_gib'] / r['peak_gib']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
