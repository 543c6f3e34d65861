"""Gradient checking: central finite differences on every parameter, as a feature.

Like ``torch.autograd.gradcheck`` and ``jax.test_util.check_grads``, derivatives are compared with
central differences ``(l(p + h) - l(p - h)) / 2h``. Here the differences are always taken in
float64 (parameters are upcast), with the step ``h = eps * max(1, |p|)``, so the finite difference
itself is accurate to about ``1e-10 * max(1, |loss|)`` away from kinks; the tolerance depends on the
dtype of the gradients being checked:

=========  ==========  ==========  ===================================
dtype      ``eps``     ``rtol``    ``atol``
=========  ==========  ==========  ===================================
float64    1e-6        1e-5        ``1e-7 * max(1, |loss|)``
float32    1e-6        1e-3        ``1e-4 * max(1, |loss|)``
=========  ==========  ==========  ===================================

An entry passes when ``|value - fd| <= atol + rtol * |fd|`` (torch's rule). Finite differences
across a ReLU kink are wrong, not the gradient: the report warns when a ReLU pre-activation lies
within ``10 h`` of 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _api
from ._dtype import as_array, as_arrays, common_dtype, named_items
from ._results import NOTEBOOK_CHAIN

TOLERANCES = {  # dtype: (eps, rtol, atol per unit of max(1, |loss|))
    np.dtype(np.float64): (1e-6, 1e-5, 1e-7),
    np.dtype(np.float32): (1e-6, 1e-3, 1e-4),
}


@dataclass(frozen=True)
class GradcheckRow:
    """One parameter entry of a :class:`GradcheckReport`."""

    name: str
    value: float
    finite_difference: float
    abs_error: float
    rel_error: float
    ok: bool


@dataclass
class GradcheckReport:
    """The result of :func:`gradcheck`: one row per parameter entry.

    Attributes
    ----------
    rows : list of GradcheckRow
        Per entry: ``name`` (such as ``"beta[1]"``), ``value`` (supplied or native),
        ``finite_difference``, ``abs_error``, ``rel_error`` and ``ok``.
    loss : float
        The loss at the checked parameters.
    eps, rtol, atol : float
        The step and tolerances used.
    supplied : bool
        Whether the checked gradients were supplied (else the native ones).
    warnings : list of str
        For example finite differences that straddle a ReLU kink.
    ok : bool
        Every row passed (also ``bool(report)``).
    failures : list of str
        The names of the rows that failed.
    """

    rows: list[GradcheckRow]
    loss: float
    eps: float
    rtol: float
    atol: float
    supplied: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[str]:
        return [r.name for r in self.rows if not r.ok]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        source = "supplied" if self.supplied else "native"
        head = ["parameter", source, "finite diff", "abs error", "rel error", "verdict"]
        body = [
            [r.name, f"{r.value:.10g}", f"{r.finite_difference:.10g}", f"{r.abs_error:.3g}",
             f"{r.rel_error:.3g}", "ok" if r.ok else "FAIL"]
            for r in self.rows
        ]  # fmt: skip
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [head, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        verdict = "all ok" if self.ok else f"{len(self.failures)} of {len(self.rows)} FAIL"
        lines.append(
            f"{verdict} (central differences, eps={self.eps:g}, rtol={self.rtol:g}, "
            f"atol={self.atol:.3g})"
        )
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _central(loss: Callable[[list[np.ndarray]], float], params: list[np.ndarray], eps: float):
    """Yields (i, index, fd) for every entry of every array in params (float64 copies)."""
    work = [np.array(p, dtype=np.float64) for p in params]
    for i, p in enumerate(work):
        for idx in np.ndindex(p.shape):
            saved = p[idx]
            h = eps * max(1.0, abs(saved))
            p[idx] = saved + h
            up = loss(work)
            p[idx] = saved - h
            down = loss(work)
            p[idx] = saved
            yield i, idx, (up - down) / (2 * h)


def _setting(name: str, value: Any, positive: bool) -> float:
    """``eps``, ``rtol`` or ``atol`` as a float, after checking it: a finite real number (not a
    bool), > 0 (``positive``) or >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"gradcheck: {name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"gradcheck: {name}: expected a finite number {bound}, got {value!r}")
    return v


def _index_name(name: str, idx: tuple[int, ...]) -> str:
    return f"{name}[{', '.join(map(str, idx))}]"


def gradcheck(
    x: Any,
    y: Any,
    *,
    beta: Any = None,
    omega: Any = None,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    all_weights: Sequence[Any] | None = None,
    all_biases: Sequence[Any] | None = None,
    grads: tuple[Any, Any] | None = None,
    relu_grad_at_zero: float = 1.0,
    loss: str = "squared_error",
    reduction: str = "sum",
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> GradcheckReport:
    """Check the gradients of the toy chain or of an MLP against central finite differences.

    Parameters
    ----------
    x, y : array_like
        Inputs and targets: ``x`` and ``y`` of :func:`toy_backward`, or ``net_input`` and ``y`` of
        :func:`gradients`.
    beta, omega, activations : array_like, array_like, sequence of str
        Give these to check the toy chain.
    all_weights, all_biases : list of array_like
        Give these to check an MLP.
    grads : tuple, optional
        The gradients to check: ``(dl_dbeta, dl_domega)`` for the chain,
        ``(all_dl_dweights, all_dl_dbiases)`` for an MLP, for example from a hand-written backward
        pass. Default: the native gradients.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at 0 used by the native gradients.
    loss, reduction : str, default "squared_error", "sum"
        An MLP's loss, as in :func:`gradients` (``"cross_entropy"`` takes int class labels of
        shape (N,) or one-hot columns as ``y``). The toy chain has only the notebook's loss.
    eps, rtol, atol : float, optional
        Step (relative to ``max(1, |p|)``), relative and absolute tolerance; ``atol`` is absolute
        (not scaled by the loss) when given. Defaults by dtype: see the module's table. Finite
        real numbers: ``eps > 0``, ``rtol >= 0``, ``atol >= 0``.

    Returns
    -------
    GradcheckReport
        ``report.ok`` is a bool, ``report.failures`` the names of failing entries (such as
        ``"beta[1]"`` or ``"all_weights[2][3, 1]"``), ``report.rows`` one row per entry with the
        value, finite difference, absolute and relative error and verdict; ``str(report)`` is a
        table.

    Raises
    ------
    TypeError
        Neither or both of (beta, omega) and (all_weights, all_biases) given; ``eps``, ``rtol``
        or ``atol`` not a real number (a bool, a str, an array).
    ValueError
        ``eps``, ``rtol`` or ``atol`` out of range (see above), ``grads`` whose shapes differ
        from the parameters', and the errors of the checked function.
    """
    # Checked first: before the gradients cost any time.
    eps = None if eps is None else _setting("eps", eps, positive=True)
    rtol = None if rtol is None else _setting("rtol", rtol, positive=False)
    atol = None if atol is None else _setting("atol", atol, positive=False)
    toy = beta is not None or omega is not None
    mlp = all_weights is not None or all_biases is not None
    if toy == mlp:
        raise TypeError("gradcheck: give either beta and omega (the toy chain) or all_weights "
                        "and all_biases (an MLP)")
    _api.check_loss(loss, reduction)
    if toy:
        if (loss, reduction) != ("squared_error", "sum"):
            raise ValueError("loss, reduction: the toy chain's loss is (f - y)^2 summed, got "
                             f"loss={loss!r}, reduction={reduction!r}")
        named = [("x", x), ("y", y), ("beta", beta), ("omega", omega)]
        dtype = common_dtype(named)
        params = [as_array(beta, dtype, "beta"), as_array(omega, dtype, "omega")]
        names = ["beta", "omega"]
        options = {"activations": activations, "relu_grad_at_zero": relu_grad_at_zero}

        def objective(p: list[np.ndarray]) -> float:
            return float(_api.toy_backward(x, y, p[0], p[1], **options).loss)

        r = _api.toy_backward(x, y, params[0], params[1], **options)
        value, native = float(r.loss), [r.dl_dbeta, r.dl_domega]
        relu_inputs = [r.f[k] for k, a in enumerate(activations) if a == "relu"]
    else:
        # (read by iteration: `x or []` would ask a lying __len__)
        W = [] if all_weights is None else list(all_weights)
        b = [] if all_biases is None else list(all_biases)
        from .reference import is_labels

        labels = loss == "cross_entropy" and is_labels(y)  # (int labels: no part in the dtype)
        dtype = common_dtype([
            ("net_input", x), *([] if labels else [("y", y)]),
            *named_items("all_weights", W), *named_items("all_biases", b),
        ])
        options = {"relu_grad_at_zero": relu_grad_at_zero, "loss": loss, "reduction": reduction}
        params = as_arrays(W, dtype, "all_weights") + as_arrays(b, dtype, "all_biases")
        K1 = len(W)
        names = [f"all_weights[{k}]" for k in range(K1)] + [f"all_biases[{k}]" for k in range(K1)]

        def objective(p: list[np.ndarray]) -> float:
            return float(_api.gradients(x, y, p[:K1], p[K1:], **options)[0])

        lv, dW, db = _api.gradients(x, y, params[:K1], params[K1:], **options)
        value, native = float(lv), [*dW, *db]
        _, all_f, _ = _api.forward(x, params[:K1], params[K1:])
        relu_inputs = all_f[:-1]

    supplied = grads is not None
    if grads is not None:
        if len(grads) != 2:
            raise ValueError(f"grads: expected a pair of gradients, got {len(grads)} items")
        flat = [grads[0], grads[1]] if toy else [*grads[0], *grads[1]]
        if len(flat) != len(params):
            raise ValueError(f"grads: expected {len(params)} arrays, got {len(flat)}")
        checked = []
        for name, g, p in zip(names, flat, params):
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"grads: the gradient of {name} must have shape {p.shape}, "
                                 f"got {g.shape}")
            checked.append(g)
    else:
        checked = native

    d_eps, d_rtol, d_atol = TOLERANCES.get(np.dtype(dtype), TOLERANCES[np.dtype(np.float64)])
    eps = d_eps if eps is None else eps
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol * max(1.0, abs(value)) if atol is None else atol

    rows = []
    for i, idx, fd in _central(objective, params, eps):
        v = float(checked[i][idx])
        err = abs(v - fd)
        rel = err / abs(fd) if fd else (0.0 if err == 0 else float("inf"))
        ok = bool(err <= atol + rtol * abs(fd))
        rows.append(GradcheckRow(_index_name(names[i], idx), v, fd, err, rel, ok))

    warnings = []
    scale = max([1.0] + [float(np.abs(p).max()) for p in params if p.size])
    near = sum(int(np.sum(np.abs(f) < 10 * eps * scale)) for f in relu_inputs)
    if near:
        warnings.append(f"{near} ReLU pre-activation(s) lie within a step of 0: finite "
                        "differences there straddle the kink and are not reliable")
    return GradcheckReport(rows, value, eps, rtol, atol, supplied, warnings)
