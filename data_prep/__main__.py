"""`python -m data_prep`: prepare the Taobao Ad or UserBehavior raw files, your own click log
described by a schema (--source generic), or a synthetic set.

    python -m data_prep --source taobao_ad --raw-dir ~/taobao --out data/taobao_ad
    python -m data_prep --source generic --schema my_schema.yaml --raw-dir ~/my_log --out data/my_log
    python -m data_prep                      # no raw files: a synthetic set in the Tianchi format
    python -m data_prep --raw-dir ~/new --out data/new --config new_days.yaml --vocab-from data/taobao_ad
                                             # new impressions, indexed like data/taobao_ad
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import exit_status
from data_prep.config import SOURCES, load_prep_config
from data_prep.prepare import prepare, prepare_copy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=SOURCES, default="taobao_ad")
    parser.add_argument("--raw-dir", type=Path, help="raw Tianchi files; omit for a synthetic set")
    parser.add_argument("--out", type=Path, help="dataset directory (default data/<source>, or "
                        "data/synthetic/<seed-config>/<source>-<hash of the inputs> for a synthetic set)")
    parser.add_argument("--config", type=Path, help="preparation YAML (default configs/data/<source>.yaml; for "
                        "generic, the defaults of data_prep/config.py)")
    parser.add_argument("--schema", type=Path, help="--source generic: the YAML schema of the --raw-dir files "
                        "(docs/generic_source.md; default configs/data/generic.yaml, the Taobao Ad files)")
    parser.add_argument("--synthetic-config", type=Path, help="generator YAML (default configs/data/synthetic.yaml)")
    parser.add_argument("--seed", type=int, help="generator seed (synthetic only)")
    parser.add_argument("--vocab-from", type=Path, help="a processed dataset of the same source: encode "
                        "with its vocabularies (and price edges) instead of fitting new ones")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing dataset that data_prep wrote (never anything else)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)

    def run() -> None:
        cfg = load_prep_config(args.source, args.config, **({"schema": args.schema} if args.schema else {}))
        if args.raw_dir is None and args.out is None:
            from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config, synthetic_home

            synth = synthetic_config(args.synthetic_config, args.seed)
            prepare_copy(ensure_synthetic_raw(args.source, synth), synthetic_home(synth), cfg,
                         vocab_from=args.vocab_from)
            return
        raw_dir = args.raw_dir
        if raw_dir is None:
            from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config

            raw_dir = ensure_synthetic_raw(args.source, synthetic_config(args.synthetic_config, args.seed))
        prepare(raw_dir, args.out or Path("data") / args.source, cfg, overwrite=args.overwrite,
                vocab_from=args.vocab_from)

    return exit_status(run)

if __name__ == "__main__":
    sys.exit(main())
