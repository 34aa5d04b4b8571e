"""Train Mamba4Rec v2, the sequential model with the v2 recipe (configs/experiments/mamba4rec_v2.yaml).

    python experiments/train_mamba4rec_taobao_v2.py                        # synthetic set, ~10 min on 2 CPU cores
    python experiments/train_mamba4rec_taobao_v2.py --raw-dir ~/taobao_ad  # raw Tianchi files, prepared first
    python experiments/train_mamba4rec_taobao_v2.py --run-name v2 --resume # continue after a crash
    torchrun --nproc_per_node=4 experiments/train_mamba4rec_taobao_v2.py --data-dir data/taobao_ad
"""
import sys

from training.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "configs/experiments/mamba4rec_v2.yaml"))
