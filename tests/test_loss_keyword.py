"""One ``loss=`` / ``reduction=`` keyword for ``gradients``, ``backward``, ``MLP.gradients`` and
``gradcheck``.

Native results are compared with the reference's (plain numpy, whose losses are checked against
finite differences and a 50-digit oracle in test_losses.py) in both dtypes; gradcheck must pass on
every loss and fail on a perturbed gradient; bad names and labels get errors naming the argument.
"""

from __future__ import annotations

import backprop_core as bc
import numpy as np
import pytest
from backprop_core import reference
from backprop_core.gradcheck import gradcheck
from test_losses import CASES  # (loss, kind of y, reduction): the losses' own test cases

DIMS = [3, 5, 4, 4]
N = 9
# float64: the native and numpy passes sum in other orders (about 1e-16 relative);
# float32: the same, at float32's epsilon.
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def problem(loss: str, kind: str, dtype: type, seed: int = 0):
    rng = np.random.default_rng(seed)
    W = [(rng.standard_normal((o, i)) / np.sqrt(i)).astype(dtype) for i, o in zip(DIMS, DIMS[1:])]
    b = [(rng.standard_normal((o, 1)) * 0.1).astype(dtype) for o in DIMS[1:]]
    x = rng.standard_normal((DIMS[0], N)).astype(dtype)
    if loss == "squared_error":
        y = rng.standard_normal((DIMS[-1], N)).astype(dtype)
    else:
        labels = rng.integers(0, DIMS[-1], N)
        y = labels if kind == "labels" else np.eye(DIMS[-1], dtype=dtype)[:, labels]
    return x, y, W, b


def assert_close(got, want, rtol: float) -> None:
    scale = max(1.0, max(float(np.abs(w).max()) for w in want))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES)
def test_gradients_equal_the_reference(loss: str, kind: str, reduction: str, dtype: type) -> None:
    x, y, W, b = problem(loss, kind, dtype)
    want = reference.gradients(x, y, W, b, loss=loss, reduction=reduction)
    got = bc.gradients(x, y, W, b, loss=loss, reduction=reduction)
    assert type(got.loss) is np.dtype(dtype).type
    np.testing.assert_allclose(got.loss, want[0], rtol=RTOL[dtype])
    assert_close(got.all_dl_dweights + got.all_dl_dbiases, list(want[1]) + list(want[2]),
                 RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES)
def test_backward_equals_the_reference(loss: str, kind: str, reduction: str, dtype: type) -> None:
    x, y, W, b = problem(loss, kind, dtype)
    all_f, all_h = bc.forward(x, W, b)[1:]
    want = reference.gradients(x, y, W, b, loss=loss, reduction=reduction)
    got = bc.backward(W, b, all_f, all_h, y, loss=loss, reduction=reduction)
    assert_close(got.all_dl_dweights + got.all_dl_dbiases, list(want[1]) + list(want[2]),
                 RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES)
def test_model_gradients_equal_the_functions(loss: str, kind: str, reduction: str, dtype) -> None:
    x, y, W, b = problem(loss, kind, dtype)
    model = bc.MLP(W, b)
    got = model.gradients(x, y, loss=loss, reduction=reduction)
    want = bc.gradients(x, y, W, b, loss=loss, reduction=reduction)
    assert got.loss == want.loss
    for g, w in zip(got.all_dl_dweights + got.all_dl_dbiases,
                    want.all_dl_dweights + want.all_dl_dbiases):
        np.testing.assert_array_equal(g, w)
    # out=: written in place and returned
    out = ([np.full(w.shape, np.nan, dtype) for w in W], [np.full(v.shape, np.nan, dtype) for v in b])
    again = model.gradients(x, y, loss=loss, reduction=reduction, out=out)
    assert again.all_dl_dweights is out[0] and again.all_dl_dbiases is out[1]
    for g, w in zip(out[0] + out[1], want.all_dl_dweights + want.all_dl_dbiases):
        np.testing.assert_array_equal(g, w)


def test_default_keywords_give_the_same_bits_as_before() -> None:
    x, y, W, b = problem("squared_error", "dense", np.float64)
    plain = bc.gradients(x, y, W, b)
    named = bc.gradients(x, y, W, b, loss="squared_error", reduction="sum")
    assert plain.loss == named.loss
    for g, w in zip(plain.all_dl_dweights + plain.all_dl_dbiases,
                    named.all_dl_dweights + named.all_dl_dbiases):
        np.testing.assert_array_equal(g, w)
    # mean is the sum divided by N, to rounding
    mean = bc.gradients(x, y, W, b, reduction="mean")
    np.testing.assert_allclose(mean.loss * N, plain.loss, rtol=1e-14)
    for g, w in zip(mean.all_dl_dweights, plain.all_dl_dweights):
        np.testing.assert_allclose(g * N, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES)
def test_gradcheck_passes_on_every_loss(loss: str, kind: str, reduction: str) -> None:
    x, y, W, b = problem(loss, kind, np.float64, seed=3)
    report = gradcheck(x, y, all_weights=W, all_biases=b, loss=loss, reduction=reduction)
    assert not report.warnings  # no ReLU input near its kink with this seed
    assert report.ok, str(report)
    # the checked value is the chosen loss's
    want = reference.gradients(x, y, W, b, loss=loss, reduction=reduction)[0]
    assert report.loss == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES[2:])
def test_gradcheck_fails_on_a_perturbed_gradient(loss: str, kind: str, reduction: str) -> None:
    x, y, W, b = problem(loss, kind, np.float64, seed=3)
    _, dW, db = reference.gradients(x, y, W, b, loss=loss, reduction=reduction)
    dW = [g.copy() for g in dW]
    dW[1][2, 3] += 1e-3 * max(1.0, abs(dW[1][2, 3]))
    report = gradcheck(x, y, all_weights=W, all_biases=b, grads=(dW, db), loss=loss,
                       reduction=reduction)
    assert report.failures == ["all_weights[1][2, 3]"]
    # the squared error's gradient is not the cross-entropy's: checked against the wrong loss,
    # the reference's own gradients fail
    _, dW_ce, db_ce = reference.gradients(x, y, W, b, loss=loss, reduction=reduction)
    if kind == "onehot":
        wrong = gradcheck(x, y, all_weights=W, all_biases=b, grads=(dW_ce, db_ce),
                          reduction=reduction)
        assert not wrong.ok


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "mse"}, r"loss: expected one of \['squared_error', 'cross_entropy'\], got 'mse'"),
        ({"loss": None}, r"loss: expected one of .* got None"),
        ({"reduction": "avg"}, r"reduction: expected one of \['sum', 'mean'\], got 'avg'"),
        ({"reduction": 1}, r"reduction: expected one of .* got 1"),
    ],
)
def test_bad_loss_or_reduction_is_named(kwargs: dict, match: str) -> None:
    x, y, W, b = problem("squared_error", "dense", np.float64)
    all_f, all_h = bc.forward(x, W, b)[1:]
    with pytest.raises(ValueError, match=match):
        bc.gradients(x, y, W, b, **kwargs)
    with pytest.raises(ValueError, match=match):
        bc.backward(W, b, all_f, all_h, y, **kwargs)
    with pytest.raises(ValueError, match=match):
        bc.MLP(W, b).gradients(x, y, **kwargs)
    with pytest.raises(ValueError, match=match):
        gradcheck(x, y, all_weights=W, all_biases=b, **kwargs)


def test_toy_chain_gradcheck_refuses_another_loss() -> None:
    with pytest.raises(ValueError, match="toy chain's loss"):
        gradcheck(2.3, 2.0, beta=[0.0, 1.0, 2.0, 3.0], omega=[1.0, 1.0, 1.0, 1.0],
                  loss="cross_entropy")


def test_bad_labels_are_named() -> None:
    x, _, W, b = problem("cross_entropy", "labels", np.float64)
    model = bc.MLP(W, b)
    for bad, match in [
        (np.full(N, 4), r"y: class labels must lie in \[0, 4\), got 4 at sample 0"),
        (np.full(N, -1), r"y: class labels must lie in \[0, 4\), got -1 at sample 0"),
        (np.zeros(N - 1, np.int64), r"y: expected class labels of shape \(9,\), got \(8,\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            bc.gradients(x, bad, W, b, loss="cross_entropy")
        with pytest.raises(ValueError, match=match):
            model.gradients(x, bad, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"y: expected .* broadcastable"):
        bc.gradients(x, np.zeros((2, N)), W, b, loss="squared_error", reduction="mean")


def test_model_refuses_another_float_dtype_and_overlapping_out() -> None:
    x, y, W, b = problem("cross_entropy", "onehot", np.float32)
    model = bc.MLP(W, b)
    with pytest.raises(TypeError, match=r"net_input: expected dtype float32 \(the model's\), got "
                                        r"float64"):
        model.gradients(x.astype(np.float64), y, loss="cross_entropy")
    out = ([np.empty(w.shape, np.float32) for w in W], [np.empty(v.shape, np.float32) for v in b])
    out[1][0] = out[0][0][:, :1].copy()  # fine: a separate array
    model.gradients(x, y, loss="cross_entropy", out=out)
    shared = np.empty(W[1].size + W[2].size, np.float32)
    overlapping = ([out[0][0], shared[:W[1].size].reshape(W[1].shape),
                    shared[:W[2].size].reshape(W[2].shape)], out[1])
    with pytest.raises(ValueError, match="overlap"):
        model.gradients(x, y, loss="cross_entropy", out=overlapping)
    wrong = ([np.empty(w.shape, np.float64) for w in W], out[1])
    with pytest.raises(ValueError, match=r"out\[0\]\[0\]: expected a float32 array"):
        model.gradients(x, y, loss="cross_entropy", out=wrong)


def test_inputs_are_not_mutated() -> None:
    x, y, W, b = problem("cross_entropy", "labels", np.float64)
    copies = [a.copy() for a in (x, y, *W, *b)]
    bc.gradients(x, y, W, b, loss="cross_entropy", reduction="mean")
    all_f, all_h = bc.forward(x, W, b)[1:]
    bc.backward(W, b, all_f, all_h, y, loss="cross_entropy")
    for a, c in zip((x, y, *W, *b), copies):
        np.testing.assert_array_equal(a, c)
