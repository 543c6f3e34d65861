"""The reference's losses: squared error and softmax cross-entropy, summed or averaged.

Gradients are checked against central finite differences of the reference's own loss, on the
network output and on every weight and bias (gradcheck's float64 tolerance, samples kept away
from ReLU kinks); the stable log-sum-exp form against a 50-digit oracle; and each reduction
against its stated definition.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from _helpers import central_difference
from backprop_core import reference
from backprop_core.gradcheck import TOLERANCES

EPS, RTOL, ATOL = TOLERANCES[np.dtype(np.float64)]


def network(dims: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(dims[:-1], dims[1:])]
    biases = [rng.standard_normal((o, 1)) * 0.1 for o in dims[1:]]
    return weights, biases


def targets(loss: str, kind: str, D_o: int, N: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if loss == "squared_error":
        return rng.standard_normal((D_o, N))
    labels = rng.integers(0, D_o, N)
    if kind == "labels":
        return labels
    return np.eye(D_o)[:, labels]  # one-hot columns


def assert_matches_fd(grad: np.ndarray, fd: np.ndarray, loss: float, name: str) -> None:
    bound = ATOL * max(1.0, abs(loss)) + RTOL * np.abs(fd)
    err = np.abs(grad - fd)
    assert (err <= bound).all(), f"{name}: worst error {err.max():.3g} (bound {bound.max():.3g})"


CASES = [
    ("squared_error", "dense", "sum"),
    ("squared_error", "dense", "mean"),
    ("cross_entropy", "labels", "sum"),
    ("cross_entropy", "labels", "mean"),
    ("cross_entropy", "onehot", "sum"),
    ("cross_entropy", "onehot", "mean"),
]


@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES)
def test_output_gradient_matches_finite_differences(loss: str, kind: str, reduction: str) -> None:
    rng = np.random.default_rng(1)
    f = rng.standard_normal((4, 7)) * 3
    y = targets(loss, kind, 4, 7, 2)
    fn = reference.LOSSES[loss]
    value, dl_df = fn(f, y, reduction)
    fd = central_difference(lambda p: fn(p, y, reduction)[0], f, EPS)
    assert_matches_fd(dl_df, fd, float(value), f"{loss}/{kind}/{reduction}")


@pytest.mark.parametrize(("loss", "kind", "reduction"), CASES)
def test_parameter_gradients_match_finite_differences(
    loss: str, kind: str, reduction: str
) -> None:
    dims = [3, 5, 4, 3]
    weights, biases = network(dims, 3)
    x = np.random.default_rng(4).standard_normal((3, 9))
    y = targets(loss, kind, dims[-1], 9, 5)
    # no pre-activation near a ReLU kink, where finite differences are wrong
    _, all_f, _ = reference.forward(x, weights, biases)
    assert min(np.abs(f).min() for f in all_f[:-1]) > 100 * EPS
    value, dW, db = reference.gradients(x, y, weights, biases, loss=loss, reduction=reduction)
    for group, params, grads in (("W", weights, dW), ("b", biases, db)):
        for k in range(len(params)):

            def objective(p: np.ndarray) -> float:
                trial = [q.copy() for q in params]
                trial[k] = p
                w, b = (trial, biases) if group == "W" else (weights, trial)
                return float(reference.gradients(x, y, w, b, loss=loss, reduction=reduction)[0])

            fd = central_difference(objective, params[k], EPS)
            assert_matches_fd(grads[k], fd, float(value), f"{loss}/{kind}/{reduction} d{group}{k}")


@pytest.mark.parametrize("loss", ["squared_error", "cross_entropy"])
def test_mean_is_the_sum_over_the_number_of_samples(loss: str) -> None:
    weights, biases = network([2, 6, 3], 6)
    x = np.random.default_rng(7).standard_normal((2, 11))
    y = targets(loss, "labels", 3, 11, 8)
    s = reference.gradients(x, y, weights, biases, loss=loss, reduction="sum")
    m = reference.gradients(x, y, weights, biases, loss=loss, reduction="mean")
    np.testing.assert_allclose(m[0], s[0] / 11, rtol=1e-15)
    for a, b in zip(m[1] + m[2], s[1] + s[2]):
        np.testing.assert_allclose(a, b / 11, rtol=1e-13, atol=1e-16)


def test_squared_error_mean_against_its_peers() -> None:
    # mean = (1/N) sum 0.5 (f - y)^2: PyTorch's MSELoss(mean) (no 0.5, over N * D_o entries) is
    # 2 / D_o times it; scikit-learn's gradients (deltas = f - y, divided by N) equal ours.
    f = np.random.default_rng(9).standard_normal((3, 5))
    y = np.random.default_rng(10).standard_normal((3, 5))
    value, dl_df = reference.squared_error(f, y, "mean")
    mse_mean = np.mean((f - y) ** 2)
    np.testing.assert_allclose(mse_mean, 2 / 3 * value, rtol=1e-15)
    np.testing.assert_allclose(dl_df, (f - y) / 5, rtol=1e-15)


def test_labels_and_one_hot_agree() -> None:
    f = np.random.default_rng(11).standard_normal((5, 8)) * 4
    labels = np.random.default_rng(12).integers(0, 5, 8)
    for reduction in ("sum", "mean"):
        a = reference.softmax_cross_entropy(f, labels, reduction)
        b = reference.softmax_cross_entropy(f, np.eye(5)[:, labels], reduction)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-15)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-15, atol=1e-17)


def test_cross_entropy_is_stable_for_large_scores() -> None:
    # Scores of +-800: exp overflows in a naive softmax; the log-sum-exp form does not.
    f = np.array([[800.0, -800.0, 3.0], [799.0, -801.0, 1000.0], [-5.0, -700.0, -1000.0]])
    labels = np.array([1, 0, 2])
    with np.errstate(over="raise", invalid="raise"):  # (exp may underflow to 0)
        value, dl_df = reference.softmax_cross_entropy(f, labels, "sum")
    mpmath.mp.dps = 50
    expected = mpmath.mpf(0)
    for n, c in enumerate(labels):
        lse = mpmath.log(sum(mpmath.exp(mpmath.mpf(float(v))) for v in f[:, n]))
        expected += lse - mpmath.mpf(float(f[c, n]))
    assert abs(float(value) - float(expected)) <= 1e-12 * float(expected)
    p = np.array([[float(mpmath.exp(mpmath.mpf(float(f[i, n])) - mpmath.log(
        sum(mpmath.exp(mpmath.mpf(float(v))) for v in f[:, n])))) for n in range(3)]
        for i in range(3)])
    p[labels, np.arange(3)] -= 1
    np.testing.assert_allclose(dl_df, p, rtol=1e-12, atol=1e-300)
    assert np.isfinite(value) and np.isfinite(dl_df).all()


def test_cross_entropy_value_by_hand() -> None:
    f = np.array([[0.0, 1.0], [np.log(3.0), 1.0]])  # softmax columns (1/4, 3/4) and (1/2, 1/2)
    value, dl_df = reference.softmax_cross_entropy(f, np.array([1, 0]), "mean")
    np.testing.assert_allclose(value, (np.log(4 / 3) + np.log(2)) / 2, rtol=1e-15)
    np.testing.assert_allclose(dl_df, [[0.25 / 2, -0.5 / 2], [-0.25 / 2, 0.5 / 2]], rtol=1e-15)


def test_empty_batch_has_zero_loss_and_gradient() -> None:
    for reduction in ("sum", "mean"):
        value, dl_df = reference.softmax_cross_entropy(np.zeros((3, 0)), np.zeros(0, int), reduction)
        assert value == 0 and dl_df.shape == (3, 0)
        value, dl_df = reference.squared_error(np.zeros((2, 0)), np.zeros((2, 0)), reduction)
        assert value == 0 and dl_df.shape == (2, 0)


def test_labels_keep_a_float32_network_float32() -> None:
    weights, biases = network([2, 4, 3], 13)
    w32 = [w.astype(np.float32) for w in weights]
    b32 = [b.astype(np.float32) for b in biases]
    x = np.ones((2, 4), np.float32)
    value, dW, db = reference.gradients(x, np.array([0, 1, 2, 1]), w32, b32, loss="cross_entropy")
    assert value.dtype == np.float32 and all(g.dtype == np.float32 for g in dW + db)


def test_bad_arguments_are_named() -> None:
    weights, biases = network([2, 4, 3], 14)
    x = np.ones((2, 4))
    with pytest.raises(ValueError, match="loss: expected one of"):
        reference.gradients(x, 0.0, weights, biases, loss="hinge")
    with pytest.raises(ValueError, match="reduction: expected one of"):
        reference.gradients(x, 0.0, weights, biases, reduction="max")
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        reference.gradients(x, np.array([0, 1, 3, 0]), weights, biases, loss="cross_entropy")
    with pytest.raises(ValueError, match=r"y: expected class labels of shape \(4,\)"):
        reference.gradients(x, np.array([0, 1]), weights, biases, loss="cross_entropy")


def test_default_is_the_notebook_loss() -> None:
    weights, biases = network([2, 4, 1], 15)
    x = np.random.default_rng(16).standard_normal((2, 6))
    y = np.random.default_rng(17).standard_normal((1, 6))
    value, dW, db = reference.gradients(x, y, weights, biases)
    out = reference.forward(x, weights, biases)[0]
    assert value == np.sum(0.5 * (out - y) ** 2)
    explicit = reference.gradients(x, y, weights, biases, loss="squared_error", reduction="sum")
    assert value == explicit[0]
    assert all((a == b).all() for a, b in zip(dW + db, explicit[1] + explicit[2]))
