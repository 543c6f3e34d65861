"""backprop_core.MLP: packed native parameters, the same gradients, views, buffers, pickling."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import backprop_core as bc
import numpy as np
import pytest
from backprop_core.examples import mlp_example


def _net(dtype=np.float64, flat=False):
    rng = np.random.default_rng(4)
    dims = [3, 7, 5, 2]
    W = [rng.normal(size=(dims[k + 1], dims[k])).astype(dtype) for k in range(3)]
    b = [rng.normal(size=(d,) if flat else (d, 1)).astype(dtype) for d in dims[1:]]
    return rng.normal(size=(3, 9)).astype(dtype), rng.normal(size=(2, 9)).astype(dtype), W, b


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("flat", [False, True])
def test_model_equals_free_functions(dtype, flat):
    x, y, W, b = _net(dtype, flat)
    m = bc.MLP(W, b)
    assert m.dtype == dtype and m.dims == [3, 7, 5, 2]
    loss, dW, db = m.gradients(x, y)
    e_loss, e_dW, e_db = bc.gradients(x, y, W, b)
    assert loss == e_loss and np.asarray(loss).dtype == dtype
    _same(dW, e_dW)
    _same(db, e_db)
    out, f, h = m.forward(x)
    e_out, e_f, e_h = bc.forward(x, W, b)
    _same([out, *f, *h], [e_out, *e_f, *e_h])
    _same(m.weights, W)
    _same(m.biases, b)


def test_notebook_network_and_relu_convention():
    e = mlp_example()
    m = bc.MLP(e.all_weights, e.all_biases)
    loss, _, db = m.gradients(e.net_input, e.y)
    assert round(float(loss), 3) == 478.118 and round(float(db[0][1, 0]), 3) == 46.618
    W = [np.array([[1.0]]), np.array([[2.0]])]
    b = [np.array([[-1.0]]), np.array([[0.5]])]
    m = bc.MLP(W, b)
    assert m.gradients(np.array([[1.0]]), 1.5)[2][0][0, 0] == -2.0
    assert m.gradients(np.array([[1.0]]), 1.5, relu_grad_at_zero=0.0)[2][0][0, 0] == 0.0


def test_parameters_are_copied_in_and_views_write_through():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    W[0][:] = 0  # the caller's arrays are not the model's
    assert not np.array_equal(m.weights[0], W[0])
    before = m.gradients(x, y)[0]
    m.weights[1][:] = 0  # a view: the model changes
    assert np.all(m.weights[1] == 0)
    assert m.gradients(x, y)[0] != before
    view = m.weights[2]
    del m  # the view keeps the model's memory alive
    assert view.shape == (2, 5) and np.isfinite(view).all()


def test_out_buffers_are_filled_and_returned():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    out = ([np.full_like(w, np.nan) for w in W], [np.full_like(v, np.nan) for v in b])
    loss, dW, db = m.gradients(x, y, out=out)
    assert dW is out[0] and db is out[1]
    e_loss, e_dW, e_db = bc.gradients(x, y, W, b)
    assert loss == e_loss
    _same(dW, e_dW)
    _same(db, e_db)
    with pytest.raises(ValueError, match=r"out\[0\]\[1\].*\(5, 7\)"):
        m.gradients(x, y, out=([out[0][0], np.empty((7, 5)), out[0][2]], out[1]))
    with pytest.raises(TypeError, match=r"out\[1\]\[0\]"):
        m.gradients(x, y, out=(out[0], [out[1][0].astype(np.float32), *out[1][1:]]))
    ro = [v.copy() for v in out[1]]
    ro[0].flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        m.gradients(x, y, out=(out[0], ro))


def test_pickle_round_trip():
    x, y, W, b = _net(np.float32)
    m = bc.MLP(W, b)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.dtype == np.float32
    _same(m2.weights, m.weights)
    _same(list(m2.gradients(x, y)[1]), list(m.gradients(x, y)[1]))


def test_inputs_of_another_dtype_are_refused_not_cast():
    x, y, W, b = _net(np.float32)
    m = bc.MLP(W, b)
    with pytest.raises(TypeError, match="net_input: expected float32"):
        m.gradients(x.astype(np.float64), y)
    # Integers follow numpy's promotion with the model's dtype where that keeps it.
    loss, _, _ = m.gradients(x, np.zeros((2, 9), dtype=np.int8))
    assert np.asarray(loss).dtype == np.float32
    with pytest.raises(ValueError, match=r"net_input: expected shape \(3, N\)"):
        m.gradients(np.ones((4, 2), np.float32), 0.0)


def test_bad_construction_names_the_layer():
    _, _, W, b = _net()
    with pytest.raises(ValueError, match=r"all_biases\[1\]"):
        bc.MLP(W, [b[0], np.ones((3, 1)), b[2]])
    with pytest.raises(ValueError, match="at least one layer"):
        bc.MLP([], [])


def test_threads_share_one_model():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    want = m.gradients(x, y)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: m.gradients(x, y), range(200)))
    for r in results:
        assert r[0] == want[0]
        _same(r[1], want[1])


def test_forward_checks_its_input():
    _, _, W, b = _net()
    m = bc.MLP(W, b)
    with pytest.raises(ValueError, match=r"net_input: expected shape \(3, N\) to match all_weights\[0\] of shape \(7, 3\)"):
        m.forward(np.ones((4, 2)))
