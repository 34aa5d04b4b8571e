"""Train a next-item model and write results/<run>/ with its report: full ranking over the catalogue,
HR, NDCG and MRR at 5, 10, 20. The default (configs/experiments/mamba4rec.yaml) is MambaRec, Mamba4Rec's
layer gated with causal self-attention, chosen on validation; configs/model/mamba4rec.yaml is the
published Mamba4Rec.

    python experiments/train_mamba4rec.py                                   # no data: synthetic sequences
    python experiments/train_mamba4rec.py --data ml-100k/ml-100k.inter      # MovieLens-100K, leave-one-out
    python experiments/train_mamba4rec.py --data ml-100k/ml-100k.inter --protocol temporal
    python experiments/train_mamba4rec.py --data ratings.dat --config configs/experiments/sasrec.yaml
    python experiments/train_mamba4rec.py --run-name m4r-s1 --seed 1 --resume   # continue after a crash

--data takes a RecBole atomic .inter file, MovieLens u.data or ratings.dat, a CSV or Parquet of
(user, item, timestamp) with the columns named in configs/data/next_item.yaml, or Taobao's
UserBehavior.csv; it is prepared into data/next_item-<name>-<hash>/ first.
"""
import sys

from training.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], __doc__, "configs/experiments/mamba4rec.yaml"))
