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


# ----------------------------------------------------------------------------- the contract


def test_results_are_named_and_unpack_as_tuples():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    g = m.gradients(x, y)
    assert isinstance(g, bc.Gradients) and g._fields == ("loss", "all_dl_dweights", "all_dl_dbiases")
    loss, dW, db = g
    assert loss is g.loss and dW is g.all_dl_dweights and db is g.all_dl_dbiases
    fw = m.forward(x)
    assert isinstance(fw, bc.Forward) and fw.net_output is fw.all_f[-1]
    assert isinstance(bc.forward(x, W, b), bc.Forward)
    assert isinstance(bc.gradients(x, y, W, b), bc.Gradients)
    fw = bc.forward(x, W, b)
    assert isinstance(bc.backward(W, b, fw.all_f, fw.all_h, y), bc.Backward)
    t = bc.toy_gradients(0.5, 1.0, np.ones(4), np.ones(4))
    assert isinstance(t, bc.ToyGradients) and t._fields == ("loss", "dl_dbeta", "dl_domega")


def test_options_are_keyword_only():
    x, y, W, b = _net()
    with pytest.raises(TypeError, match="positional"):
        bc.gradients(x, y, W, b, 0.0)
    with pytest.raises(TypeError, match="positional"):
        bc.MLP(W, b).gradients(x, y, 0.0)
    with pytest.raises(TypeError, match="positional"):
        bc.toy_backward(0.5, 1.0, np.ones(3), np.ones(3), ("sin", "cos"))


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), "1", None, 1j, [1.0]])
def test_relu_grad_at_zero_must_be_a_real_number(bad):
    x, y, W, b = _net()
    for call in (
        lambda: bc.gradients(x, y, W, b, relu_grad_at_zero=bad),
        lambda: bc.MLP(W, b).gradients(x, y, relu_grad_at_zero=bad),
        lambda: bc.toy_backward(0.5, 1.0, np.ones(4), np.ones(4), relu_grad_at_zero=bad),
    ):
        with pytest.raises(TypeError, match="relu_grad_at_zero"):
            call()


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_relu_grad_at_zero_outside_the_unit_interval(bad):
    x, y, W, b = _net()
    with pytest.raises(ValueError, match=r"relu_grad_at_zero: expected a value in \[0, 1\]"):
        bc.gradients(x, y, W, b, relu_grad_at_zero=bad)


@pytest.mark.parametrize("bad", [None, 5, {"sin"}, (n for n in ["sin"]), "sin", b"sin"])
def test_activations_must_be_a_list_or_tuple_of_names(bad):
    with pytest.raises(TypeError, match="activations"):
        bc.toy_forward(0.5, np.ones(2), np.ones(2), activations=bad)


def test_an_uninitialised_model_raises_on_every_use():
    m = bc.MLP.__new__(bc.MLP)
    x, y, _, _ = _net()
    assert "not initialised" in repr(m)
    for use in (
        lambda: m.weights,
        lambda: m.biases,
        lambda: m.dims,
        lambda: m.dtype,
        lambda: m.forward(x),
        lambda: m.gradients(x, y),
        lambda: pickle.dumps(m),
    ):
        with pytest.raises(RuntimeError, match="MLP: not initialised"):
            use()


@pytest.mark.parametrize(
    "payload",
    [
        b"\x80\x02cbackprop_core\nMLP\n)\x81.",
        b"\x80\x02cbackprop_core._model\nMLP\n)\x81.",
        b"\x80\x02cbackprop_core\nMLP\n)\x81}q\x00X\x07\x00\x00\x00_handleq\x01K\x01sb.",
        b"\x80\x02cbackprop_core\nMLP\n)\x81N}q\x00X\x07\x00\x00\x00_handleq\x01K\x01s\x86b.",
    ],
)
def test_crafted_pickles_give_no_usable_half_made_model(payload):
    try:
        m = pickle.loads(payload)
    except (TypeError, AttributeError, pickle.UnpicklingError):
        return  # refused outright
    with pytest.raises(RuntimeError, match="not initialised"):
        m.gradients(np.ones((3, 1)), 0.0)


def test_the_core_module_has_no_class_to_half_make():
    from backprop_core import _core

    assert not [n for n in dir(_core) if isinstance(getattr(_core, n), type)]
    with pytest.raises(TypeError, match="model: expected a native model handle"):
        _core.model_gradients(object(), np.ones((3, 1)), 0.0, 1.0, None)


def test_reinitialising_rebuilds_from_the_new_parameters():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    old_view = m.weights[0]
    W2 = [w * 2 for w in W]
    m.__init__(W2, b)
    _same(m.weights, W2)
    _same(m.gradients(x, y)[1], bc.gradients(x, y, W2, b)[1])
    _same([old_view], [W[0]])  # an old view keeps the old memory, detached
    m.__init__([W[0].astype(np.float32)], [b[0].astype(np.float32)])
    assert m.dims == [3, 7] and m.dtype == np.float32


def test_repr_shows_dims_and_dtype():
    _, _, W, b = _net(np.float32)
    assert repr(bc.MLP(W, b)) == "MLP(dims=[3, 7, 5, 2], dtype=float32)"


def _out_like(m):
    return ([np.zeros_like(w) for w in m.weights], [np.zeros_like(c) for c in m.biases])


def test_out_overlapping_what_the_call_reads_is_refused():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    with pytest.raises(ValueError, match=r"out\[0\]\[0\] overlaps the model's parameters"):
        m.gradients(x, y, out=(m.weights, m.biases))
    dW, db = _out_like(m)
    with pytest.raises(ValueError, match=r"out\[1\]\[1\] overlaps out\[0\]\[1\]"):
        m.gradients(x, y, out=(dW, [db[0], dW[1].reshape(-1)[:5], db[2]]))
    dW, db = _out_like(m)
    with pytest.raises(ValueError, match=r"out\[1\]\[2\] overlaps out\[1\]\[0\]"):
        m.gradients(x, y, out=(dW, [db[0], db[1], db[0][:2]]))
    big = np.zeros(200)
    xs = big[: x.size].reshape(x.shape)
    xs[...] = x
    dW, db = _out_like(m)
    db[2] = big[1:3].reshape(2, 1)
    with pytest.raises(ValueError, match=r"out\[1\]\[2\] overlaps net_input"):
        m.gradients(xs, y, out=(dW, db))
    dW, db = _out_like(m)
    dW[2] = y.reshape(-1)[:10].reshape(2, 5)
    with pytest.raises(ValueError, match=r"out\[0\]\[2\] overlaps y"):
        m.gradients(x, y, out=(dW, db))
    # Nothing was written by the refused calls.
    _same(m.weights, W)
    _same(m.biases, b)


def test_out_written_in_place_equals_new_arrays():
    x, y, W, b = _net()
    m = bc.MLP(W, b)
    out = _out_like(m)
    r = m.gradients(x, y, out=out)
    assert r.all_dl_dweights is out[0] and r.all_dl_dbiases is out[1]
    _same(out[0], m.gradients(x, y).all_dl_dweights)
