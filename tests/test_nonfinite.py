"""NaN and Inf, native against the reference, for every function and both dtypes.

NaN or an infinity in an input, a target or any parameter, and exp overflowing, land on exactly
the entries where the reference puts them, with the same signs; the finite entries agree as
everywhere else. What the README says differs: a sum of finite terms that overflows (inside a
matrix product, a sum over samples) depends on the order of its additions, which is not numpy's;
the last test shows one, and that it goes away with one term per sum."""

from __future__ import annotations

from typing import Any

import backprop_core as bc
import numpy as np
import pytest
from _helpers import RTOL, assert_close
from backprop_core import reference as ref

SPECIALS = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}
DTYPES = [np.float64, np.float32]
# exp(BIG) overflows and exp(-BIG) is 0 in the dtype, far from either threshold.
BIG = {np.dtype(np.float64): 800.0, np.dtype(np.float32): 100.0}


@pytest.fixture(autouse=True)
def _quiet_numpy():
    """The reference computes inf - inf and the like on purpose here: numpy's warnings about it
    are expected (the native core gives none)."""
    with np.errstate(all="ignore"):
        yield


def _finite_abs(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def assert_same_nonfinite(actual: Any, expected: Any, name: str) -> None:
    """NaN, +inf and -inf at exactly the same entries."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (name, actual.shape, expected.shape)
    for kind, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        a, e = test(actual), test(expected)
        assert np.array_equal(a, e), (
            f"{name}: {kind} at {np.argwhere(a & ~e)[:5].tolist()} natively only, "
            f"at {np.argwhere(e & ~a)[:5].tolist()} in the reference only"
        )


# ----------------------------------------------------------------------------- the toy chain

CHAINS = [("sin", "exp", "cos"), ("tanh", "relu"), ("sigmoid", "identity", "relu"),
          ("exp", "sigmoid", "tanh"), ("relu", "exp")]  # fmt: skip


def _toy_scales(r: Any, x: Any) -> dict[str, Any]:
    """As tests/test_toy.py's scales, over the finite entries only."""
    inputs = _finite_abs(np.concatenate([np.asarray(x, np.float64).reshape(1, -1), np.asarray(r.h, np.float64).reshape(len(r.h), -1)]))
    g = _finite_abs(r.dl_df).reshape(len(r.dl_df), -1)
    scales = {"loss": np.sum(g[-1] ** 2) / 4, "dl_dbeta": g.sum(axis=1), "dl_domega": (g * inputs).sum(axis=1)}
    for field in ("f", "h", "dl_df", "dl_dh"):
        a = _finite_abs(getattr(r, field))
        scales[field] = a.max(axis=1, keepdims=True) if a.ndim == 2 and a.size else a
    return scales


def _toy_cases(dtype: Any, N: int | None, L: int) -> list[tuple[str, Any, Any, Any, Any]]:
    rng = np.random.default_rng(17 * L + (N or 0))
    beta = rng.uniform(-1, 1, L + 1).astype(dtype)
    omega = rng.uniform(-1.2, 1.2, L + 1).astype(dtype)
    x = dtype(0.4) if N is None else rng.uniform(-2, 2, N).astype(dtype)
    y = dtype(-0.3) if N is None else rng.uniform(-2, 2, N).astype(dtype)
    cases = []
    for label, s in SPECIALS.items():
        special = dtype(s)
        if N is None:
            cases.append((f"x={label}", special, y, beta, omega))
        else:
            xs = x.copy()
            xs[::5] = special
            cases.append((f"x[::5]={label}", xs, y, beta, omega))
            ys = y.copy()
            ys[2::7] = special
            cases.append((f"y[2::7]={label}", x, ys, beta, omega))
        cases.append((f"y={label}", x, special, beta, omega))
        for k in range(L + 1):
            b2, o2 = beta.copy(), omega.copy()
            b2[k], o2[k] = special, special
            cases.append((f"beta[{k}]={label}", x, y, b2, omega))
            cases.append((f"omega[{k}]={label}", x, y, beta, o2))
    for sign in (1, -1):  # f_0 = +-BIG: every exp of it overflows, or is 0
        b2 = beta.copy()
        b2[0] = dtype(sign * BIG[np.dtype(dtype)])
        cases.append((f"beta[0]={sign * BIG[np.dtype(dtype)]:g}", x, y, b2, omega))
    return cases


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [None, 9, 40_000], ids=["scalar", "N=9", "N=40000"])
@pytest.mark.parametrize("acts", CHAINS, ids="-".join)
def test_toy_chain_nonfinite_like_the_reference(acts, N, dtype):
    rtol = RTOL[np.dtype(dtype)]
    for c in (1.0, 0.0):
        for label, x, y, beta, omega in _toy_cases(dtype, N, len(acts)):
            name = f"{label} c={c}"
            r = ref.toy_backward(x, y, beta, omega, activations=acts, relu_grad_at_zero=c)
            n = bc.toy_backward(x, y, beta, omega, activations=acts, relu_grad_at_zero=c)
            g = bc.toy_gradients(x, y, beta, omega, activations=acts, relu_grad_at_zero=c)
            fw = bc.toy_forward(x, beta, omega, activations=acts)
            scales = _toy_scales(r, x)
            for field in r._fields:
                assert_same_nonfinite(getattr(n, field), getattr(r, field), f"{name} toy_backward {field}")
                assert_close(getattr(n, field), getattr(r, field), f"{name} {field}", rtol, scales[field])
            for field, value in zip(("loss", "dl_dbeta", "dl_domega"), g):
                assert_same_nonfinite(value, getattr(r, field), f"{name} toy_gradients {field}")
                assert_close(value, getattr(r, field), f"{name} toy_gradients {field}", rtol, scales[field])
            for field in ("f", "h"):
                np.testing.assert_array_equal(getattr(fw, field), getattr(n, field), err_msg=name)


def test_the_toy_cases_reach_every_kind_of_nonfinite_result():
    """The cases above are not vacuous: between them the reference gives NaN, +inf and -inf in
    every output, finite entries beside them, and exp's overflow to inf and underflow to 0."""
    seen: dict[str, set[str]] = {}
    for acts in CHAINS:
        for _label, x, y, beta, omega in _toy_cases(np.float64, 9, len(acts)):
            r = ref.toy_backward(x, y, beta, omega, activations=acts)
            for field in r._fields:
                v = np.asarray(getattr(r, field))
                kinds = seen.setdefault(field, set())
                kinds |= {k for k, t in (("nan", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf), ("finite", np.isfinite)) if t(v).any()}
    assert all(kinds == {"nan", "+inf", "-inf", "finite"} for f, kinds in seen.items() if f != "loss"), seen
    assert seen["loss"] >= {"nan", "+inf", "finite"}  # a sum of squares: never -inf
    x, beta, omega = 0.0, np.array([800.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0])
    assert ref.toy_forward(x, beta, omega, activations=("exp", "cos")).h.tolist()[0] == np.inf
    assert np.isnan(ref.toy_forward(x, beta, omega, activations=("exp", "cos")).h[1])  # cos(inf)
    assert ref.toy_forward(x, -beta, omega, activations=("exp", "cos")).h.tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------------- the MLP


def _mlp_scales(x: Any, W: list[Any], b: list[Any], y: Any) -> tuple[Any, ...]:
    """As tests/test_mlp.py's scales (the reference on absolute values), finite entries only."""
    absw, absb = [_finite_abs(w) for w in W], [_finite_abs(c) for c in b]
    _, f, h = ref.forward(_finite_abs(x), absw, absb)
    K = len(W) - 1
    g: list[Any] = [None] * (K + 1)
    g[K] = f[K] + np.broadcast_to(_finite_abs(y), f[K].shape)
    dW, db = [None] * (K + 1), [None] * (K + 1)
    for k in range(K, -1, -1):
        db[k] = g[k].sum(axis=1, keepdims=True).reshape(np.shape(b[k]))
        dW[k] = g[k] @ h[k].T
        if k:
            g[k - 1] = absw[k].T @ g[k]
    return f, h, 0.5 * np.sum(g[K] ** 2), dW, db


def _net(dims: tuple[int, ...], N: int, dtype: Any, seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    W = [(rng.normal(size=(o, i)) / np.sqrt(i)).astype(dtype) for i, o in zip(dims, dims[1:])]
    b = [(rng.normal(size=(o, 1)) * 0.1).astype(dtype) for o in dims[1:]]
    x = rng.normal(size=(dims[0], N)).astype(dtype)
    y = rng.normal(size=(dims[-1], N)).astype(dtype)
    return x, y, W, b


def _mlp_cases(
    dtype: Any, dims: tuple[int, ...], N: int, every: bool = True
) -> list[tuple[str, Any, Any, Any, Any]]:
    """NaN, inf and -inf in turn at each place; with ``every`` False, one of them per place (the
    large network, whose reference runs are slow)."""
    x, y, W, b = _net(dims, N, dtype, seed=len(dims) + N)
    places = []  # (label, function of the special value giving (x, y, W, b))

    def put(a: Any, index: Any, s: Any) -> Any:
        a = a.copy()
        a[index] = s
        return a

    places.append(("x[0, ::3]", lambda s: (put(x, (0, slice(None, None, 3)), s), y, W, b)))
    places.append(("x[:, -1]", lambda s: (put(x, (slice(None), -1), s), y, W, b)))  # a sample
    places.append(("y[0, ::2]", lambda s: (x, put(y, (0, slice(None, None, 2)), s), W, b)))
    places.append(("y", lambda s: (x, s, W, b)))
    for k in range(len(W)):
        places.append((f"all_weights[{k}][-1, 0]", lambda s, k=k: (x, y, [put(w, (-1, 0), s) if i == k else w for i, w in enumerate(W)], b)))
        places.append((f"all_biases[{k}][0]", lambda s, k=k: (x, y, W, [put(c, (0, 0), s) if i == k else c for i, c in enumerate(b)])))
    cases = []
    for i, (place, make) in enumerate(places):
        labels = list(SPECIALS) if every else [list(SPECIALS)[i % 3]]
        cases += [(f"{place}={label}", *make(dtype(SPECIALS[label]))) for label in labels]
    return cases


def _compare_mlp(
    name: str, x: Any, y: Any, W: list[Any], b: list[Any], dtype: Any, cs: tuple[float, ...] = (1.0, 0.0)
) -> None:
    rtol = RTOL[np.dtype(dtype)]
    f_s, h_s, loss_s, dW_s, db_s = _mlp_scales(x, W, b, y)
    r_out, r_f, r_h = ref.forward(x, W, b)
    out, f, h = bc.forward(x, W, b)
    model = bc.MLP(W, b)
    m_out, m_f, m_h = model.forward(x)
    results = [("forward", [out, *f, *h[1:]], [r_out, *r_f, *r_h[1:]], [f_s[-1], *f_s, *h_s[1:]]),
               ("MLP.forward", [m_out, *m_f, *m_h[1:]], [r_out, *r_f, *r_h[1:]], [f_s[-1], *f_s, *h_s[1:]])]  # fmt: skip
    for c in cs:
        r_loss, r_dW, r_db = ref.gradients(x, y, W, b, relu_grad_at_zero=c)
        dW, db = bc.backward(W, b, r_f, r_h, y, relu_grad_at_zero=c)
        results += [(f"backward c={c} dW", dW, r_dW, dW_s), (f"backward c={c} db", db, r_db, db_s)]
        for fn, (loss, dW, db) in (
            ("gradients", bc.gradients(x, y, W, b, relu_grad_at_zero=c)),
            ("MLP.gradients", model.gradients(x, y, relu_grad_at_zero=c)),
        ):
            results += [(f"{fn} c={c} loss", [loss], [r_loss], [loss_s]),
                        (f"{fn} c={c} dW", dW, r_dW, dW_s), (f"{fn} c={c} db", db, r_db, db_s)]  # fmt: skip
    for what, got, want, scales in results:
        assert len(got) == len(want)
        for k, (g, w, s) in enumerate(zip(got, want, scales)):
            assert_same_nonfinite(g, w, f"{name}: {what}[{k}]")
            assert_close(g, w, f"{name}: {what}[{k}]", rtol, s)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("dims", "N", "every"),
    # The last: products through BLAS, and gradients() in blocks of samples (mlp.hpp's BlockPlan:
    # 22 blocks of 96 float64 or 11 of 192 float32 samples, about 512 KiB of scratch each); one
    # special value per place and the default ReLU derivative at 0 only, to keep it short.
    [((1, 1), 1, True), ((2, 6, 6, 1), 1, True), ((3, 7, 5, 2), 33, True),
     ((16, 128, 64, 4), 2100, False)],
    ids=["K=0", "notebook shape", "small", "tiled and blocked"],
)  # fmt: skip
def test_mlp_nonfinite_like_the_reference(dims, N, every, dtype):
    for label, x, y, W, b in _mlp_cases(dtype, dims, N, every):
        _compare_mlp(label, x, y, W, b, dtype, (1.0, 0.0) if every else (1.0,))


def test_the_mlp_cases_reach_every_kind_of_nonfinite_result():
    seen: set[str] = set()
    for _label, x, y, W, b in _mlp_cases(np.float64, (3, 7, 5, 2), 33):
        loss, dW, db = ref.gradients(x, y, W, b)
        for v in [loss, *dW, *db, *ref.forward(x, W, b)[1]]:
            v = np.asarray(v)
            seen |= {k for k, t in (("nan", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf), ("finite", np.isfinite)) if t(v).any()}
    assert seen == {"nan", "+inf", "-inf", "finite"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflow_with_one_term_per_sum_is_exactly_the_references(dtype):
    """Width 1 and one sample: no sum has two terms, so no order of additions can differ, and
    an overflowing network gives the reference's infinities and NaNs entry for entry."""
    big = dtype(1e200 if dtype == np.float64 else 1e30)
    for signs in [(1, 1, 1), (1, -1, 1), (-1, 1, -1), (1, 1, -1)]:
        W = [np.array([[s * big]], dtype) for s in signs]
        b = [np.array([[1.0]], dtype) for _ in signs]
        x = np.array([[big]], dtype)
        assert not np.isfinite(ref.forward(x, W, b)[1][0]).all()  # the first layer overflows
        _compare_mlp(f"signs {signs}", x, dtype(0.5), W, b, dtype)


def test_a_sum_that_overflows_depends_on_the_order_of_its_terms():
    """Why the README does not promise the reference's infinities where finite terms overflow a
    sum: the same four terms give inf, 0 or NaN by the order they are added in, and the native
    core does not add in numpy's order (BLAS tiles, vector lanes, blocks of samples). Here the
    sum over samples of dl/db, with dl/df = [1e308, 1e308, -1e308, -1e308]."""
    t = [1e308, 1e308, -1e308, -1e308]
    orders = {
        "in order": ((t[0] + t[1]) + t[2]) + t[3],  # inf, then inf - 1e308 stays inf
        "interleaved pairs": (t[0] + t[2]) + (t[1] + t[3]),  # 0
        "adjacent pairs": (t[0] + t[1]) + (t[2] + t[3]),  # inf + -inf: NaN
    }
    assert orders["in order"] == np.inf and orders["interleaved pairs"] == 0.0
    assert np.isnan(orders["adjacent pairs"])
    W, b = [np.zeros((1, 1))], [np.zeros((1, 1))]
    x, f, y = np.zeros((1, 4)), np.zeros((1, 4)), -np.array([t])
    r_db = ref.backward(W, b, [f], [x], y)[1][0].item()
    assert r_db == orders["in order"]  # numpy adds fewer than 8 terms one after the other
    for native in (bc.backward(W, b, [f], [x], y)[1][0].item(), bc.gradients(x, y, W, b)[2][0].item()):
        assert any(native == v or (np.isnan(native) and np.isnan(v)) for v in orders.values()), native
