"""Train MDAF (configs/experiments/mdaf.yaml) and write results/<run>/ with its report.

    python experiments/train_mdaf.py                         # no data: a synthetic set, ~10 min on 2 CPU cores
    python experiments/train_mdaf.py --raw-dir ~/taobao_ad   # raw Tianchi files, prepared first
    python experiments/train_mdaf.py --data-dir data/taobao_ad --epochs 20 --seed 1 --run-name mdaf-s1
    python experiments/train_mdaf.py --run-name mdaf-s1 --resume          # continue after a crash
    torchrun --nproc_per_node=4 experiments/train_mdaf.py --data-dir data/taobao_ad
"""
import sys

from training.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "configs/experiments/mdaf.yaml"))
