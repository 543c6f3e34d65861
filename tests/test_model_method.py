"""MLP.gradients is a native method with a fast path for arguments already as the core reads
them: it must give the same bits as the general path (the free function), take the same
arguments, and leave everything else to the general path's checks and messages."""

from __future__ import annotations

import inspect

import backprop_core as bc
import numpy as np
import pytest
from backprop_core.examples import mlp_example


def _model(dtype=np.float64, n=1, column=True):
    rng = np.random.default_rng(11)
    dims = [2, 6, 6, 3]
    W = [rng.normal(size=(dims[k + 1], dims[k])).astype(dtype) for k in range(3)]
    b = [rng.normal(size=(d, 1) if column else (d,)).astype(dtype) for d in dims[1:]]
    x = rng.uniform(0.2, 1.0, size=(2, n)).astype(dtype)
    y = rng.normal(size=(3, n)).astype(dtype)
    return bc.MLP(W, b), W, b, x, y


def _bits(r):
    return [float(r[0]), *[a.tobytes() for a in (*r[1], *r[2])]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("column", [True, False])
def test_fast_path_equals_the_free_function_bit_for_bit(dtype, n, column):
    m, W, b, x, y = _model(dtype, n, column)
    expected = bc.gradients(x, y, W, b)
    out = ([np.full_like(w, np.nan) for w in W], [np.full_like(v, np.nan) for v in b])
    for r in (
        m.gradients(x, y),  # fast, new arrays
        m.gradients(x, y, out=out),  # fast, written in place
        m.gradients(x, y, relu_grad_at_zero=1.0, loss="squared_error", reduction="sum"),
        m.gradients(x, list(map(list, y))),  # y as a list: the general path
        m.gradients(net_input=x, y=y, out=(list(out[0]), tuple(out[1]))),  # a tuple: general
    ):
        assert _bits(r) == _bits(expected)
        assert np.asarray(r[0]).dtype == dtype
    assert m.gradients(x, 0.5)[0] == bc.gradients(x, 0.5, W, b)[0]  # y a Python float
    # the one-sample network of notebook 7.2, by the fast path
    e = mlp_example()
    r = bc.MLP(e.all_weights, e.all_biases).gradients(e.net_input, e.y)
    assert round(float(r.loss), 3) == 478.118


def test_relu_grad_at_zero_and_losses_reach_the_same_values():
    m, W, b, x, y = _model()
    x = np.zeros_like(x)  # every first-layer f is its bias: make one exactly 0
    m.biases[0][0] = 0.0
    b[0][0] = 0.0
    for c in (0.0, 1.0, 0.25, 0, 1):  # ints go to the general path: the same values
        assert _bits(m.gradients(x, y, relu_grad_at_zero=c)) == _bits(
            bc.gradients(x, y, W, b, relu_grad_at_zero=c)
        )
    assert _bits(m.gradients(x, y, relu_grad_at_zero=0.0)) != _bits(m.gradients(x, y))
    labels = np.array([0])
    r = m.gradients(x, labels, loss="cross_entropy", reduction="mean")
    e = bc.gradients(x, labels, W, b, loss="cross_entropy", reduction="mean")
    assert _bits(r) == _bits(e)


def test_arguments_as_a_python_method_takes_them():
    m, _, _, x, y = _model()
    cases = [
        (lambda: m.gradients(x, y, 1.0), TypeError),
        (lambda: m.gradients(x, y, foo=1), TypeError),
        (lambda: m.gradients(x, y=y, net_input=x), TypeError),
        (lambda: m.gradients(x), TypeError),
        (lambda: m.gradients(y=y), TypeError),
        (lambda: m.gradients(x, y, relu_grad_at_zero=2.0), ValueError),
        (lambda: m.gradients(x, y, relu_grad_at_zero=float("nan")), ValueError),
        (lambda: m.gradients(x, y, loss="hinge"), ValueError),
        (lambda: m.gradients(x, y, reduction="max"), ValueError),
        (lambda: m.gradients(x[:, :0], y[:, :0]), None),  # no samples: the general path
        (lambda: m.gradients(np.asfortranarray(np.ones((2, 3))), 0.0), None),
    ]
    for call, error in cases:
        if error is None:
            call()
        else:
            with pytest.raises(error):
                call()
    assert list(inspect.signature(bc.MLP.gradients).parameters) == [
        "self", "net_input", "y", "relu_grad_at_zero", "out", "loss", "reduction",
    ]
    assert "Loss and every weight and bias derivative" in bc.MLP.gradients.__doc__
    with pytest.raises(RuntimeError, match="not initialised"):
        bc.MLP.__new__(bc.MLP).gradients(x, y)


def test_out_that_is_not_simple_gets_the_general_checks():
    m, W, b, x, y = _model()
    good = ([np.zeros_like(w) for w in W], [np.zeros_like(v) for v in b])

    class Sub(list):
        pass

    r = m.gradients(x, y, out=(Sub(good[0]), good[1]))  # a list subclass: general, accepted
    assert _bits(r) == _bits(bc.gradients(x, y, W, b))
    for a in (*good[0], *good[1]):
        a[...] = 0
    with pytest.raises(ValueError, match=r"out\[0\]: expected 3 arrays"):
        m.gradients(x, y, out=(good[0][:2], good[1]))
    with pytest.raises(ValueError, match=r"out\[1\]\[1\] overlaps out\[1\]\[0\]"):
        m.gradients(x, y, out=(good[0], [good[1][0], good[1][0][:6], good[1][2]]))
    with pytest.raises(ValueError, match=r"out\[0\]\[0\] overlaps net_input"):
        xs = np.zeros(40)
        xs[:2] = x[:, 0]
        m.gradients(xs[:2].reshape(2, 1), y, out=([xs[:12].reshape(6, 2), *good[0][1:]], good[1]))
    with pytest.raises(TypeError, match=r"out\[0\]\[2\]"):
        m.gradients(x, y, out=([*good[0][:2], np.zeros((3, 6), np.float32)], good[1]))
    strided = np.zeros((6, 12))[:, ::2]
    with pytest.raises(TypeError, match=r"out\[0\]\[1\]"):
        m.gradients(x, y, out=([good[0][0], strided, good[0][2]], good[1]))
    # nothing was written by the refused calls
    assert all(not a.any() for a in (*good[0], *good[1]))


def test_out_arrays_anywhere_in_one_buffer_overlap_exactly_when_their_bytes_do():
    # The fast path keeps the outputs sorted by address and checks each new one against its
    # neighbours there: outputs placed at random in one buffer, in random orders, must be refused
    # (by the general path's message) exactly when two of them share a byte, and otherwise hold
    # the gradients.
    m, W, b, x, y = _model()
    expected = bc.gradients(x, y, W, b)
    shapes = [w.shape for w in W] + [v.shape for v in b]
    sizes = [int(np.prod(s)) for s in shapes]
    rng = np.random.default_rng(3)
    refused = accepted = 0
    for _ in range(400):
        span = int(sum(sizes) * rng.uniform(1.5, 12.0))
        buffer = np.zeros(span)
        starts = [int(rng.integers(0, span - n + 1)) for n in sizes]
        views = [buffer[s:s + n].reshape(shape) for s, n, shape in zip(starts, sizes, shapes)]
        ranges = sorted((s, s + n) for s, n in zip(starts, sizes))
        overlap = any(a[1] > c[0] for a, c in zip(ranges, ranges[1:]))
        out = (views[:3], views[3:])
        if overlap:
            with pytest.raises(ValueError, match="overlaps"):
                m.gradients(x, y, out=out)
            refused += 1
        else:
            r = m.gradients(x, y, out=out)
            assert _bits(r) == _bits(expected)
            accepted += 1
    assert refused > 50 and accepted > 50
