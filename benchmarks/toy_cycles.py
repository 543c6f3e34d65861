"""Cycles per sample of the fused toy chain against its transcendentals alone (issue 14, item 3).

The toybatch workload of bench.py (notebook 7.1's chain with its parameters, 1,000,000 samples,
float64): ``toy_cycles.cpp`` times ``toy_gradients`` (forward and backward, sums only) and the
five vector-math calls the chain makes a sample (sin and cos of f_0, exp of f_1, cos and sin of
f_2) on the chain's own arguments, nothing else, first on one thread and then on every thread
the pool may use. The core is header-only, so the program is built here from ``cpp/include``
with the flags the package's build uses (``-O3 -fno-math-errno``, glibc's libmvec), and its loss
and gradients are checked against the installed package's before any figure is printed (bit for
bit when the package was built by the same compiler, else to 1e-12).

    python benchmarks/toy_cycles.py [--repeat 15] [--out benchmarks/RESULTS-toy-cycles.md]

Cycles are the measured time times the core clock, itself measured with a chain of dependent
integer additions (one cycle each) just before; on two threads, core-cycles per sample count
both cores' time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import backprop_core as bc
import numpy as np
from backprop_core.examples import toy_example
from blas_compare import cpu_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N = 1_000_000


def compiler() -> str:
    """$CXX when set, else the first of c++, g++ and clang++ on PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    raise SystemExit("toy_cycles: no C++ compiler found (set CXX)")


def build(out: Path, name: str = "toy_cycles", flags: tuple[str, ...] = (
        "-DBACKPROP_CORE_LIBMVEC", "-lmvec", "-lm")) -> Path:
    """benchmarks/NAME.cpp built into OUT with the package's flags (-O3 -fno-math-errno) and
    the core's headers; returns the program's path."""
    exe = out / name
    cmd = [compiler(), "-std=c++17", "-O3", "-fno-math-errno", f"-I{ROOT / 'cpp' / 'include'}",
           str(HERE / f"{name}.cpp"), "-o", str(exe), *flags, "-lpthread"]
    subprocess.run(cmd, check=True)
    return exe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=15, help="timed runs a row (median; default 15)")
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    opts = p.parse_args()

    rng = np.random.default_rng(0)  # bench.py's toybatch data (seed 0)
    x = rng.uniform(-1.0, 1.0, N)
    y = rng.standard_normal(N)
    e = toy_example()
    want = bc.toy_gradients(x, y, e.beta, e.omega)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        x.tofile(d / "x.bin")
        y.tofile(d / "y.bin")
        exe = build(d)
        args = [str(exe), str(d / "x.bin"), str(d / "y.bin"), str(N), str(opts.repeat)]
        args += [repr(float(v)) for v in (*e.beta, *e.omega)]
        text = subprocess.run(args, check=True, capture_output=True, text=True).stdout

    fields = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    got_loss = float(fields["loss"][0])
    got = np.array([float(v) for v in fields["gradients"]])
    expected = np.concatenate([want.dl_dbeta, want.dl_domega])
    # The same compiler as the package's build gives the same bits; another (a wheel built with
    # clang, say) may fuse other multiply-adds, so it must agree to 1e-12 of each value.
    if got_loss == float(want.loss) and np.array_equal(got, expected):
        agreement = "equal the installed package's, bit for bit"
    elif np.allclose([got_loss, *got], [float(want.loss), *expected], rtol=1e-12, atol=0):
        agreement = "equal the installed package's to 1e-12 (not bit for bit: another compiler)"
    else:
        raise SystemExit(f"toy_cycles: the program's results differ from the package's:\n"
                         f"loss {got_loss!r} vs {float(want.loss)!r}\n{got}\n{expected}")
    ghz = float(fields["clock"][0])
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("row ")]

    lines = [
        "# The toy chain over many samples: cycles per sample against its transcendentals alone",
        "",
        f"backprop_core {bc.__version__}; {cpu_model()}, core clock measured at {ghz:.2f} GHz; "
        f"{N:,} samples, float64 (bench.py's toybatch), medians of {opts.repeat} runs; "
        f"`python benchmarks/toy_cycles.py`. The program's loss and gradients {agreement}.",
        "",
        "| threads | chain: ns / sample | chain: core-cycles / sample | transcendentals alone: "
        "ns / sample | alone: core-cycles / sample | chain ÷ alone |",
        "|---|---|---|---|---|---|",
    ]
    for threads, chain_s, alone_s in rows:
        t = int(threads)
        c_ns, a_ns = float(chain_s) / N * 1e9, float(alone_s) / N * 1e9
        lines.append(f"| {t} | {c_ns:.2f} | {c_ns * ghz * t:.1f} | {a_ns:.2f} | "
                     f"{a_ns * ghz * t:.1f} | {c_ns / a_ns:.2f}x |")
    lines += [
        "",
        "Transcendentals alone: the five vector-math calls (glibc's libmvec, the widest vectors "
        "this CPU runs) the chain makes a sample, on the chain's own arguments in its blocks of "
        "256 samples, and nothing else. The rest of the chain's time is the affine steps, the "
        "loss, the sums and the blocks' memory traffic. libmvec's `sincos` (one call for the "
        "sine and cosine of one argument) measured slower here than its `sin` and `cos` "
        "called apart (it stores through a vector of pointers), so the chain calls them apart.",
    ]
    table = "\n".join(lines) + "\n"
    sys.stdout.write(table)
    if opts.out:
        opts.out.write_text(table)


if __name__ == "__main__":
    main()
