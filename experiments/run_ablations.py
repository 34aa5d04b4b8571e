"""Train the ablation grid (configs/experiments/ablation.yaml) over several seeds and tabulate it.

    python experiments/run_ablations.py                    # every model of the grid x 5 seeds, synthetic set
    python experiments/run_ablations.py --seeds 3 --models MDAF-Full MDAF-Static DIN
    python experiments/run_ablations.py --raw-dir ~/taobao_ad --results-dir results/ablation_taobao
    python experiments/run_ablations.py --config configs/experiments/ablation_userbehavior.yaml \
        --source userbehavior --raw-dir ~/userbehavior --results-dir results/ablation_userbehavior
    python experiments/run_ablations.py --summary-only     # re-tabulate the finished runs
    python experiments/run_ablations.py --summary-only --doc docs/baseline_results_summary.md

Finished runs are skipped and interrupted ones resumed, so the same command continues a grid; a
run made with other data or settings stops it (use another --results-dir for those).
Writes <results-dir>/<model>/seed<k>/ (one run each, with its report), <results-dir>/summary.md
and .json, and, with --doc PATH, the same summary at PATH (the repository's docs/ are never
rewritten unless asked).
"""
import sys

from training.grid_cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "experiments/run_ablations.py", "configs/experiments/ablation.yaml",
                  "results/ablation"))
