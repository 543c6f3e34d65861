"""The boundary: dtype policy, layouts, empty sizes, NaN and Inf, overflow, inputs never written."""

from __future__ import annotations

import functools
import hashlib
import pickle

import backprop_core as bc
import numpy as np
import pytest
from _helpers import assert_all_close, assert_close
from backprop_core import reference as ref
from backprop_core.examples import mlp_example, toy_example


def _toy_args():
    e = toy_example()
    return dict(x=np.array([2.3, -0.7, 1.1]), y=np.array([2.0, 0.5, -1.0]), beta=e.beta, omega=e.omega)


def _mlp_args(N=4):
    rng = np.random.default_rng(11)
    dims = [3, 5, 4, 2]
    W = [rng.normal(size=(dims[k + 1], dims[k])) for k in range(3)]
    b = [rng.normal(size=(d, 1)) for d in dims[1:]]
    return rng.normal(size=(3, N)), rng.normal(size=(2, N)), W, b


# ----------------------------------------------------------------------------- dtype policy


@pytest.mark.parametrize(
    "bad", [np.array([1 + 2j, 0, 0, 0]), np.array([True, False, True, True]), np.array(["a", "b", "c", "d"]),
            np.array([1.0, 2.0, 3.0, 4.0], dtype=object), np.array([1.0, 2, 3, 4], dtype=np.longdouble)],
    ids=["complex", "bool", "str", "object", "longdouble"],
)
def test_unsupported_dtypes_raise_type_error_naming_argument(bad):
    a = _toy_args()
    with pytest.raises(TypeError, match="beta"):
        bc.toy_backward(a["x"], a["y"], bad, a["omega"])
    x, y, W, b = _mlp_args()
    with pytest.raises(TypeError, match=r"all_biases\[0\]"):
        bc.gradients(x, y, W, [np.resize(bad, (5, 1)), *b[1:]])
    with pytest.raises(TypeError, match="net_input"):
        bc.forward(np.resize(bad, (3, 4)), W, b)


def test_mixed_float32_and_float64_promote_to_float64():
    a = _toy_args()
    r64 = bc.toy_backward(**a)
    r = bc.toy_backward(a["x"].astype(np.float32), a["y"], a["beta"], a["omega"])
    assert r.dl_domega.dtype == np.float64
    # x was rounded to float32 first: the answer is that of the float64 call on the rounded x.
    exact = bc.toy_backward(a["x"].astype(np.float32).astype(np.float64), a["y"], a["beta"], a["omega"])
    np.testing.assert_array_equal(r.dl_domega, exact.dl_domega)
    assert not np.array_equal(r.dl_domega, r64.dl_domega)


def test_python_scalars_do_not_promote_float32():
    e = mlp_example()
    W = [w.astype(np.float32) for w in e.all_weights]
    b = [v.astype(np.float32) for v in e.all_biases]
    loss, dW, _ = bc.gradients(e.net_input.astype(np.float32), 30.0, W, b)
    assert np.asarray(loss).dtype == np.float32 and dW[0].dtype == np.float32


def test_integers_follow_numpy_promotion():
    r = bc.toy_backward(np.array([2, 1]), 2, np.array([1, 2, -3, 0]), np.array([0, -1, 2, 3]))
    f = bc.toy_backward(np.array([2.0, 1.0]), 2.0, np.array([1.0, 2, -3, 0]), np.array([0.0, -1, 2, 3]))
    assert r.dl_domega.dtype == np.float64
    np.testing.assert_array_equal(r.dl_domega, f.dl_domega)
    r32 = bc.toy_backward(np.array([2, 1], dtype=np.int8), 2, np.ones(4, np.float32), np.ones(4, np.float32))
    assert r32.dl_domega.dtype == np.float32  # int8 with float32 is float32 in numpy


def test_float16_computes_in_float32():
    r = bc.toy_backward(np.float16(0.5), 1.0, np.ones(4, np.float16), np.ones(4, np.float16))
    assert r.dl_domega.dtype == np.float32


def test_large_float64_is_not_squeezed_into_float32():
    # The forcecast pitfall: 1e40 must not silently become inf in float32.
    r = bc.toy_backward(np.float32(1.0), 0.0, np.array([1e40, 0, 0, 0]), np.ones(4, np.float32), activations=("identity",) * 3)
    assert r.f.dtype == np.float64 and r.f[0] == 1e40 + 1


# ----------------------------------------------------------------------------- layouts


def _views(a):
    """The same values as `a` in other layouts."""
    out = {"fortran": np.asfortranarray(a)}
    ro = a.copy()
    ro.flags.writeable = False
    out["readonly"] = ro
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]) if a.ndim else (2,), a.dtype)
    if a.ndim:
        big[..., ::2] = a
        out["strided"] = big[..., ::2]
        rev = np.ascontiguousarray(a[..., ::-1])
        out["negative"] = rev[..., ::-1]
    if a.ndim == 2:
        out["transposed"] = np.ascontiguousarray(a.T).T
    return out


@pytest.mark.parametrize("layout", ["fortran", "readonly", "strided", "negative", "transposed"])
def test_layouts_give_identical_results(layout):
    x, y, W, b = _mlp_args(N=5)
    expected = bc.gradients(x, y, W, b)
    def v(a):
        return _views(a).get(layout, a)
    got = bc.gradients(v(x), v(y), [v(w) for w in W], [v(c) for c in b])
    np.testing.assert_array_equal(got[0], expected[0])
    for g, e in zip(got[1] + got[2], expected[1] + expected[2]):
        np.testing.assert_array_equal(g, e)
    _, f, h = bc.forward(x, W, b)
    exp_b = bc.backward(W, b, f, h, y)
    got_b = bc.backward([v(w) for w in W], [v(c) for c in b], [v(a) for a in f], [v(a) for a in h], v(y))
    for g, e in zip(got_b[0] + got_b[1], exp_b[0] + exp_b[1]):
        np.testing.assert_array_equal(g, e)
    a = _toy_args()
    exp_t = bc.toy_backward(**a)
    got_t = bc.toy_backward(**{k: v(val) for k, val in a.items()})
    for field in exp_t._fields:
        np.testing.assert_array_equal(getattr(got_t, field), getattr(exp_t, field))
    for g, e in zip(bc.toy_gradients(**{k: v(val) for k, val in a.items()}), bc.toy_gradients(**a)):
        np.testing.assert_array_equal(g, e)


# ----------------------------------------------------------------------------- empty sizes


@pytest.mark.parametrize("impl", [bc, ref], ids=["native", "reference"])
def test_zero_samples(impl):
    e = toy_example()
    r = impl.toy_backward(np.empty(0), np.empty(0), e.beta, e.omega)
    assert r.loss == 0 and r.f.shape == (4, 0) and r.dl_dh.shape == (3, 0)
    np.testing.assert_array_equal(r.dl_dbeta, np.zeros(4))
    x, y, W, b = _mlp_args(N=0)
    loss, dW, db = impl.gradients(x, y, W, b)
    assert loss == 0
    assert all(np.array_equal(g, np.zeros_like(w)) for g, w in zip(dW + db, W + b))
    out, f, h = impl.forward(x, W, b)
    assert out.shape == (2, 0)


@pytest.mark.parametrize("impl", [bc, ref], ids=["native", "reference"])
def test_layer_of_width_zero(impl):
    # A hidden layer of width 0 cuts the input off: the output is the last bias.
    W = [np.ones((0, 3)), np.ones((2, 0))]
    b = [np.ones((0, 1)), np.array([[1.0], [2.0]])]
    x = np.ones((3, 4))
    out, f, h = impl.forward(x, W, b)
    np.testing.assert_array_equal(out, np.repeat([[1.0], [2.0]], 4, axis=1))
    loss, dW, db = impl.gradients(x, 0.0, W, b)
    assert loss == 0.5 * 4 * (1 + 4)
    np.testing.assert_array_equal(db[1], [[4.0], [8.0]])
    assert dW[0].shape == (0, 3) and dW[1].shape == (2, 0)


def test_empty_layer_lists_raise():
    with pytest.raises(ValueError, match="all_weights: expected at least one layer"):
        bc.forward(np.ones((1, 1)), [], [])
    with pytest.raises(ValueError, match="all_weights: expected at least one layer"):
        bc.gradients(np.ones((1, 1)), 0.0, [], [])


# ----------------------------------------------------------------------------- NaN and Inf


def test_nan_and_inf_propagate_like_the_reference():
    e = toy_example()
    x = np.array([2.3, np.nan, np.inf, -np.inf, 400.0])
    n = bc.toy_backward(x, 2.0, e.beta, [0.1, -0.4, 2.0, 3.0], activations=("sin", "exp", "cos"))
    with np.errstate(all="ignore"):
        r = ref.toy_backward(x, 2.0, e.beta, [0.1, -0.4, 2.0, 3.0], activations=("sin", "exp", "cos"))
    for field in ("f", "h", "dl_df", "dl_dh"):
        assert_close(getattr(n, field), getattr(r, field), field, 1e-12)
    assert np.isnan(n.loss) and np.isnan(n.dl_domega).all()
    # exp overflow: inf flows forward, then cos(inf) is NaN, exactly as numpy does.
    n = bc.toy_backward(1.0, 0.0, [800.0, 0, 0, 0], [0.0, 1, 1, 1], activations=("identity", "exp", "cos"))
    with np.errstate(all="ignore"):
        r = ref.toy_backward(1.0, 0.0, [800.0, 0, 0, 0], [0.0, 1, 1, 1], activations=("identity", "exp", "cos"))
    assert n.h[1] == np.inf and np.isnan(n.f[3])
    for field in r._fields:
        assert_close(getattr(n, field), getattr(r, field), field, 1e-12)


def test_mlp_nan_propagates():
    x, y, W, b = _mlp_args()
    x[0, 1] = np.nan
    loss, dW, db = bc.gradients(x, y, W, b)
    with np.errstate(all="ignore"):
        r_loss, r_dW, r_db = ref.gradients(x, y, W, b)
    assert np.isnan(loss) and np.isnan(r_loss)
    assert_all_close(dW, r_dW, "dW", 1e-12)
    assert_all_close(db, r_db, "db", 1e-12)


# ----------------------------------------------------------------------------- overflow


def test_sizes_whose_products_overflow_raise_memory_error():
    # Zero-size arrays whose dimensions multiply past any address space.
    x = np.empty((0, 2**59))
    for rows in (2, 2**5):  # 2^60 outputs (too large), 2^64 (overflows size_t)
        W, b = [np.ones((rows, 0))], [np.ones((rows, 1))]
        with pytest.raises((MemoryError, ValueError)):
            bc.gradients(x, 0.0, W, b)
        with pytest.raises((MemoryError, ValueError)):
            bc.forward(x, W, b)
        with pytest.raises((MemoryError, ValueError)):
            bc.backward(W, b, [np.empty((rows, 2**59))], [x], 0.0)


def test_huge_broadcast_inputs_raise_memory_error():
    x = np.broadcast_to(np.float64(1.0), (2**40,))
    e = toy_example()
    with pytest.raises((MemoryError, ValueError)):
        bc.toy_backward(x, 0.0, e.beta, e.omega)


# ----------------------------------------------------------------------------- inputs untouched


def _arrays(obj) -> list:
    """Every array inside nested tuples and lists."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in _arrays(item)]
    return []


def _digest(obj) -> str:
    return hashlib.sha256(pickle.dumps(obj)).hexdigest()


ACTS = ("sin", "relu", "tanh")


def test_no_public_call_modifies_its_inputs():
    a = _toy_args()
    x, y, W, b = _mlp_args()
    _, f, h = ref.forward(x, W, b)
    calls = [
        (functools.partial(bc.toy_forward, activations=ACTS), (a["x"], a["beta"], a["omega"])),
        (functools.partial(bc.toy_backward, activations=ACTS), (a["x"], a["y"], a["beta"], a["omega"])),
        (functools.partial(bc.toy_gradients, activations=ACTS), (a["x"], a["y"], a["beta"], a["omega"])),
        (bc.forward, (x, W, b)),
        (bc.backward, (W, b, f, h, y)),
        (bc.gradients, (x, y, W, b)),
        (bc.gradients, (x.astype(np.float32), y, W, b)),
        (bc.MLP, (W, b)),
        (bc.MLP(W, b).gradients, (x, y)),
        (bc.MLP(W, b).forward, (x,)),
        (lambda *a: bc.gradcheck(*a, beta=b[2][:, 0], omega=W[2][:, 0], activations=("tanh",)), (x[0], y[0])),
    ]
    for fn, args in calls:
        before = _digest(args)
        result = fn(*args)
        assert _digest(args) == before, getattr(fn, "__name__", fn)
        # Results never alias the inputs.
        for r in _arrays(result):
            for arg in _arrays(args):
                assert not np.shares_memory(r, arg), getattr(fn, "__name__", fn)
    out, f2, h2 = bc.forward(x, W, b)
    assert not np.shares_memory(h2[0], x)
