"""Time training on the digits workload: backprop_core.fit against scikit-learn's MLPClassifier
and a PyTorch eager loop with the same settings.

    python benchmarks/train_bench.py                 # float64 and float32, 5 rounds
    python benchmarks/train_bench.py --repeat 3 --dtypes float64 --out benchmarks/RESULTS-train.md

The workload (issue 16): scikit-learn's bundled digits (1797 samples, 64 features scaled to
[0, 1], 10 classes), an MLP 64-100-10 (ReLU), softmax cross-entropy averaged over each minibatch,
Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-8), L2 alpha = 1e-4 on the weights, minibatches of 200
(9 per epoch, the last of 197), shuffled every epoch, 200 epochs: 1800 steps. scikit-learn runs
with tol=0 and n_iter_no_change above max_iter, so every epoch runs; PyTorch takes the L2 term as
weight_decay = alpha / 200 on the weights (the same for the 8 full minibatches). Each contestant
starts from its own initialisation; the final training loss and accuracy are shown so that the
work done can be compared.

Every run is a fresh process (imports and data not timed): in one process, PyTorch's spinning
OpenMP threads slowed the numpy and scikit-learn runs after them several times over on this
shared machine. Rounds are interleaved (each round runs every contestant once, the order
rotated), and the table shows the median and the best of the rounds. PyTorch runs with its
default thread count and with 1 thread (``--torch-threads``). Two limits that no implementation built on numpy's
BLAS could beat: "numpy GEMMs alone" times only the matrix products of the 1800 steps (per step
W1 X, W2 H, dW2 = G H^T, W2^T G, dW1 = G1 X^T, with these shapes) into preallocated outputs, and
"FLOP limit" divides their FLOPs by numpy's rate on a 2048x2048 product (best of 3).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backprop_core as bc
import numpy as np

DIMS = (64, 100, 10)
LR, ALPHA, BATCH, EPOCHS = 1e-3, 1e-4, 200, 200


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y.astype(np.int64)


def steps(n: int) -> int:
    return EPOCHS * -(-n // BATCH)


def gemm_flops(n: int) -> float:
    """FLOPs of the products of one epoch's steps: forward, weight gradients, one input
    gradient (the first layer's input needs none)."""
    a, h, o = DIMS
    per_sample = 2 * (a * h + h * o) * 2 + 2 * h * o
    return float(per_sample * n * EPOCHS)


def ours(X: np.ndarray, y: np.ndarray, dtype: type) -> Callable[[], tuple[float, float]]:
    Xc = np.ascontiguousarray(X.T, dtype=dtype)

    def run() -> tuple[float, float]:
        model = bc.MLP.from_widths(list(DIMS), init="glorot", seed=0, dtype=dtype)
        h = bc.fit(model, Xc, y, loss="cross_entropy", optimizer="adam", learning_rate=LR,
                   alpha=ALPHA, batch_size=BATCH, epochs=EPOCHS, seed=1, relu_grad_at_zero=0.0)
        accuracy = float(np.mean(np.argmax(model.predict(Xc), axis=0) == y))
        return h.loss[-1], accuracy

    return run


def scikit_learn(X: np.ndarray, y: np.ndarray, dtype: type) -> Callable[[], tuple[float, float]]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    Xd = X.astype(dtype)

    def run() -> tuple[float, float]:
        est = MLPClassifier(hidden_layer_sizes=(DIMS[1],), solver="adam", learning_rate_init=LR,
                            alpha=ALPHA, batch_size=BATCH, max_iter=EPOCHS, tol=0.0,
                            n_iter_no_change=EPOCHS + 1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(Xd, y)
        assert est.n_iter_ == EPOCHS
        return est.loss_curve_[-1], float(est.score(Xd, y))

    return run


def pytorch(torch: Any, X: np.ndarray, y: np.ndarray, dtype: type,
            threads: int) -> Callable[[], tuple[float, float]]:
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    Xt, yt = torch.from_numpy(X.astype(dtype)), torch.from_numpy(y)
    n = len(y)

    def run() -> tuple[float, float]:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(DIMS[0], DIMS[1], dtype=tdtype), torch.nn.ReLU(),
                                  torch.nn.Linear(DIMS[1], DIMS[2], dtype=tdtype))
        weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
        biases = [m.bias for m in net if isinstance(m, torch.nn.Linear)]
        opt = torch.optim.Adam([{"params": weights, "weight_decay": ALPHA / BATCH},
                                {"params": biases, "weight_decay": 0.0}], lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(1)
        total = 0.0
        for _ in range(EPOCHS):
            order = torch.randperm(n, generator=g)
            total = 0.0
            for start in range(0, n, BATCH):
                idx = order[start:start + BATCH]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
        with torch.no_grad():
            accuracy = float((net(Xt).argmax(dim=1) == yt).double().mean())
        return total / n, accuracy

    return run


def numpy_gemms(n: int, dtype: type) -> Callable[[], tuple[float, float]]:
    a, h, o = DIMS
    rng = np.random.default_rng(0)
    W1, W2 = rng.standard_normal((h, a)).astype(dtype), rng.standard_normal((o, h)).astype(dtype)
    batches = [min(BATCH, n - s) for s in range(0, n, BATCH)]
    bufs = []
    for B in batches:
        X = rng.standard_normal((a, B)).astype(dtype)
        G = rng.standard_normal((o, B)).astype(dtype)
        bufs.append((X, G, np.empty((h, B), dtype), np.empty((o, B), dtype),
                     np.empty((o, h), dtype), np.empty((h, B), dtype), np.empty((h, a), dtype)))

    def run() -> tuple[float, float]:
        for _ in range(EPOCHS):
            for X, G, H, F, dW2, G1, dW1 in bufs:
                np.matmul(W1, X, out=H)
                np.matmul(W2, H, out=F)
                np.matmul(G, H.T, out=dW2)
                np.matmul(W2.T, G, out=G1)
                np.matmul(G1, X.T, out=dW1)
        return float("nan"), float("nan")

    return run


def write_report(lines: list[str], out: Path | None) -> None:
    """The table on standard output, and in ``out`` when given."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")


def peak_rate(dtype: type) -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(dtype)
    out = np.empty_like(a)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best


def contestant(key: str, dtype: type, X: np.ndarray, y: np.ndarray) -> Callable[[], tuple[float, float]]:
    if key == "backprop_core.fit":
        return ours(X, y, dtype)
    if key == "scikit-learn MLPClassifier":
        return scikit_learn(X, y, dtype)
    if key == "numpy GEMMs alone":
        return numpy_gemms(len(y), dtype)
    import torch

    return pytorch(torch, X, y, dtype, int(key.split("threads=")[1]))


def run_one(key: str, dtype_name: str) -> None:
    """In a fresh process: time one run of one contestant (data and imports not timed)."""
    if key == "peak":  # numpy's 2048² rate, under the same thread settings as the contestants
        print(json.dumps({"rate": peak_rate(np.dtype(dtype_name).type)}))
        return
    X, y = digits()
    fn = contestant(key, np.dtype(dtype_name).type, X, y)
    t = time.perf_counter()
    loss, accuracy = fn()
    print(json.dumps({"time": time.perf_counter() - t, "loss": loss, "accuracy": accuracy}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/train_bench.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--dtypes", default="float64,float32", help="float64, float32 or both")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--torch-threads", default="default,1",
                   help="PyTorch rows: comma-separated thread counts, 'default' for PyTorch's own "
                   "(default 'default,1')")
    p.add_argument("--one-thread", action="store_true",
                   help="every contestant in one thread (OPENBLAS/OMP/MKL_NUM_THREADS=1, "
                   "BACKPROP_CORE_NUM_THREADS=1, PyTorch 1 thread): immune to a busy machine's "
                   "oversubscription")
    p.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    p.add_argument("--one", nargs=2, metavar=("CONTESTANT", "DTYPE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        run_one(*args.one)
        return 0
    torch_version, threads = None, []
    if not args.no_torch:
        try:
            import torch

            torch_version = torch.__version__
            threads = [torch.get_num_threads() if t == "default" else int(t)
                       for t in args.torch_threads.split(",")]
        except ImportError:
            print("PyTorch is not installed: its rows are skipped", file=sys.stderr)
    env = dict(os.environ)
    if args.one_thread:
        threads = [1] if threads else []
        env.update({v: "1" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                     "MKL_NUM_THREADS", "BACKPROP_CORE_NUM_THREADS")})
    X, y = digits()
    n = len(y)
    lines = [f"# Training benchmark: digits, MLP {'-'.join(map(str, DIMS))}, Adam, batch {BATCH}, "
             f"{EPOCHS} epochs ({steps(n)} steps)", "",
             f"backprop_core {bc.__version__} (its own thread pool); PyTorch "
             f"{torch_version or 'absent'}; {args.repeat} interleaved rounds, each run in a fresh "
             f"process{'; every contestant in ONE thread' if args.one_thread else ''}; load "
             f"average {os.getloadavg()[0]:.1f} at the start.", ""]
    for name in args.dtypes.split(","):
        names = ["backprop_core.fit", "scikit-learn MLPClassifier", "numpy GEMMs alone"]
        names += [f"PyTorch eager loop, threads={t}" for t in threads]
        times: dict[str, list[float]] = {k: [] for k in names}
        results: dict[str, tuple[float, float]] = {}
        for r in range(args.repeat):
            for k in names[r % len(names):] + names[:r % len(names)]:
                out = subprocess.run([sys.executable, __file__, "--one", k, name], check=True,
                                     capture_output=True, text=True, env=env).stdout
                got = json.loads(out.strip().splitlines()[-1])
                times[k].append(got["time"])
                results[k] = (got["loss"], got["accuracy"])
                print(f"  {name} round {r + 1}: {k} {got['time']:.3f} s", file=sys.stderr)
        flops = gemm_flops(n)
        out = subprocess.run([sys.executable, __file__, "--one", "peak", name], check=True,
                             capture_output=True, text=True, env=env).stdout
        limit = flops / json.loads(out.strip().splitlines()[-1])["rate"]
        ours_median = statistics.median(times["backprop_core.fit"])
        lines += [f"## {name}", "",
                  "| contestant | median | best | median / backprop_core's | GFLOP/s (median) "
                  "| final loss | train accuracy |",
                  "|---|---|---|---|---|---|---|"]
        for k in names:
            med, best = statistics.median(times[k]), min(times[k])
            loss, acc = results[k]
            shown = "—" if math.isnan(loss) else f"{loss:.4g} | {acc:.4f}"
            lines.append(f"| {k} | {med:.3f} s | {best:.3f} s | {med / ours_median:.2f}x | "
                         f"{flops / med / 1e9:.1f} | {shown} |" + (" — |" if shown == "—" else ""))
        lines.append(f"| FLOP limit ({flops / 1e9:.1f} GFLOP at numpy's 2048² rate) | "
                     f"{limit:.3f} s | | {limit / ours_median:.2f}x | {flops / limit / 1e9:.1f} "
                     "| | |")
        lines.append("")
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
