"""The toy chain of notebook 7.1: notebook numbers, native against reference, finite differences."""

from __future__ import annotations

import math

import backprop_core as bc
import numpy as np
import pytest
from _helpers import RTOL, assert_close, central_difference
from backprop_core import reference as ref
from backprop_core.examples import toy_example

IMPLS = [pytest.param(bc, id="native"), pytest.param(ref, id="reference")]
ALL = ("identity", "sin", "cos", "exp", "tanh", "sigmoid", "relu")

# Printed by the notebook's check cells (3 decimals).
NOTEBOOK_F = [1.230, 1.623, 7.137, 2.372]
NOTEBOOK_H = [0.942, 5.068, 0.657]
NOTEBOOK_DL_DF = [2.281, -17.060, -1.683, 0.745]
NOTEBOOK_DL_DH = [6.824, -3.366, 2.234]
NOTEBOOK_DL_DBETA = [2.281, -17.060, -1.683, 0.745]
NOTEBOOK_DL_DOMEGA = [5.246, -16.079, -8.530, 0.489]
NOTEBOOK_LOSS = 0.139

# The same quantities at full precision, from the reference (float64).
FULL_LOSS = 0.13858056641470326
FULL_DL_DOMEGA = [5.24607143, -16.07929866, -8.53023326, 0.48946876]


@pytest.mark.parametrize("impl", IMPLS)
def test_notebook_numbers(impl):
    e = toy_example()
    r = impl.toy_backward(e.x, e.y, e.beta, e.omega, activations=e.activations)
    fw = impl.toy_forward(e.x, e.beta, e.omega, activations=e.activations)
    for name, got, printed in [
        ("f", r.f, NOTEBOOK_F),
        ("h", r.h, NOTEBOOK_H),
        ("forward f", fw.f, NOTEBOOK_F),
        ("forward h", fw.h, NOTEBOOK_H),
        ("dl_df", r.dl_df, NOTEBOOK_DL_DF),
        ("dl_dh", r.dl_dh, NOTEBOOK_DL_DH),
        ("dl_dbeta", r.dl_dbeta, NOTEBOOK_DL_DBETA),
        ("dl_domega", r.dl_domega, NOTEBOOK_DL_DOMEGA),
    ]:
        np.testing.assert_array_equal(np.round(got, 3), printed, err_msg=name)
    assert round(float(r.loss), 3) == NOTEBOOK_LOSS
    assert r.loss == pytest.approx(FULL_LOSS, rel=1e-14)
    np.testing.assert_allclose(r.dl_domega, FULL_DL_DOMEGA, rtol=1e-8)


def _notebook_fn(x, y, beta0, beta1, beta2, beta3, omega0, omega1, omega2, omega3):
    return (beta3 + omega3 * np.cos(beta2 + omega2 * np.exp(beta1 + omega1 * np.sin(beta0 + omega0 * x))) - y) ** 2


@pytest.mark.parametrize("impl", IMPLS)
def test_notebook_dl_domega0_hand_formula_and_finite_difference(impl):
    e = toy_example()
    x, y = e.x, e.y
    beta0, beta1, beta2, beta3 = e.beta
    omega0, omega1, omega2, omega3 = e.omega
    # The notebook's hand-derived formula, verbatim.
    dldomega0_func = -2 *(beta3 +omega3 * np.cos(beta2 + omega2 * np.exp(beta1+omega1 * np.sin(beta0+omega0 * x)))-y) * \
              omega1 * omega2 * omega3 * x * np.cos(beta0 + omega0 * x) * np.exp(beta1 +omega1 * np.sin(beta0 + omega0 * x)) *\
              np.sin(beta2 + omega2 * np.exp(beta1+ omega1* np.sin(beta0+omega0 * x)))  # fmt: skip
    # Its one-sided finite difference with the notebook's step, and a central one.
    args = (x, y, beta0, beta1, beta2, beta3)
    dldomega0_fd = (
        _notebook_fn(*args, omega0 + 0.00001, omega1, omega2, omega3)
        - _notebook_fn(*args, omega0, omega1, omega2, omega3)
    ) / 0.00001
    h = 1e-6
    central = (
        _notebook_fn(*args, omega0 + h, omega1, omega2, omega3)
        - _notebook_fn(*args, omega0 - h, omega1, omega2, omega3)
    ) / (2 * h)
    got = impl.toy_backward(e.x, e.y, e.beta, e.omega).dl_domega[0]
    assert round(got, 3) == round(dldomega0_func, 3) == round(dldomega0_fd, 3) == 5.246
    assert got == pytest.approx(dldomega0_func, rel=1e-13)
    assert got == pytest.approx(central, rel=1e-8)


def random_chain(rng, L, N, dtype, activations=None):
    acts = tuple(rng.choice(ALL, size=L)) if activations is None else activations
    # Small slopes keep exp from overflowing and the chain well conditioned.
    beta = rng.uniform(-1, 1, L + 1).astype(dtype)
    omega = rng.uniform(-1.2, 1.2, L + 1).astype(dtype)
    x = rng.uniform(-2, 2, N).astype(dtype) if N else dtype(rng.uniform(-2, 2))
    y = rng.uniform(-2, 2, N).astype(dtype) if N else dtype(rng.uniform(-2, 2))
    return x, y, beta, omega, acts


def _scales(r, x, omega, acts):
    """The magnitude each output's rounding error is relative to, for assert_close: for a per-sample
    stage row the row's largest value (norm-wise relative error), for a sum over samples the sum
    of the |terms| added. f_L carries an error relative to |f_L|, not to f_L - y: where f_L is
    close to y the difference cancels, so dl/df_L = 2 (f_L - y) may be off by 2 ulp(f_L), and every
    derivative below inherits that absolute error through the chain rule. The magnitudes m_k of
    that error are carried back as the backward pass carries dl/df_k."""
    inputs = np.abs(np.concatenate([np.asarray(x, np.float64)[None], r.h.astype(np.float64)]))
    g = np.abs(r.dl_df.astype(np.float64))
    f = r.f.astype(np.float64)
    h = r.h.astype(np.float64)
    f_L = np.abs(f[-1])
    L = len(acts)
    m = [None] * (L + 1)  # what dl/df_k's error is relative to
    m[L] = g[-1] + 2 * f_L
    for k in range(L, 0, -1):
        with np.errstate(all="ignore"):
            da = np.abs(ref.ACTIVATIONS[acts[k - 1]][1](f[k - 1], h[k - 1], 1.0))
        m[k - 1] = np.nan_to_num(da * abs(float(omega[k])) * m[k], posinf=np.inf)
    m = np.array(m)
    axis = g.ndim - 1
    scales = {
        "loss": np.sum(g[-1] ** 2) / 4 + np.sum(g[-1] * f_L),
        "dl_dbeta": m.sum(axis=axis) if axis else m,
        "dl_domega": (m * inputs).sum(axis=axis) if axis else m * inputs,
    }
    for field in ("f", "h", "dl_df", "dl_dh"):
        a = np.abs(getattr(r, field).astype(np.float64))
        if field == "dl_df":
            a = np.maximum(a, m)
        if field == "dl_dh":
            a = np.maximum(a, np.abs(omega[1:].astype(np.float64)).reshape((-1,) + (1,) * axis) * m[1:])
        scales[field] = a.max(axis=1, keepdims=True) if a.ndim == 2 and a.size else a
    return scales


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [0, 1, 7, 1000, 2**15 + 3])  # the last: two parts on the pool
@pytest.mark.parametrize("L", [0, 1, 3, 6])
def test_native_equals_reference(dtype, N, L):
    rng = np.random.default_rng(1000 * L + N)
    for _ in range(10):
        x, y, beta, omega, acts = random_chain(rng, L, N, dtype)
        r = ref.toy_backward(x, y, beta, omega, activations=acts)
        n = bc.toy_backward(x, y, beta, omega, activations=acts)
        rtol = RTOL[np.dtype(dtype)]
        s = _scales(r, x, omega, acts)
        for field in ("f", "h", "dl_df", "dl_dh", "dl_dbeta", "dl_domega", "loss"):
            assert_close(getattr(n, field), getattr(r, field), f"{acts} {field}", rtol, s[field])
        fw = bc.toy_forward(x, beta, omega, activations=acts)
        np.testing.assert_array_equal(fw.f, n.f)
        np.testing.assert_array_equal(fw.h, n.h)


@pytest.mark.parametrize("activation", ALL)
def test_every_activation_against_reference(activation):
    rng = np.random.default_rng(7)
    x, y, beta, omega, _ = random_chain(rng, 2, 50, np.float64)
    acts = (activation, activation)
    r, n = ref.toy_backward(x, y, beta, omega, activations=acts), bc.toy_backward(x, y, beta, omega, activations=acts)
    s = _scales(r, x, omega, acts)
    for field in ("f", "h", "dl_df", "dl_dh", "dl_dbeta", "dl_domega", "loss"):
        assert_close(getattr(n, field), getattr(r, field), field, 1e-12, s[field])


def _away_from_kinks(x, beta, omega, acts):
    """True when no ReLU sees a pre-activation within 1e-3 of its kink."""
    f = ref.toy_forward(x, beta, omega, activations=acts).f
    return all(a != "relu" or np.all(np.abs(f[k]) > 1e-3) for k, a in enumerate(acts))


@pytest.mark.parametrize("activation", ALL)
@pytest.mark.parametrize("batched", [False, True])
def test_finite_differences(activation, batched):
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, y, beta, omega, _ = random_chain(rng, 3, 5 if batched else 0, np.float64)
        acts = (activation, rng.choice(ALL), activation)
        if not _away_from_kinks(x, beta, omega, acts):
            continue
        r = bc.toy_backward(x, y, beta, omega, activations=acts)

        def loss_beta(b):
            return float(bc.toy_backward(x, y, b, omega, activations=acts).loss)

        def loss_omega(w):
            return float(bc.toy_backward(x, y, beta, w, activations=acts).loss)

        step = 1e-6
        scale = 1 + np.abs(r.loss)
        np.testing.assert_allclose(r.dl_dbeta, central_difference(loss_beta, beta, step), rtol=1e-6, atol=1e-7 * scale)
        np.testing.assert_allclose(r.dl_domega, central_difference(loss_omega, omega, step), rtol=1e-6, atol=1e-7 * scale)


def test_intermediate_derivatives_by_finite_differences():
    """dl/df_k: perturb beta_k, which moves f_k alone; dl/dh_k = omega_k dl/df_k is checked by
    perturbing omega_k at h_k = 1 through a unit-identity chain."""
    e = toy_example()
    r = bc.toy_backward(e.x, e.y, e.beta, e.omega)
    step = 1e-6
    for k in range(4):
        up, down = e.beta.copy(), e.beta.copy()
        up[k] += step
        down[k] -= step
        fd = (bc.toy_backward(e.x, e.y, up, e.omega).loss - bc.toy_backward(e.x, e.y, down, e.omega).loss) / (2 * step)
        assert r.dl_df[k] == pytest.approx(fd, rel=1e-7)
    np.testing.assert_allclose(r.dl_dh, e.omega[1:] * r.dl_df[1:], rtol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
def test_relu_at_exactly_zero(impl):
    # f_0 = 0 exactly, so the ReLU sees its kink.
    beta, omega = np.array([0.0, 0.5]), np.array([1.0, 2.0])
    r1 = impl.toy_backward(0.0, 1.0, beta, omega, activations=("relu",))
    r0 = impl.toy_backward(0.0, 1.0, beta, omega, activations=("relu",), relu_grad_at_zero=0.0)
    # f_1 = 0.5, dl/df_1 = 2 (0.5 - 1) = -1, dl/dh_1 = 2 * -1 = -2
    assert r1.h[0] == 0.0 and r1.dl_dh[0] == -2.0
    assert r1.dl_df[0] == -2.0  # notebook indicator: derivative 1 at 0
    assert r0.dl_df[0] == 0.0  # PyTorch: derivative 0 at 0


@pytest.mark.parametrize("impl", IMPLS)
def test_shapes_scalar_and_batch(impl):
    e = toy_example()
    r = impl.toy_backward(e.x, e.y, e.beta, e.omega)
    assert r.f.shape == (4,) and r.h.shape == (3,) and r.dl_dbeta.shape == (4,)
    xs = np.array([e.x, 0.5, -1.0])
    rb = impl.toy_backward(xs, e.y, e.beta, e.omega)
    assert rb.f.shape == (4, 3) and rb.h.shape == (3, 3)
    assert rb.dl_df.shape == (4, 3) and rb.dl_dh.shape == (3, 3)
    assert rb.dl_dbeta.shape == (4,) and rb.dl_domega.shape == (4,)
    # The batch is the sum of its samples.
    singles = [impl.toy_backward(v, e.y, e.beta, e.omega) for v in xs]
    assert rb.loss == pytest.approx(sum(s.loss for s in singles), rel=1e-14)
    np.testing.assert_allclose(rb.dl_domega, sum(s.dl_domega for s in singles), rtol=1e-13)
    np.testing.assert_array_equal(rb.f[:, 0], r.f)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    e = toy_example()
    r = bc.toy_backward(dtype(e.x), e.y, e.beta.astype(dtype), e.omega.astype(dtype))
    for field in r._fields:
        assert np.asarray(getattr(r, field)).dtype == dtype, field
    assert r.dl_domega[0] == pytest.approx(5.24607143, rel=1e-5)


def test_chain_of_length_zero_is_affine():
    r = bc.toy_backward(np.array([1.0, 2.0]), np.array([0.0, 1.0]), [0.5], [2.0], activations=())
    # f = 0.5 + 2x = [2.5, 4.5]; loss = 2.5^2 + 3.5^2
    assert r.loss == 2.5**2 + 3.5**2
    np.testing.assert_array_equal(r.dl_dbeta, [2 * 2.5 + 2 * 3.5])
    np.testing.assert_array_equal(r.dl_domega, [2 * 2.5 * 1 + 2 * 3.5 * 2])
    assert r.h.shape == (0, 2) and r.dl_dh.shape == (0, 2)


@pytest.mark.parametrize("impl", [pytest.param(bc, id="native")])
@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(beta=[1.0, 2.0, 3.0]), ValueError, ["beta", "(4,)", "(3,)"]),
        (dict(omega=[1.0, 2.0, 3.0, 4.0, 5.0]), ValueError, ["omega", "(4,)", "(5,)"]),
        (dict(activations=("sin", "softplus", "cos")), ValueError, ["activations", "softplus"]),
        (dict(activations="sin"), TypeError, ["activations", "str"]),
        (dict(activations=("sin", 3, "cos")), TypeError, ["activations[1]"]),
        (dict(x=np.ones((2, 2))), ValueError, ["x", "(2, 2)"]),
        (dict(x=np.ones(3), y=np.ones(4)), ValueError, ["y", "(3,)", "(4,)"]),
        (dict(y=np.ones(2)), ValueError, ["y", "(2,)"]),
        (dict(relu_grad_at_zero=2.0), ValueError, ["relu_grad_at_zero"]),
    ],
)
def test_bad_arguments(impl, kwargs, exc, words):
    e = toy_example()
    args = dict(x=e.x, y=e.y, beta=e.beta, omega=e.omega, activations=e.activations)
    args.update(kwargs)
    with pytest.raises(exc) as info:
        impl.toy_backward(**args)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    if "y" not in kwargs and "relu_grad_at_zero" not in kwargs:
        args.pop("y")
        args.pop("relu_grad_at_zero", None)
        with pytest.raises(exc):
            impl.toy_forward(**args)


def test_math_sanity_of_default_chain():
    e = toy_example()
    f3 = e.beta[3] + e.omega[3] * math.cos(e.beta[2] + e.omega[2] * math.exp(e.beta[1] + e.omega[1] * math.sin(e.beta[0] + e.omega[0] * e.x)))
    assert bc.toy_forward(e.x, e.beta, e.omega).f[3] == pytest.approx(f3, rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [0, 1, 255, 257, 5000, 200_003])
def test_toy_gradients_equal_the_sums_of_toy_backward(dtype, N):
    rng = np.random.default_rng(N)
    for activations in [("sin", "exp", "cos"), ALL, ("relu", "tanh", "sigmoid", "identity")]:
        x, y, beta, omega, acts = random_chain(rng, len(activations), N, dtype, activations)
        r = ref.toy_backward(x, y, beta, omega, activations=acts)
        loss, dl_dbeta, dl_domega = bc.toy_gradients(x, y, beta, omega, activations=acts)
        s = _scales(r, x, omega, acts)
        rtol = RTOL[np.dtype(dtype)]
        assert_close(loss, r.loss, "loss", rtol, s["loss"])
        assert_close(dl_dbeta, r.dl_dbeta, "dl_dbeta", rtol, s["dl_dbeta"])
        assert_close(dl_domega, r.dl_domega, "dl_domega", rtol, s["dl_domega"])
        again = bc.toy_gradients(x, y, beta, omega, activations=acts)  # threads add in a fixed order
        np.testing.assert_array_equal(again[2], dl_domega)


@pytest.mark.parametrize("impl", IMPLS)
def test_toy_gradients_notebook_and_scalar(impl):
    e = toy_example()
    loss, dl_dbeta, dl_domega = impl.toy_gradients(e.x, e.y, e.beta, e.omega)
    assert round(float(loss), 3) == NOTEBOOK_LOSS
    np.testing.assert_array_equal(np.round(dl_domega, 3), NOTEBOOK_DL_DOMEGA)
    np.testing.assert_array_equal(np.round(dl_dbeta, 3), NOTEBOOK_DL_DBETA)
    with pytest.raises(ValueError, match="y"):
        bc.toy_gradients(np.ones(3), np.ones(2), e.beta, e.omega)


def test_every_table_of_activations_names_the_cores_table():
    # The core's table (name, rule, derivative: activations.hpp) is the one list of names; the
    # reference's own rules, gradcheck and the pictures cover exactly those names.
    from backprop_core import _core, plot

    names = _core.activation_names()
    assert names == ("identity", "sin", "cos", "exp", "tanh", "sigmoid", "relu")
    assert tuple(ref.ACTIVATIONS) == names
    assert tuple(plot._DERIVATIVE_SYMBOL) == names and tuple(plot._FUNCTION_SYMBOL) == names
    for name in names:  # and the native functions take each
        bc.toy_forward(0.5, np.ones(2), np.ones(2), activations=(name,))
