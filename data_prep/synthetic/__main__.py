"""python -m data_prep.synthetic --out DIR [--config YAML] [--seed N] [--n-users N] [--source S]

Writes the raw Tianchi files of the chosen source(s) into DIR and prints what it wrote.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import MDAFError
from data_prep.synthetic.config import load_synthetic_config
from data_prep.synthetic.taobao_ad import generate_taobao_ad
from data_prep.synthetic.userbehavior import generate_userbehavior

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "data" / "synthetic.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_prep.synthetic",
                                     description="Write synthetic raw Tianchi files.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--n-users", type=int, help="override the config's n_users")
    parser.add_argument("--source", choices=["taobao_ad", "userbehavior", "both"], default="both")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in (("seed", args.seed), ("n_users", args.n_users)) if v is not None}
    try:
        cfg = load_synthetic_config(args.config, overrides)
        runs = {"taobao_ad": generate_taobao_ad, "userbehavior": generate_userbehavior}
        for source, generate in runs.items():
            if args.source not in (source, "both"):
                continue
            summary = generate(cfg, args.out)
            rate = summary.get("click_rate", summary.get("conversion_rate"))
            print(f"{source}: {summary['seconds']:.1f} s, mean p {summary['mean_p']:.4f}, "
                  f"observed rate {rate:.4f}")
            for name, rows in summary["rows"].items():
                print(f"  {Path(args.out) / name}: {rows:,} rows")
    except (MDAFError, OSError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
