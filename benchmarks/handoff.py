"""What handing data between two cores costs here: why a training step stays on one core.

``handoff.cpp`` runs two threads that take turns, each reading the doubles the other just wrote
and writing its own, the turn passed through one atomic (spinning, no sleep): a round trip is two
hand-offs. A minibatch step split over two cores must hand the updated parameters one way and the
gradients the other every step; for issue 16's ``train`` workload (MLP 1-32-32-32-1, 2,145
parameters) a whole step takes about 14 us on one core of the development machine.

    python benchmarks/handoff.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from blas_compare import cpu_model
from toy_cycles import build

WHAT = {0: "the turn alone (one atomic)", 8: "one cache line each way",
        2145: "the train workload's parameters (16.8 KB) each way", 8192: "64 KB each way"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=20000, help="round trips a measurement")
    opts = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp), "handoff", ())
        text = subprocess.run([str(exe), str(opts.rounds)], check=True, capture_output=True,
                              text=True).stdout
    print(f"{cpu_model()}; best of 5 runs of {opts.rounds} round trips\n")
    print("| doubles each way | round trip | what |\n|---|---|---|")
    for line in text.split("\n"):
        if line.strip():
            n, ns = line.split()
            print(f"| {n} | {float(ns) / 1000:.2f} µs | {WHAT.get(int(n), '')} |")


if __name__ == "__main__":
    main()
