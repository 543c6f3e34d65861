"""The walkthrough of ``python -m backprop_core``: notebooks 7.1 and 7.2, native against reference
against finite differences, with a verdict, as a table or as JSON (:func:`run`).

The command line (``__main__``) imports this module; this module imports nothing of it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _api as native
from . import reference
from .examples import mlp_example, toy_example

REF_RTOL = 1e-12  # native against reference, float64
FD_RTOL = 1e-6  # against central differences, step FD_STEP
FD_STEP = 1e-6

# What notebook 7.1 prints (3 decimals).
TOY_NOTEBOOK = {
    "f0": 1.230, "h1": 0.942, "f1": 1.623, "h2": 5.068, "f2": 7.137, "h3": 0.657, "f3": 2.372,
    "loss": 0.139,
    "dl/df3": 0.745, "dl/dh3": 2.234, "dl/df2": -1.683, "dl/dh2": -3.366, "dl/df1": -17.060,
    "dl/dh1": 6.824, "dl/df0": 2.281,
    "dl/dbeta3": 0.745, "dl/domega3": 0.489, "dl/dbeta2": -1.683, "dl/domega2": -8.530,
    "dl/dbeta1": -17.060, "dl/domega1": -16.079, "dl/dbeta0": 2.281, "dl/domega0": 5.246,
}  # fmt: skip

# What notebook 7.2 prints.
MLP_NOTEBOOK = {"output": -0.923, "loss": 478.118}


def central(fn: Callable[[float], float], at: float) -> float:
    return (fn(at + FD_STEP) - fn(at - FD_STEP)) / (2 * FD_STEP)


def _agree(a: float, b: float, rtol: float) -> bool:
    return bool(abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300))


class Table:
    """One section of the walkthrough: its rows as printed, and the same rows as data for --json."""

    def __init__(self, section: str, columns: list[str]) -> None:
        self.section = section
        self.columns = columns
        self.rows: list[list[str]] = []
        self.records: list[dict[str, Any]] = []
        self.failures = 0

    def add(self, cells: list[object], ok: bool, record: dict[str, Any]) -> None:
        self.failures += not ok
        verdict = "ok" if ok else "DISAGREE"
        self.rows.append([_fmt(c) for c in cells] + [verdict])
        self.records.append(
            {"section": self.section, **record, "verdict": verdict, "ok": bool(ok)}
        )

    def render(self) -> str:
        cols = [*self.columns, "verdict"]
        widths = [max(len(r[i]) for r in [cols, *self.rows]) for i in range(len(cols))]
        line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
        return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in self.rows])


def _fmt(c: object) -> str:
    if isinstance(c, (float, np.floating)):
        return f"{c:.12g}"
    return str(c)


def toy_section() -> Table:
    e = toy_example()
    n = native.toy_backward(e.x, e.y, e.beta, e.omega, activations=e.activations)
    r = reference.toy_backward(e.x, e.y, e.beta, e.omega, activations=e.activations)
    L = len(e.activations)

    def chain_loss(start: int, value: float, at_h: bool) -> float:
        # The loss of the rest of the chain fed with h_start (at_h) or f_start.
        if at_h:
            beta, omega, acts = e.beta[start:], e.omega[start:], e.activations[start:]
        else:
            beta = np.r_[0.0, e.beta[start + 1 :]]
            omega = np.r_[1.0, e.omega[start + 1 :]]
            acts = e.activations[start:]
        return float(native.toy_backward(value, e.y, beta, omega, activations=acts).loss)

    def param_loss(which: str, k: int) -> Callable[[float], float]:
        def fn(v: float) -> float:
            beta, omega = e.beta.copy(), e.omega.copy()
            (beta if which == "beta" else omega)[k] = v
            return float(native.toy_backward(e.x, e.y, beta, omega, activations=e.activations).loss)

        return fn

    t = Table("notebook 7.1", ["notebook 7.1", "printed", "native", "reference", "finite diff"])
    rows: list[tuple[str, Any, Any, Any]] = []  # numpy scalars
    for k in range(L + 1):
        if k:
            rows.append((f"h{k}", n.h[k - 1], r.h[k - 1], None))
        rows.append((f"f{k}", n.f[k], r.f[k], None))
    rows.append(("loss", n.loss, r.loss, None))
    for k in range(L, -1, -1):
        rows.append((f"dl/df{k}", n.dl_df[k], r.dl_df[k], central(lambda v: chain_loss(k, v, False), n.f[k])))
        if k:
            rows.append((f"dl/dh{k}", n.dl_dh[k - 1], r.dl_dh[k - 1], central(lambda v: chain_loss(k, v, True), n.h[k - 1])))
    for k in range(L, -1, -1):
        rows.append((f"dl/dbeta{k}", n.dl_dbeta[k], r.dl_dbeta[k], central(param_loss("beta", k), e.beta[k])))
        rows.append((f"dl/domega{k}", n.dl_domega[k], r.dl_domega[k], central(param_loss("omega", k), e.omega[k])))
    for name, nv, rv, fd in rows:
        printed = TOY_NOTEBOOK[name]
        ok = round(float(nv), 3) == printed and _agree(nv, rv, REF_RTOL)
        ok = ok and (fd is None or _agree(nv, fd, FD_RTOL))
        t.add(
            [name, f"{printed:.3f}", nv, rv, "" if fd is None else fd],
            ok,
            {"name": name, "printed": printed, "native": nv, "reference": rv, "finite_difference": fd},
        )
    return t


def mlp_section() -> tuple[Table, Table]:
    e = mlp_example()
    out, all_f, _ = native.forward(e.net_input, e.all_weights, e.all_biases)
    loss, dW, db = native.gradients(e.net_input, e.y, e.all_weights, e.all_biases)
    r_out, _, _ = reference.forward(e.net_input, e.all_weights, e.all_biases)
    r_loss, r_dW, r_db = reference.gradients(e.net_input, e.y, e.all_weights, e.all_biases)

    head = Table("notebook 7.2", ["notebook 7.2", "printed", "native", "reference"])
    for name, nv, rv in [("output", out[0, 0], r_out[0, 0]), ("loss", loss, r_loss)]:
        printed = MLP_NOTEBOOK[name]
        ok = round(float(nv), 3) == printed and _agree(nv, rv, REF_RTOL)
        head.add(
            [name, f"{printed:.3f}", nv, rv],
            ok,
            # The notebook prints no finite difference for these, and neither does the table.
            {"name": name, "printed": printed, "native": nv, "reference": rv, "finite_difference": None},
        )

    def fd_grads(params: list[np.ndarray], is_weight: bool) -> list[np.ndarray]:
        grads = []
        for k, p in enumerate(params):
            g = np.empty_like(p)
            for i in np.ndindex(p.shape):

                def fn(v: float) -> float:
                    changed = [q.copy() for q in params]
                    changed[k][i] = v
                    w, b = (changed, e.all_biases) if is_weight else (e.all_weights, changed)
                    return float(native.gradients(e.net_input, e.y, w, b)[0])

                g[i] = central(fn, float(p[i]))
            grads.append(g)
        return grads

    # Finite differences are only valid away from ReLU kinks: report the closest approach.
    margin = min(float(np.abs(f).min()) for f in all_f[:-1])
    fd_W, fd_b = fd_grads(e.all_weights, True), fd_grads(e.all_biases, False)
    layers = Table("notebook 7.2 gradients", ["layer", "param", "largest |derivative|", "max |native-reference|", "max |native-fd|"])
    for k in range(len(dW)):
        for name, nv, rv, fv in [("weights", dW[k], r_dW[k], fd_W[k]), ("biases", db[k], r_db[k], fd_b[k])]:
            big = float(np.abs(nv).max())
            d_ref = float(np.abs(nv - rv).max())
            d_fd = float(np.abs(nv - fv).max())
            ok = d_ref <= REF_RTOL * max(big, 1.0) and d_fd <= FD_RTOL * max(big, 1.0)
            layers.add(
                [k, name, big, d_ref, d_fd],
                ok and margin > 10 * FD_STEP,
                {
                    "name": f"layer {k} {name}",
                    "printed": None,  # the notebook prints no derivatives of the MLP
                    "native": nv,
                    "reference": rv,
                    "finite_difference": fv,
                    "layer": k,
                    "param": name,
                    "largest_abs_derivative": big,
                    "max_abs_native_minus_reference": d_ref,
                    "max_abs_native_minus_fd": d_fd,
                    "relu_margin": margin,
                },
            )
    return head, layers


def _jsonable(v: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and nested lists; NaN and infinities, which JSON
    cannot spell, as null (their rows say DISAGREE)."""
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def report(tables: list[Table]) -> dict[str, Any]:
    """The walkthrough as data: every row of every table, and the overall verdict."""
    failures = sum(t.failures for t in tables)
    data: dict[str, Any] = _jsonable(
        {
            "ok": not failures,
            "failures": failures,
            "tolerances": {
                "native_vs_reference_rtol": REF_RTOL,
                "finite_difference_rtol": FD_RTOL,
                "finite_difference_step": FD_STEP,
            },
            "rows": [r for t in tables for r in t.records],
        }
    )
    return data


def run(as_json: bool = False) -> int:
    """Print the walkthrough (a table, or JSON with ``as_json``); 0 if all agree, else 1."""
    toy = toy_section()
    if not as_json:
        print("Notebook 7.1: the toy chain f = b3 + w3 cos(b2 + w2 exp(b1 + w1 sin(b0 + w0 x)))")
        print(f"  x = 2.3, y = 2.0; native and reference agree to {REF_RTOL:g} relative,")
        print(f"  finite differences (central, step {FD_STEP:g}) to {FD_RTOL:g}\n")
        print(toy.render())
    head, layers = mlp_section()
    failures = toy.failures + head.failures + layers.failures
    if as_json:
        print(json.dumps(report([toy, head, layers]), indent=2, allow_nan=False))
        return 1 if failures else 0
    print("\nNotebook 7.2: the ReLU MLP (K = 5, width 6, seed 44), input 1.2, y = 30\n")
    print(head.render())
    print()
    print(layers.render())
    print(f"\n{'ALL AGREE' if not failures else f'{failures} DISAGREE'}")
    return 1 if failures else 0
