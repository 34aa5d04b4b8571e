"""Score samples with a trained run's checkpoint and write a parquet of click probabilities.

    python experiments/predict.py --run results/mdaf-seed0                   # its test split
    python experiments/predict.py --run results/mdaf-seed0 --split val test --out scores.parquet
    python experiments/predict.py --run results/mdaf-seed0 --raw-dir new_raw/  # new raw Tianchi files,
        # prepared with the run's vocabularies; their split days come from --data-config
        # (default configs/data/<source>.yaml), e.g. put all new days in test_days
"""
import argparse
import sys

from common.errors import exit_status
from training.logs import setup_logging
from training.predict import SPLITS, predict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a training run directory (results/<run>)")
    parser.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path (default best)")
    parser.add_argument("--split", nargs="+", default=["test"], choices=SPLITS, help="splits to score (default test)")
    parser.add_argument("--raw-dir", help="new raw files to prepare with the run's vocabularies and score")
    parser.add_argument("--data-config", help="preparation YAML for --raw-dir (split days)")
    parser.add_argument("--out", help="output parquet (default <run>/predictions.parquet)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "mps", "cpu"))
    args = parser.parse_args(argv)
    setup_logging(None, True)
    return exit_status(lambda: predict(args.run, args.split, args.checkpoint, args.raw_dir, args.data_config,
                                       args.out, args.device))


if __name__ == "__main__":
    sys.exit(main())
