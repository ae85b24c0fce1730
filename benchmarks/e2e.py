"""End-to-end latency, visual tokens and memory of STORM's token-reduction settings, side by side.

    python benchmarks/e2e.py --scale cpu            # = storm-hf benchmark e2e --scale cpu
    python benchmarks/e2e.py --scale paper          # on a GPU (install the mamba-ssm kernels first)

Writes benchmarks/results/e2e-<scale>-<device>.json and .png; see docs/performance-e2e.md.
"""

import sys

from storm_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "e2e", *sys.argv[1:]]))
