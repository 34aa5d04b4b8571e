"""Export a trained run's scoring forward as a TorchScript program that runs without this repository.

    python experiments/export.py --run results/mdaf-seed0          # -> results/mdaf-seed0/export/scoring.pt
    python -c "import torch; p = torch.jit.load('results/mdaf-seed0/export/scoring.pt'); print(p.code)"

serving/export.py says what the program takes and returns, and how it is checked before writing.
"""
import argparse
import sys

from common.errors import exit_status
from training.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a training run directory (results/<run>)")
    parser.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path (default best)")
    parser.add_argument("--out", help="output file (default <run>/export/scoring.pt)")
    args = parser.parse_args(argv)
    setup_logging(None, True)

    def export() -> None:
        from serving.export import export_run

        export_run(args.run, args.out, args.checkpoint)

    return exit_status(export)


if __name__ == "__main__":
    sys.exit(main())
