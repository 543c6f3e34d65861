"""Verification that cannot be fooled: property-based native-against-reference, and a 50-digit
oracle for the toy chain."""

from __future__ import annotations

import backprop_core as bc
import mpmath
import numpy as np
from _helpers import RTOL, assert_all_close, assert_close
from backprop_core import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from test_mlp import _scales as mlp_scales
from test_toy import _scales as toy_scales

ALL = ("identity", "sin", "cos", "exp", "tanh", "sigmoid", "relu")
dtypes = st.sampled_from([np.float32, np.float64])


def _array(draw, shape, dtype, bound):
    n = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(st.floats(-bound, bound, allow_nan=False, width=32), min_size=n, max_size=n))
    return np.array(values, dtype=dtype).reshape(shape)


@st.composite
def toy_cases(draw):
    dtype = draw(dtypes)
    L = draw(st.integers(0, 6))
    acts = tuple(draw(st.lists(st.sampled_from(ALL), min_size=L, max_size=L)))
    N = draw(st.one_of(st.none(), st.integers(0, 12)))
    shape = () if N is None else (N,)
    x = _array(draw, shape, dtype, 2.0)
    y = _array(draw, draw(st.sampled_from([(), shape])), dtype, 2.0)
    beta = _array(draw, (L + 1,), dtype, 1.0)
    omega = _array(draw, (L + 1,), dtype, 1.25)
    return x, y, beta, omega, acts


@given(toy_cases())
def test_toy_native_equals_reference(case):
    x, y, beta, omega, acts = case
    with np.errstate(all="ignore"):
        r = ref.toy_backward(x, y, beta, omega, activations=acts)
    n = bc.toy_backward(x, y, beta, omega, activations=acts)
    rtol = RTOL[r.f.dtype]
    s = toy_scales(r, x, omega, acts)
    for field in r._fields:
        assert_close(getattr(n, field), getattr(r, field), field, rtol, s[field])
    loss, dl_dbeta, dl_domega = bc.toy_gradients(x, y, beta, omega, activations=acts)
    assert_close(loss, r.loss, "toy_gradients loss", rtol, s["loss"])
    assert_close(dl_dbeta, r.dl_dbeta, "toy_gradients dl_dbeta", rtol, s["dl_dbeta"])
    assert_close(dl_domega, r.dl_domega, "toy_gradients dl_domega", rtol, s["dl_domega"])


@st.composite
def mlp_cases(draw):
    dtype = draw(dtypes)
    depth = draw(st.integers(0, 4))
    dims = draw(st.lists(st.integers(0, 8), min_size=depth + 2, max_size=depth + 2))
    N = draw(st.integers(0, 6))
    W = [_array(draw, (dims[k + 1], dims[k]), dtype, 1.0) for k in range(depth + 1)]
    flat = draw(st.booleans())
    b = [_array(draw, (d,) if flat else (d, 1), dtype, 1.0) for d in dims[1:]]
    x = _array(draw, (dims[0], N), dtype, 2.0)
    y_shape = draw(st.sampled_from([(), (dims[-1], N), (dims[-1], 1), (1, N), (N,)]))
    y = _array(draw, y_shape, dtype, 2.0)
    c = draw(st.sampled_from([0.0, 1.0]))
    return x, y, W, b, c


@given(mlp_cases())
def test_mlp_native_equals_reference(case):
    x, y, W, b, c = case
    r_loss, r_dW, r_db = ref.gradients(x, y, W, b, relu_grad_at_zero=c)
    loss, dW, db = bc.gradients(x, y, W, b, relu_grad_at_zero=c)
    rtol = RTOL[np.asarray(r_loss).dtype]
    f_s, h_s, loss_s, dW_s, db_s = mlp_scales(x, W, b, y)
    assert_close(loss, r_loss, "loss", rtol, loss_s)
    assert_all_close(dW, r_dW, "dW", rtol, dW_s)
    assert_all_close(db, r_db, "db", rtol, db_s)
    out, f, h = bc.forward(x, W, b)
    _, r_f, _ = ref.forward(x, W, b)
    assert_all_close(f, r_f, "all_f", rtol, f_s)
    dW2, db2 = bc.backward(W, b, f, h, y, relu_grad_at_zero=c)
    for a, e in zip(dW2 + db2, dW + db):
        np.testing.assert_array_equal(a, e)


# ----------------------------------------------------------------------------- 50 digits

mpmath.mp.dps = 50
MP = {
    "identity": (lambda f: f, lambda f, h: mpmath.mpf(1)),
    "sin": (mpmath.sin, lambda f, h: mpmath.cos(f)),
    "cos": (mpmath.cos, lambda f, h: -mpmath.sin(f)),
    "exp": (mpmath.exp, lambda f, h: h),
    "tanh": (mpmath.tanh, lambda f, h: 1 - h * h),
    "sigmoid": (lambda f: 1 / (1 + mpmath.exp(-f)), lambda f, h: h * (1 - h)),
    "relu": (lambda f: max(f, 0), lambda f, h: mpmath.mpf(1 if f >= 0 else 0)),
}


def mp_toy(x, y, beta, omega, acts):
    """The chain's derivatives at 50 digits, from the float64 inputs taken exactly."""
    x, y = mpmath.mpf(float(x)), mpmath.mpf(float(y))
    beta = [mpmath.mpf(float(v)) for v in beta]
    omega = [mpmath.mpf(float(v)) for v in omega]
    L = len(acts)
    f, h = [beta[0] + omega[0] * x], []
    for k in range(1, L + 1):
        h.append(MP[acts[k - 1]][0](f[-1]))
        f.append(beta[k] + omega[k] * h[-1])
    g = [None] * (L + 1)
    g[L] = 2 * (f[L] - y)
    for k in range(L, 0, -1):
        g[k - 1] = MP[acts[k - 1]][1](f[k - 1], h[k - 1]) * omega[k] * g[k]
    inputs = [x, *h]
    return f, h, g, [g[k] * inputs[k] for k in range(L + 1)]


def _well_conditioned(f, h, beta, omega, acts, y):
    """No cancellation to speak of: each f_k is not much smaller than its terms, f_L - y not much
    smaller than f_L, and each activation's derivative not near a zero."""
    L = len(acts)
    if abs(f[L] - y) < 0.1 * (abs(f[L]) + abs(y)):
        return False
    for k in range(1, L + 1):
        if abs(f[k]) < 0.1 * (abs(beta[k]) + abs(omega[k] * h[k - 1])):
            return False
        if abs(MP[acts[k - 1]][1](f[k - 1], h[k - 1])) < 0.1 or abs(f[k - 1]) < 1e-3:
            return False
    return abs(f[0]) >= 0.1 * (abs(beta[0]) + abs(omega[0] * 1))


def test_toy_derivatives_agree_with_50_digit_oracle():
    rng = np.random.default_rng(2026)
    checked = 0
    for _ in range(3000):
        L = int(rng.integers(0, 5))
        acts = tuple(rng.choice(ALL, size=L))
        x, y = rng.uniform(-2, 2), rng.uniform(-3, 3)
        beta, omega = rng.uniform(-1, 1, L + 1), rng.uniform(-1.2, 1.2, L + 1)
        f, h, g, dw = mp_toy(x, y, beta, omega, acts)
        if not _well_conditioned(f, h, beta, omega, acts, y) or abs(omega[0] * x) < 1e-3:
            continue
        checked += 1
        n = bc.toy_backward(x, y, beta, omega, activations=acts)
        for name, got, exact in [("dl_dbeta", n.dl_dbeta, g), ("dl_domega", n.dl_domega, dw)]:
            for k in range(L + 1):
                rel = abs((mpmath.mpf(float(got[k])) - exact[k]) / exact[k])
                assert rel <= 1e-13, (name, k, acts, float(rel))
    assert checked >= 300
