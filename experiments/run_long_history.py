"""Accuracy and cost against history length (configs/experiments/long_history_grid.yaml):
Mamba4Rec, the MambaRec hybrid and SASRec at L 50, 200, 1,000 and 2,000 on one next-item data set,
tabulated and plotted against L, with the hybrid's gate per L.

    python experiments/run_long_history.py                                     # the long-signal synthetic set
    python experiments/run_long_history.py --results-dir results/long_history --doc docs/long_history.md
    python experiments/run_long_history.py --data ../shared/data/userbehavior_sample/UserBehavior.csv \
        --results-dir results/long_history_ub --doc docs/long_history_userbehavior.md
    python experiments/run_long_history.py --models "Mamba4Rec L=50" "Mamba4Rec L=2000"   # some of the grid
    python experiments/run_long_history.py --summary-only --results-dir results/long_history

Finished runs are skipped and interrupted ones resumed (a run made with other data or settings stops
the sweep). Writes <results-dir>/<model>/seed<k>/ (one run each, with its report) and
<results-dir>/length_sweep.{md,json,png}; with --doc PATH the table at PATH and the figure beside it.
"""
import sys

from training.grid_cli import main
from training.length_sweep import write_sweep

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "experiments/run_long_history.py", "configs/experiments/long_history_grid.yaml",
                  "results/long_history", summarise=write_sweep))
