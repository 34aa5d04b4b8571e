"""The command line of the grid runners (experiments/run_ablations.py, experiments/run_next_item.py):
parse, train the grid's unfinished runs, tabulate (training/ablation.py), one line on a user error."""
from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from common.errors import MDAFError, exit_status
from data_prep.next_item.config import PROTOCOLS
from training.ablation import load_ablation, run_grid, write_summary
from training.logs import setup_logging


def main(argv: list[str] | None, doc: str, script: str, default_config: str, default_results: str,
         summarise: Callable[..., object] = write_summary, load: Callable[..., object] = load_ablation,
         train: Callable[..., object] = run_grid) -> int:
    """summarise(cfg, results, command, doc): what the finished runs are turned into (default: the
    ablation table of training/ablation.py); load(path) and train(cfg, results, overrides, labels):
    how the config is read and its runs trained (default: one ablation grid)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=default_config, help=f"the grid YAML (default {default_config})")
    parser.add_argument("--seeds", type=int, help="use seeds 0..N-1 (default: the config's list)")
    parser.add_argument("--models", nargs="+", help="labels to train (default: all)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--raw-dir", help="raw Tianchi files (CTR)")
    data.add_argument("--data-dir", help="an already prepared dataset")
    data.add_argument("--data", help="an interactions file (next-item)")
    parser.add_argument("--source", choices=("taobao_ad", "userbehavior", "next_item"),
                        help="which raw data set (default: the base config's)")
    parser.add_argument("--protocol", choices=PROTOCOLS, help="next-item split (default: the config's)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"))
    parser.add_argument("--threads", type=int, help="torch threads per run (default: the config's; 1 when runs share "
                                                    "the cores with other jobs)")
    parser.add_argument("--results-dir", default=default_results, help=f"default {default_results}")
    parser.add_argument("--summary-only", action="store_true", help="only tabulate finished runs")
    parser.add_argument("--doc", type=Path, help="also write the summary Markdown here (e.g. a file in docs/)")
    args = parser.parse_args(argv)
    results = Path(args.results_dir)
    setup_logging(results, True)

    def run() -> None:
        settings = [f"--{k.replace('_', '-')}" for k in ("raw_dir", "data_dir", "data", "source", "protocol", "epochs",
                                                           "device", "threads") if getattr(args, k) is not None]
        if args.summary_only and settings:
            raise MDAFError(f"--summary-only tabulates the finished runs as they were trained; {', '.join(settings)} "
                            "would change nothing but the command the summary names: drop it")
        cfg = load(args.config)
        if args.seeds is not None:
            cfg.seeds = list(range(args.seeds))
        data = {k: v for k, v in (("raw_dir", args.raw_dir or args.data), ("dir", args.data_dir),
                                  ("source", args.source)) if v}
        if args.protocol:
            data["prep"] = {"protocol": args.protocol}
        recipe = {k: v for k, v in (("epochs", args.epochs), ("device", args.device), ("threads", args.threads))
                  if v is not None}
        if not args.summary_only:
            train(cfg, results, {"data": data, "train": recipe}, args.models)
            setup_logging(results, True)
        given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--summary-only"]
        summarise(cfg, results, " ".join([f"python {script}", shlex.join(given)]).strip(), args.doc)

    return exit_status(run)
