"""The targets ``y``: the reference accepts exactly the shapes the native functions accept, and
gives the same error for the others (it used to broadcast any y numpy could: a chain's (N, 1)
targets against (N,) outputs made an (N, N) loss)."""

from __future__ import annotations

from typing import Any

import backprop_core as bc
import numpy as np
import pytest
from backprop_core import reference

ACTS = ("tanh", "sin")
BETA = np.array([0.1, -0.2, 0.3])
OMEGA = np.array([1.1, -0.7, 0.5])


def _y(shape: Any, rng: np.random.Generator) -> Any:
    if shape == "float":
        return 0.7
    if shape == "list":  # filled in by the caller: nested lists of the accepted full shape
        raise AssertionError
    return rng.normal(size=shape)


def _outcome(call):
    try:
        return "ok", call()
    except ValueError as e:
        return "ValueError", str(e)


def _flat(result: Any) -> list[np.ndarray]:
    out = []
    for v in result:
        out += [np.asarray(a) for a in v] if isinstance(v, list) else [np.asarray(v)]
    return out


def _assert_same(native, ref, accepted: bool, dtype) -> None:
    assert native[0] == ref[0], f"native: {native}, reference: {ref}"
    assert native[0] == ("ok" if accepted else "ValueError"), native
    if not accepted:
        assert native[1] == ref[1]  # the same message, word for word
        assert native[1].startswith("y: expected a scalar or ")
        return
    got, want = _flat(native[1]), _flat(ref[1])
    assert len(got) == len(want)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype == dtype, (k, g.shape, w.shape, g.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=f"result {k}")


# ----------------------------------------------------------------------------- the toy chain

# (x's shape, y's shape, accepted): a scalar target, one per sample, nothing broadcast.
TOY_CASES = [
    ((), "float", True), ((), (), True), ((), (1,), False), ((), (1, 1), False), ((), (3,), False),
    ((3,), "float", True), ((3,), (), True), ((3,), (3,), True), ((3,), "list", True),
    ((3,), (1,), False), ((3,), (3, 1), False), ((3,), (1, 3), False), ((3,), (4,), False),
    ((3,), (2,), False), ((3,), (3, 3), False), ((3,), (1, 1, 3), False), ((3,), (0,), False),
    ((1,), (1,), True), ((1,), (), True), ((1,), (1, 1), False),
    ((0,), (0,), True), ((0,), (), True), ((0,), (1,), False), ((0,), (0, 1), False),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", ["toy_backward", "toy_gradients"])
@pytest.mark.parametrize(("x_shape", "y_shape", "accepted"), TOY_CASES, ids=str)
def test_toy_y_shapes_agree(fn, x_shape, y_shape, accepted, dtype):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=x_shape).astype(dtype)
    y = x.tolist() if y_shape == "list" else _y(y_shape, rng)
    y = y if isinstance(y, (float, list)) else np.asarray(y, dtype)
    beta, omega = BETA.astype(dtype), OMEGA.astype(dtype)
    native = _outcome(lambda: getattr(bc, fn)(x, y, beta, omega, activations=ACTS))
    ref = _outcome(lambda: getattr(reference, fn)(x, y, beta, omega, activations=ACTS))
    # A list of Python floats is float64 data (only scalars are weak): it promotes float32.
    _assert_same(native, ref, accepted, np.float64 if y_shape == "list" else dtype)


def test_a_column_of_targets_no_longer_broadcasts_in_the_reference():
    """The old reference made (N,) outputs minus (N, 1) targets an (N, N) loss: a silent wrong
    answer that a test against it could inherit."""
    x = np.array([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"^y: expected a scalar or the shape of x \(3,\), got shape \(3, 1\)$"):
        reference.toy_backward(x, x[:, None], BETA, OMEGA, activations=ACTS)


# ----------------------------------------------------------------------------- the MLP


def _net(D_o: int, N: int, dtype):
    rng = np.random.default_rng(11)
    W = [rng.normal(size=(4, 2)), rng.normal(size=(D_o, 4))]
    b = [rng.normal(size=(4, 1)), rng.normal(size=D_o)]
    x = rng.normal(size=(2, N))
    return x.astype(dtype), [w.astype(dtype) for w in W], [c.astype(dtype) for c in b]


# (D_o, N, y's shape, accepted): numpy's broadcasting to the output (D_o, N), 2 dimensions at most.
MLP_CASES = [
    (3, 5, "float", True), (3, 5, (), True), (3, 5, (5,), True), (3, 5, (1, 5), True),
    (3, 5, (3, 1), True), (3, 5, (3, 5), True), (3, 5, (1,), True), (3, 5, (1, 1), True),
    (3, 5, "list", True),
    (3, 5, (3,), False), (3, 5, (5, 3), False), (3, 5, (4, 5), False), (3, 5, (3, 4), False),
    (3, 5, (2,), False), (3, 5, (5, 1), False), (3, 5, (1, 3, 5), False), (3, 5, (1, 1, 1), False),
    (3, 5, (2, 3, 5), False), (3, 5, (3, 5, 1), False), (3, 5, (0,), False),
    (3, 3, (3,), True),  # a row: one target per sample, the same for every output
    (1, 1, (1,), True), (1, 1, (1, 1), True), (1, 1, (), True), (1, 1, (1, 1, 1), False),
    (1, 1, (2,), False), (1, 4, (4,), True), (1, 4, (1, 4), True), (1, 4, (4, 1), False),
    (3, 1, (3, 1), True), (3, 1, (3,), False), (3, 1, (1, 3), False),
    (2, 0, (2, 0), True), (2, 0, (0,), True), (2, 0, (2, 1), True), (2, 0, (), True),
    (2, 0, (2,), False), (2, 0, (1, 2, 0), False),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", ["gradients", "backward"])
@pytest.mark.parametrize(("D_o", "N", "y_shape", "accepted"), MLP_CASES, ids=str)
def test_mlp_y_shapes_agree(fn, D_o, N, y_shape, accepted, dtype):
    x, W, b = _net(D_o, N, dtype)
    rng = np.random.default_rng(5)
    y = rng.normal(size=(D_o, N)).tolist() if y_shape == "list" else _y(y_shape, rng)
    y = y if isinstance(y, (float, list)) else np.asarray(y, dtype)
    if fn == "gradients":
        native = _outcome(lambda: bc.gradients(x, y, W, b))
        ref = _outcome(lambda: reference.gradients(x, y, W, b))
    else:
        _, f, h = reference.forward(x, W, b)
        native = _outcome(lambda: bc.backward(W, b, f, h, y))
        ref = _outcome(lambda: reference.backward(W, b, f, h, y))
    # A list of Python floats is float64 data (only scalars are weak): it promotes float32.
    _assert_same(native, ref, accepted, np.float64 if y_shape == "list" else dtype)


def test_broadcast_targets_are_the_full_arrays_targets():
    """An accepted y means what its broadcast to (D_o, N) means, in both implementations."""
    x, W, b = _net(3, 5, np.float64)
    rng = np.random.default_rng(2)
    for y in (rng.normal(size=(3, 1)), rng.normal(size=(5,)), rng.normal(size=(1, 5)), 0.3):
        full = np.broadcast_to(y, (3, 5)).copy()
        for impl in (bc, reference):
            got, want = _flat(impl.gradients(x, y, W, b)), _flat(impl.gradients(x, full, W, b))
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13)
