"""Train Mamba4Rec, SASRec and GRU4Rec (configs/experiments/next_item_grid.yaml) over several seeds
on one next-item data set, fit the counting lists beside them (popularity, the user's recent items,
item co-occurrence kNN), and tabulate them with paired tests against Mamba4Rec, overall and on the
repeat and the new targets.

    python experiments/run_next_item.py                                          # synthetic sequences, 5 seeds
    python experiments/run_next_item.py --config configs/experiments/next_item_ml100k.yaml --data ml-100k/ml-100k.inter \
        --results-dir results/next_item_ml100k_heads --doc docs/next_item_ml100k.md
    python experiments/run_next_item.py --data ml-100k/ml-100k.inter --protocol temporal \
        --results-dir results/next_item_ml100k_temporal
    python experiments/run_next_item.py --data UserBehavior.csv --protocol days \
        --results-dir results/next_item_userbehavior_days                        # validate 12-02, test 12-03
    python experiments/run_next_item.py --summary-only --results-dir results/next_item_ml100k

Finished runs are skipped and interrupted ones resumed, so the same command continues a grid; a
run made with other data or settings stops it (use another --results-dir for those).
Writes <results-dir>/<model>/seed<k>/ (one run each, with its report), <results-dir>/summary.md
and .json, and, with --doc PATH, the same summary at PATH.
"""
import sys

from training.grid_cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "experiments/run_next_item.py", "configs/experiments/next_item_grid.yaml",
                  "results/next_item"))
