"""Time the `train` workload of issue 16: 1000 SGD steps of an MLP 1-32-32-32-1 (ReLU), minibatches
of 64 samples, float64, squared error averaged over each minibatch, learning rate 0.01.

    python benchmarks/sgd_bench.py                   # 15 interleaved rounds
    python benchmarks/sgd_bench.py --repeat 31 --out benchmarks/RESULTS-sgd.md

The 1000 minibatches are one dataset of 64000 samples taken in order (``shuffle=False``), so every
contestant takes the same steps from the same starting weights (He initialisation, seed 0), and the
final weights are checked to agree before anything is timed. Contestants:

* ``backprop_core.fit`` (one call; the loop in C++, the GIL released);
* JAX: the whole loop as one ``jax.lax.scan`` under ``jax.jit`` (float64 enabled), compiled
  before timing (its best straightforward form: one dispatch for all 1000 steps);
* PyTorch: an eager loop with ``torch.optim.SGD``, and the same loop with the step
  (forward, backward, update) under ``torch.compile``, compiled before timing;
* a Python loop around ``backprop_core.gradients(..., reduction="mean")`` with numpy updates;
* the notebook's numpy (7.2's ``forward_pass`` / ``backward_pass`` cells as written, their
  summed loss's gradients divided by the batch size) with an SGD update.

All run in one process, interleaved (each round runs every contestant once, the order rotated);
the table shows medians and bests. "FLOP limit" divides the products' FLOPs (forward, weight
gradients, the input gradients of every layer but the first) by numpy's rate on a 2048x2048
product, best of 3, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backprop_core as bc
import numpy as np
from train_bench import peak_rate, write_report  # (the script's own folder)

WIDTHS = (1, 32, 32, 32, 1)
STEPS, BATCH, LR = 1000, 64, 0.01


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.0, 1.0, (1, STEPS * BATCH))
    return x, np.sin(3.0 * x)


def initial() -> tuple[list[np.ndarray], list[np.ndarray]]:
    model = bc.MLP.from_widths(list(WIDTHS), init="he", seed=0)
    return [w.copy() for w in model.weights], [b.copy() for b in model.biases]


def flops() -> float:
    pairs = list(zip(WIDTHS[:-1], WIDTHS[1:]))
    forward = sum(2 * i * o for i, o in pairs)
    input_grads = sum(2 * i * o for i, o in pairs[1:])
    return float((2 * forward + input_grads) * BATCH * STEPS)


Result = tuple[list[np.ndarray], list[np.ndarray]]


def ours(x: np.ndarray, y: np.ndarray) -> Callable[[], Result]:
    W0, b0 = initial()

    def run() -> Result:
        model = bc.MLP(W0, b0)
        bc.fit(model, x, y, optimizer="sgd", learning_rate=LR, batch_size=BATCH, epochs=1,
               shuffle=False)
        return model.weights, model.biases

    return run


def python_loop(x: np.ndarray, y: np.ndarray) -> Callable[[], Result]:
    W0, b0 = initial()
    xs = [np.ascontiguousarray(x[:, s:s + BATCH]) for s in range(0, STEPS * BATCH, BATCH)]
    ys = [np.ascontiguousarray(y[:, s:s + BATCH]) for s in range(0, STEPS * BATCH, BATCH)]

    def run() -> Result:
        W, b = [w.copy() for w in W0], [v.copy() for v in b0]
        for xb, yb in zip(xs, ys):
            _, dW, db = bc.gradients(xb, yb, W, b, reduction="mean")
            for p, g in zip(W + b, dW + db):
                p -= LR * g
        return W, b

    return run


def notebook(x: np.ndarray, y: np.ndarray) -> Callable[[], Result]:
    """Notebook 7.2's cells as written (forward_pass, backward_pass with its indicator function),
    then an SGD step on the minibatch mean."""
    W0, b0 = initial()
    K = len(W0) - 1

    def ReLU(preactivation: np.ndarray) -> np.ndarray:
        return preactivation.clip(0.0)

    def forward_pass(net_input, all_weights, all_biases):
        all_f = [None] * (K + 1)
        all_h = [None] * (K + 1)
        all_h[0] = net_input
        for layer in range(K):
            all_f[layer] = all_biases[layer] + np.matmul(all_weights[layer], all_h[layer])
            all_h[layer + 1] = ReLU(all_f[layer])
        all_f[K] = all_biases[K] + np.matmul(all_weights[K], all_h[K])
        return all_f[K], all_f, all_h

    def indicator_function(x):
        x_in = np.array(x)
        x_in[x_in >= 0] = 1
        x_in[x_in < 0] = 0
        return x_in

    def backward_pass(all_weights, all_biases, all_f, all_h, y):
        all_dl_dweights = [None] * (K + 1)
        all_dl_dbiases = [None] * (K + 1)
        all_dl_df = [None] * (K + 1)
        all_dl_dh = [None] * (K + 1)
        all_dl_df[K] = np.array(all_f[K] - y)
        for layer in range(K, -1, -1):
            all_dl_dbiases[layer] = np.sum(all_dl_df[layer], axis=1, keepdims=True)
            all_dl_dweights[layer] = np.matmul(all_dl_df[layer], all_h[layer].T)
            all_dl_dh[layer] = np.matmul(all_weights[layer].T, all_dl_df[layer])
            if layer > 0:
                all_dl_df[layer - 1] = indicator_function(all_f[layer - 1]) * all_dl_dh[layer]
        return all_dl_dweights, all_dl_dbiases

    xs = [x[:, s:s + BATCH] for s in range(0, STEPS * BATCH, BATCH)]
    ys = [y[:, s:s + BATCH] for s in range(0, STEPS * BATCH, BATCH)]

    def run() -> Result:
        W, b = [w.copy() for w in W0], [v.copy() for v in b0]
        for xb, yb in zip(xs, ys):
            _, all_f, all_h = forward_pass(xb, W, b)
            dW, db = backward_pass(W, b, all_f, all_h, yb)
            for p, g in zip(W + b, dW + db):
                p -= (LR / BATCH) * g
        return W, b

    return run


def jax_scan(x: np.ndarray, y: np.ndarray) -> Callable[[], Result]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    W0, b0 = initial()
    xs = jnp.asarray(x.reshape(1, STEPS, BATCH).transpose(1, 0, 2))
    ys = jnp.asarray(y.reshape(1, STEPS, BATCH).transpose(1, 0, 2))

    def loss(params, xb, yb):
        W, b = params
        h = xb
        for k in range(len(W) - 1):
            h = jax.nn.relu(W[k] @ h + b[k])
        f = W[-1] @ h + b[-1]
        return 0.5 * jnp.sum((f - yb) ** 2) / xb.shape[1]

    grad = jax.grad(loss)

    def step(params, batch):
        g = grad(params, *batch)
        return jax.tree_util.tree_map(lambda p, d: p - LR * d, params, g), None

    @jax.jit
    def train(params, xs, ys):
        return jax.lax.scan(step, params, (xs, ys))[0]

    start = ([jnp.asarray(w) for w in W0], [jnp.asarray(v) for v in b0])
    jax.block_until_ready(train(start, xs, ys))  # compiled here, not in the timing

    def run() -> Result:
        W, b = jax.block_until_ready(train(start, xs, ys))
        return [np.asarray(w) for w in W], [np.asarray(v) for v in b]

    return run


def pytorch(x: np.ndarray, y: np.ndarray, compiled: bool) -> Callable[[], Result]:
    import torch

    W0, b0 = initial()
    xs = [torch.from_numpy(np.ascontiguousarray(x[:, s:s + BATCH].T))
          for s in range(0, STEPS * BATCH, BATCH)]
    ys = [torch.from_numpy(np.ascontiguousarray(y[:, s:s + BATCH].T))
          for s in range(0, STEPS * BATCH, BATCH)]
    layers: list[Any] = []
    for w in W0:
        layers += [torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    opt = torch.optim.SGD(net.parameters(), lr=LR)

    def step(xb: Any, yb: Any) -> None:
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((net(xb) - yb) ** 2).sum() / xb.shape[0]
        loss.backward()
        opt.step()

    stepper = torch.compile(step) if compiled else step

    def reset() -> None:
        with torch.no_grad():
            for m, w, v in zip(linears, W0, b0):
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(v[:, 0]))

    if compiled:  # compiled (and warmed) before timing
        reset()
        for xb, yb in zip(xs[:3], ys[:3]):
            stepper(xb, yb)

    def run() -> Result:
        reset()
        for xb, yb in zip(xs, ys):
            stepper(xb, yb)
        return ([m.weight.detach().numpy().copy() for m in linears],
                [m.bias.detach().numpy().copy()[:, None] for m in linears])

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/sgd_bench.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-jax", action="store_true", help="leave JAX out")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="PyTorch's thread count (default 1: its threads spin between the small "
                   "products and slow every other contestant on a shared 2-core machine)")
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = p.parse_args(argv)
    x, y = data()
    contestants: dict[str, Callable[[], Result]] = {
        "backprop_core.fit": ours(x, y),
        "Python loop over backprop_core.gradients": python_loop(x, y),
        "numpy (notebook 7.2's cells)": notebook(x, y),
    }
    versions = [f"backprop_core {bc.__version__}", f"numpy {np.__version__}"]
    if not args.no_jax:
        try:
            contestants["JAX lax.scan under jit"] = jax_scan(x, y)
            import jax

            versions.append(f"JAX {jax.__version__}")
        except ImportError:
            print("JAX is not installed: its row is skipped", file=sys.stderr)
    if not args.no_torch:
        try:
            import torch

            torch.set_num_threads(args.torch_threads)
            contestants["PyTorch eager loop"] = pytorch(x, y, compiled=False)
            contestants["PyTorch, step under torch.compile"] = pytorch(x, y, compiled=True)
            versions.append(f"PyTorch {torch.__version__} ({args.torch_threads} thread(s))")
        except ImportError:
            print("PyTorch is not installed: its rows are skipped", file=sys.stderr)

    # The same steps: every contestant's final weights against backprop_core.fit's.
    want = contestants["backprop_core.fit"]()
    for name, fn in contestants.items():
        W, b = fn()
        worst = max(float(np.max(np.abs(g - w)) / max(1.0, float(np.max(np.abs(w)))))
                    for g, w in zip(W + b, want[0] + want[1]))
        if worst > 1e-9:
            raise SystemExit(f"{name}: final weights differ from backprop_core.fit's by {worst:.3g}")
        print(f"  {name}: final weights agree to {worst:.2g}", file=sys.stderr)

    names = list(contestants)
    times: dict[str, list[float]] = {k: [] for k in names}
    load = os.getloadavg()[0]
    for r in range(args.repeat):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            contestants[k]()
            times[k].append(time.perf_counter() - t)
    total = flops()
    limit = total / peak_rate(np.float64)
    medians = {k: statistics.median(v) for k, v in times.items()}
    peers = [k for k in names if not k.startswith(("backprop_core", "Python loop"))]
    fastest = min(peers, key=medians.__getitem__) if peers else None
    lines = [f"# The `train` workload: MLP {'-'.join(map(str, WIDTHS))}, {STEPS} SGD steps of "
             f"{BATCH} samples, float64", "",
             f"{'; '.join(versions)}; {args.repeat} interleaved rounds in one process; load "
             f"average {load:.1f} at the start.", "",
             "| contestant | median | best | median / fastest peer's | GFLOP/s (median) |",
             "|---|---|---|---|---|"]
    for k in names:
        ratio = f"{medians[k] / medians[fastest]:.2f}x" if fastest else "—"
        lines.append(f"| {k} | {medians[k] * 1e3:.1f} ms | {min(times[k]) * 1e3:.1f} ms | "
                     f"{ratio} | {total / medians[k] / 1e9:.1f} |")
    lines.append(f"| FLOP limit ({total / 1e9:.2f} GFLOP at numpy's 2048² rate) | "
                 f"{limit * 1e3:.1f} ms | | "
                 f"{f'{limit / medians[fastest]:.2f}x' if fastest else '—'} | "
                 f"{total / limit / 1e9:.1f} |")
    if fastest:
        lines += ["", f"Fastest peer: {fastest}."]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
