"""Native training against its peers, from the same starting weights and minibatch order:
scikit-learn's MLPRegressor / MLPClassifier and torch.optim.SGD / Adam (each skipped when the
package is absent). These pin the definitions the docs state: mean reduction, the L2 penalty
alpha/2 ||W||^2 / B, SGD momentum and Nesterov, Adam (PyTorch's epsilon; scikit-learn's agrees
when epsilon is negligible against sqrt(v)), the schedules' learning rates."""

from __future__ import annotations

import warnings

import backprop_core as bc
import numpy as np
import pytest


def network(dims: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((o, i)) * np.sqrt(2 / i) for i, o in zip(dims[:-1], dims[1:])]
    biases = [rng.standard_normal((o, 1)) * 0.1 for o in dims[1:]]
    return weights, biases


def assert_params(model: bc.MLP, weights: list[np.ndarray], biases: list[np.ndarray],
                  rtol: float) -> None:
    for k, (a, e) in enumerate(zip(list(model.weights) + list(model.biases), weights + biases)):
        err = np.max(np.abs(a - e.reshape(a.shape))) / np.max(np.abs(e))
        assert err <= rtol, f"parameter {k}: {err:.3g} relative to its largest entry"


# ----------------------------------------------------------------------------- scikit-learn


def sklearn_fit(estimator, weights, biases, X, y, epochs):  # type: ignore[no-untyped-def]
    """Fit `estimator` from our starting weights (coefs_ are W^T, samples as rows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: wanted here
        estimator.set_params(max_iter=1).fit(X, y)  # builds coefs_ of the right shapes
        estimator.coefs_ = [w.T.copy() for w in weights]
        estimator.intercepts_ = [b.ravel().copy() for b in biases]
        estimator.t_ = 0  # samples seen (invscaling's clock), not reset by a warm start
        estimator.set_params(max_iter=epochs).fit(X, y)  # warm start: a fresh optimizer
    return estimator


SKLEARN_CASES = {
    "sgd-momentum-l2": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False, alpha=1e-3),
    "sgd-nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, alpha=0.0),
    "sgd-invscaling": dict(solver="sgd", momentum=0.0, learning_rate="invscaling", power_t=0.3,
                           alpha=1e-2),
    "adam-l2": dict(solver="adam", alpha=1e-3, epsilon=1e-300),
}


def ours_for(options: dict) -> dict:
    solver = options["solver"]
    kw: dict = dict(optimizer=solver, alpha=options["alpha"])
    if solver == "sgd":
        kw.update(momentum=options["momentum"],
                  nesterov=options["nesterovs_momentum"] if options["momentum"] else False)
        if options.get("learning_rate") == "invscaling":
            kw.update(schedule="invscaling", power_t=options["power_t"])
    else:
        kw.update(epsilon=1e-300)
    return kw


@pytest.mark.parametrize("case", list(SKLEARN_CASES))
def test_equals_scikit_learn_regressor(case: str) -> None:
    nn = pytest.importorskip("sklearn.neural_network")
    options = SKLEARN_CASES[case]
    x = np.random.default_rng(1).uniform(-1, 1, (1, 96))
    y = np.sin(3 * x)
    weights, biases = network([1, 16, 16, 1], 2)
    lr, epochs = (0.01 if options["solver"] == "adam" else 0.05), 60
    est = nn.MLPRegressor(
        hidden_layer_sizes=(16, 16), activation="relu", batch_size=32, shuffle=False,
        learning_rate_init=lr, warm_start=True, tol=0.0, n_iter_no_change=10**6, **options,
    )
    sklearn_fit(est, weights, biases, x.T, y.ravel(), epochs)
    model = bc.MLP(weights, biases)
    history = bc.fit(model, x, y, learning_rate=lr, epochs=epochs, batch_size=32, shuffle=False,
                     relu_grad_at_zero=0.0, **ours_for(options))
    assert_params(model, [c.T for c in est.coefs_], list(est.intercepts_), 1e-10)
    np.testing.assert_allclose(history.loss, est.loss_curve_[1:], rtol=1e-10)  # [0]: setup fit


def test_equals_scikit_learn_classifier() -> None:
    nn = pytest.importorskip("sklearn.neural_network")
    x = np.random.default_rng(3).standard_normal((4, 90))
    labels = (x[0] > 0).astype(int) + (x[1] * x[2] > 0)
    weights, biases = network([4, 16, 3], 4)
    est = nn.MLPClassifier(
        hidden_layer_sizes=(16,), activation="relu", solver="sgd", batch_size=30, shuffle=False,
        learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=True, alpha=1e-3,
        warm_start=True, tol=0.0, n_iter_no_change=10**6,
    )
    sklearn_fit(est, weights, biases, x.T, labels, 40)
    model = bc.MLP(weights, biases)
    history = bc.fit(model, x, labels, loss="cross_entropy", learning_rate=0.05, epochs=40,
                     batch_size=30, shuffle=False, momentum=0.9, nesterov=True, alpha=1e-3,
                     relu_grad_at_zero=0.0)
    assert_params(model, [c.T for c in est.coefs_], list(est.intercepts_), 1e-10)
    np.testing.assert_allclose(history.loss, est.loss_curve_[1:], rtol=1e-10)  # [0]: setup fit


# ----------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-nesterov", "adam"])
def test_equals_torch_optim(optimizer: str) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).uniform(-1, 1, (1, 64))
    y = np.sin(3 * x)
    weights, biases = network([1, 16, 16, 1], 6)
    alpha, B, lr, epochs, seed = 1e-3, 16, 0.01, 30, 8
    layers: list = []
    for k, (w, b) in enumerate(zip(weights, biases)):
        linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b.ravel()))
        layers += [linear] + ([torch.nn.ReLU()] if k + 1 < len(weights) else [])
    net = torch.nn.Sequential(*layers)
    groups = [  # our L2 is weight_decay = alpha / B on the weights only (equal minibatches)
        {"params": [m.weight for m in net if isinstance(m, torch.nn.Linear)],
         "weight_decay": alpha / B},
        {"params": [m.bias for m in net if isinstance(m, torch.nn.Linear)], "weight_decay": 0.0},
    ]
    if optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=lr, foreach=False)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=optimizer == "sgd-nesterov",
                              foreach=False)
    X, Y = torch.from_numpy(x.T.copy()), torch.from_numpy(y.T.copy())
    for epoch in range(epochs):
        order = bc.reference.permutation(np.arange(64), seed, 1 + epoch)  # our batch order
        for start in range(0, 64, B):
            batch = torch.from_numpy(order[start : start + B])
            opt.zero_grad()
            # our "mean" squared error: 0.5 * MSELoss(sum) / B
            loss = 0.5 * torch.nn.functional.mse_loss(net(X[batch]), Y[batch], reduction="sum")
            (loss / B).backward()
            opt.step()
    model = bc.MLP(weights, biases)
    kw = dict(optimizer="adam") if optimizer == "adam" else dict(
        momentum=0.9, nesterov=optimizer == "sgd-nesterov")
    bc.fit(model, x, y, learning_rate=lr, epochs=epochs, batch_size=B, seed=seed, alpha=alpha,
           relu_grad_at_zero=0.0, **kw)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert_params(model, [m.weight.detach().numpy() for m in linears],
                  [m.bias.detach().numpy() for m in linears], 1e-10)


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_lbfgs_equals_scikit_learn(kind: str) -> None:
    nn = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(9)
    if kind == "regressor":
        x = rng.uniform(-1, 1, (1, 80))
        y, target = np.sin(3 * x), np.sin(3 * x).ravel()
        weights, biases = network([1, 8, 8, 1], 10)
        est = nn.MLPRegressor(hidden_layer_sizes=(8, 8), solver="lbfgs", alpha=1e-3,
                              warm_start=True, tol=1e-6)
        loss = "squared_error"
    else:
        x = rng.standard_normal((4, 80))
        y = target = (x[0] > 0).astype(int) + (x[1] * x[2] > 0)
        weights, biases = network([4, 8, 3], 11)
        est = nn.MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", alpha=1e-3,
                               warm_start=True, tol=1e-6)
        loss = "cross_entropy"
    sklearn_fit(est, weights, biases, x.T, target, 30)
    model = bc.MLP(weights, biases)
    history = bc.fit_lbfgs(model, x, y, loss=loss, alpha=1e-3, max_iter=30, tol=1e-6,
                           relu_grad_at_zero=0.0)
    assert history.epochs == est.n_iter_ == 30
    assert history.loss[-1] == pytest.approx(est.loss_, rel=1e-12)
    assert_params(model, [c.T for c in est.coefs_], list(est.intercepts_), 1e-10)
