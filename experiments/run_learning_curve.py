"""Test AUC against data size on the synthetic generator (configs/experiments/learning_curve.yaml):
MDAF-Full, MDAF-Static, DNN+match and gradient-boosted trees at 1x, 4x and 10x the default users,
the same validation and test days, tabulated and plotted against the training rows with the oracle.

    python experiments/run_learning_curve.py --results-dir results/learning_curve --doc docs/learning_curve.md
    python experiments/run_learning_curve.py --models GBDT DNN+match          # some of the grid
    python experiments/run_learning_curve.py --summary-only --results-dir results/learning_curve

Finished runs are skipped and interrupted ones resumed. Writes <results-dir>/users_<n>/<model>/seed<k>/
(one run each, with its report) and <results-dir>/learning_curve.{md,json,png}; with --doc PATH the
table at PATH and the figure beside it.
"""
import sys

from training.grid_cli import main
from training.learning_curve import load_learning_curve, run_learning_curve, write_learning_curve

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "experiments/run_learning_curve.py", "configs/experiments/learning_curve.yaml",
                  "results/learning_curve", summarise=write_learning_curve, load=load_learning_curve,
                  train=run_learning_curve))
