"""OpenBLAS against oneMKL: the benchmark's mlpbatch pass timed in two builds of backprop_core.

Usage:
    python benchmarks/blas_compare.py OPENBLAS_PYTHON MKL_PYTHON [--rounds N] [--out FILE]

Each argument names the Python of a venv holding one build (README, "Building with oneMKL").
Rounds alternate between the two builds (the order flips each round), each a fresh process that
checks its build's BLAS, warms up, then times single calls of ``backprop_core.gradients`` on the
mlpbatch workload of benchmarks/bench.py (ReLU MLP 64 -> 256x4 -> 10, batch 4096 as columns, He
initialisation, seed 0), float32 and float64. A round's figure is its fastest call; the table
gives, per build and dtype, the median over rounds and the range. It writes a markdown table to
``--out`` (default benchmarks/BLAS.md; ``-`` for none). Nothing is asserted: a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

DIMS = (64, 256, 256, 256, 256, 10)
BATCH = 4096
DTYPES = ("float32", "float64")

WORKER = r"""
import json, math, sys, time
import numpy as np
import backprop_core as bc
from backprop_core import _core

calls = int(sys.argv[1])
dims = json.loads(sys.argv[2])
batch = int(sys.argv[3])
out = {"blas": _core.blas(), "numpy": np.__version__, "times": {}}
for name in json.loads(sys.argv[4]):
    dtype = np.dtype(name)
    rng = np.random.default_rng(0)
    W = [(rng.standard_normal((o, i)) * math.sqrt(2.0 / i)).astype(dtype)
         for i, o in zip(dims[:-1], dims[1:])]
    b = [(0.1 * rng.standard_normal((o, 1))).astype(dtype) for o in dims[1:]]
    x = rng.uniform(-1.0, 1.0, (dims[0], batch)).astype(dtype)
    y = rng.standard_normal((dims[-1], batch)).astype(dtype)
    for _ in range(3):
        bc.gradients(x, y, W, b)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        bc.gradients(x, y, W, b)
        times.append(time.perf_counter() - t)
    out["times"][name] = times
print(json.dumps(out))
"""


def run_round(python: str, calls: int) -> dict:
    """One fresh process of ``python`` timing ``calls`` calls per dtype."""
    args = [json.dumps(DIMS), str(BATCH), json.dumps(DTYPES)]
    done = subprocess.run(
        [python, "-c", WORKER, str(calls), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{python} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("openblas_python", help="Python of a venv with the OpenBLAS build")
    parser.add_argument("mkl_python", help="Python of a venv with the oneMKL build")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per build (default 15)")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per round (default 10)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("BLAS.md")))
    args = parser.parse_args(argv)

    builds = {"OpenBLAS": args.openblas_python, "oneMKL": args.mkl_python}
    best: dict[str, dict[str, list[float]]] = {b: {d: [] for d in DTYPES} for b in builds}
    names: dict[str, str] = {}
    start = time.time()
    for r in range(args.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for build in order:
            got = run_round(builds[build], args.calls)
            names[build] = f"{got['blas']}, numpy {got['numpy']}"
            for d in DTYPES:
                best[build][d].append(min(got["times"][d]))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    for build, name in names.items():
        want = "OpenBLAS" if build == "OpenBLAS" else "oneMKL"
        if want not in name:
            sys.exit(f"the {build} Python's backprop_core reports its BLAS as {name!r}")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# OpenBLAS against oneMKL",
        "",
        f"Made by `python benchmarks/blas_compare.py` ({args.rounds} alternating rounds per "
        f"build, each a fresh process timing {args.calls} single calls after 3 warm-up calls; "
        "a round's figure is its fastest call).",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, load average {load:.2f} at the end, "
        f"{time.time() - start:.0f} s in all. Workload: `backprop_core.gradients` on the "
        f"benchmark's mlpbatch network (ReLU MLP {DIMS[0]} → {DIMS[1]}×{len(DIMS) - 2} → "
        f"{DIMS[-1]}, batch {BATCH} as columns).",
        "",
        "| dtype | OpenBLAS median (range) | oneMKL median (range) | oneMKL ÷ OpenBLAS |",
        "|---|---|---|---|",
    ]
    for d in DTYPES:
        cells = []
        for build in builds:
            t = best[build][d]
            cells.append(
                f"{statistics.median(t) * 1e3:.1f} ms ({min(t) * 1e3:.1f}–{max(t) * 1e3:.1f})"
            )
        ratio = statistics.median(best["oneMKL"][d]) / statistics.median(best["OpenBLAS"][d])
        lines.append(f"| {d} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    lines += ["", *(f"- {b}: {n}" for b, n in names.items()), ""]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
