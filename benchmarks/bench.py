"""Time backprop_core against the notebook numpy code, PyTorch and JAX; see benchmarks/README.md.

    python benchmarks/bench.py            # a few minutes; writes benchmarks/RESULTS.md
    python benchmarks/bench.py --quick    # under a minute
    python benchmarks/bench.py --help

The benchmark itself is backprop_core._bench, installed with the package, so this script times
whatever backprop_core is installed in the running interpreter.
"""

from __future__ import annotations

import sys
from pathlib import Path

from backprop_core._bench import main

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="python benchmarks/bench.py",
            default_out=Path(__file__).resolve().with_name("RESULTS.md"),
        )
    )
