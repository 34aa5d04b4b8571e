"""How much of the synthetic generator's sequential click term the match statistics and a run's
sequence branch carry, and how much it could add over the statistics (training/sequence_probe.py).

    python experiments/probe_sequence_signal.py --run results/mdaf-seed0

Prints the R^2 of ridge probes of the exact term on the statistics and on the branch's readout,
and the AUC of gradient-boosted trees on the statistics with and without the exact term.
"""
import argparse
import sys

from common.errors import exit_status
from training.sequence_probe import probe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a finished CTR run on a synthetic taobao_ad set")
    args = parser.parse_args(argv)

    def show() -> None:
        found = probe(args.run)
        for name, r2 in found["r2"].items():
            print(f"R^2 of the sequential term on the {name}: {r2:.3f}")
        print(f"the exact sequential term alone: val AUC {found['seq_auc']['val']:.4f}, test {found['seq_auc']['test']:.4f}")
        for name, figures in found["gbdt_auc"].items():
            print(f"gradient-boosted trees on static fields + {name}: val AUC {figures['val']:.4f}, test {figures['test']:.4f}")

    return exit_status(show)


if __name__ == "__main__":
    sys.exit(main())
