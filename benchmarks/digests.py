"""SHA-256 digests of every native result on the benchmark's workloads and the tests' networks.

Run before and after a refactor of the core or the bindings; the two JSON files must agree
key for key (or each difference needs a reason)::

    python benchmarks/digests.py > before.json   # ... change ...
    python benchmarks/digests.py > after.json && diff before.json after.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import backprop_core as bc
import numpy as np
from backprop_core.examples import mlp_example, toy_example


def digest(value: Any) -> str:
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, (list, tuple)):
            for item in v:
                feed(item)
            return
        a = np.asarray(v)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())

    feed(value)
    return h.hexdigest()[:16]


def mlp_net(dims: tuple[int, ...], n: int, dtype: Any, seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    W = [rng.normal(size=(dims[k + 1], dims[k])) / np.sqrt(dims[k]) for k in range(len(dims) - 1)]
    b = [rng.normal(size=(dims[k + 1], 1)) * 0.1 for k in range(len(dims) - 1)]
    x = rng.normal(size=(dims[0], n))
    y = rng.normal(size=(dims[-1], n))
    return x.astype(dtype), y.astype(dtype), [w.astype(dtype) for w in W], [c.astype(dtype) for c in b]


def main() -> None:
    out: dict[str, str] = {}
    t = toy_example()
    rng = np.random.default_rng(1)
    xs = rng.uniform(-2, 2, 1_000_000)
    ys = rng.uniform(-1, 1, 1_000_000)
    for dtype in (np.float32, np.float64):
        beta, omega = t.beta.astype(dtype), t.omega.astype(dtype)
        x1 = dtype(t.x)
        out[f"toy1.forward.{np.dtype(dtype)}"] = digest(bc.toy_forward(x1, beta, omega))
        out[f"toy1.backward.{np.dtype(dtype)}"] = digest(bc.toy_backward(x1, dtype(t.y), beta, omega))
        out[f"toy1.gradients.{np.dtype(dtype)}"] = digest(bc.toy_gradients(x1, dtype(t.y), beta, omega))
        xb, yb = xs.astype(dtype), ys.astype(dtype)
        out[f"toybatch.gradients.{np.dtype(dtype)}"] = digest(bc.toy_gradients(xb, yb, beta, omega))
        out[f"toybatch.backward.{np.dtype(dtype)}"] = digest(
            bc.toy_backward(xb[:100_000], yb[:100_000], beta, omega)
        )
        for acts in (("tanh", "relu"), ("sigmoid", "identity", "relu")):
            L = len(acts)
            out[f"toy.{'-'.join(acts)}.{np.dtype(dtype)}"] = digest(
                bc.toy_backward(xb[:5000], yb[:5000], beta[: L + 1], omega[: L + 1], activations=acts, relu_grad_at_zero=0.0)
            )
    ex = mlp_example()
    cases = {
        "mlp1": (ex.net_input, ex.y, ex.all_weights, ex.all_biases),
        "mlpsmall": mlp_net((3, 7, 5, 2), 33, np.float64, 2),
        "mlpmid": mlp_net((10, 40, 40, 3), 3000, np.float64, 3),
        "mlpbatch": mlp_net((64, 256, 256, 256, 256, 10), 4096, np.float64, 4),
    }
    for name, (x, y, W, b) in cases.items():
        for dtype in (np.float32, np.float64):
            xd, Wd, bd = x.astype(dtype), [w.astype(dtype) for w in W], [c.astype(dtype) for c in b]
            yd = np.asarray(y).astype(dtype)
            key = f"{name}.{np.dtype(dtype)}"
            fw = bc.forward(xd, Wd, bd)
            out[f"{key}.forward"] = digest(fw)
            for c in (1.0, 0.0):
                out[f"{key}.backward.{c}"] = digest(bc.backward(Wd, bd, fw[1], fw[2], yd, relu_grad_at_zero=c))
                out[f"{key}.gradients.{c}"] = digest(bc.gradients(xd, yd, Wd, bd, relu_grad_at_zero=c))
            m = bc.MLP(Wd, bd)
            out[f"{key}.model.forward"] = digest(m.forward(xd))
            out[f"{key}.model.gradients"] = digest(m.gradients(xd, yd))
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
