"""Train the ablation grid (configs/experiments/ablation.yaml) over several seeds and tabulate it.

    python experiments/run_ablations.py                    # every model of the grid x 5 seeds, synthetic set
    python experiments/run_ablations.py --seeds 3 --models MDAF-Full MDAF-Static DIN
    python experiments/run_ablations.py --raw-dir ~/taobao_ad --results-dir results/ablation_taobao
    python experiments/run_ablations.py --config configs/experiments/ablation_userbehavior.yaml \
        --source userbehavior --raw-dir ~/userbehavior --results-dir results/ablation_userbehavior
    python experiments/run_ablations.py --summary-only     # re-tabulate the finished runs
    python experiments/run_ablations.py --summary-only --doc docs/baseline_results_summary.md

Finished runs are skipped and interrupted ones resumed, so the same command continues a grid.
Writes <results-dir>/<model>/seed<k>/ (one run each, with its report), <results-dir>/summary.md
and .json, and, with --doc PATH, the same summary at PATH (the repository's docs/ are never
rewritten unless asked).
"""
import argparse
import shlex
import sys
from pathlib import Path

from common.errors import exit_status
from training.ablation import load_ablation, run_grid, write_summary
from training.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/experiments/ablation.yaml")
    parser.add_argument("--seeds", type=int, help="use seeds 0..N-1 (default: the config's list)")
    parser.add_argument("--models", nargs="+", help="labels to train (default: all)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--raw-dir")
    data.add_argument("--data-dir")
    parser.add_argument("--source", choices=("taobao_ad", "userbehavior"), help="which raw data set (default: the base config's)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"))
    parser.add_argument("--results-dir", default="results/ablation")
    parser.add_argument("--summary-only", action="store_true", help="only tabulate finished runs")
    parser.add_argument("--doc", type=Path, help="also write the summary Markdown here "
                        "(e.g. docs/baseline_results_summary.md)")
    args = parser.parse_args(argv)
    results = Path(args.results_dir)
    setup_logging(results, True)
    def run() -> None:
        cfg = load_ablation(args.config)
        if args.seeds is not None:
            cfg.seeds = list(range(args.seeds))
        data = {k: v for k, v in (("raw_dir", args.raw_dir), ("dir", args.data_dir), ("source", args.source)) if v}
        train = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
        if not args.summary_only:
            run_grid(cfg, results, {"data": data, "train": train}, args.models)
            setup_logging(results, True)
        given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--summary-only"]
        write_summary(cfg, results, " ".join(["python experiments/run_ablations.py", shlex.join(given)]).strip(),
                      args.doc)

    return exit_status(run)


if __name__ == "__main__":
    sys.exit(main())
