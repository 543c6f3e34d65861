"""The reference's training loop against steps written out by hand, and its generator."""

from __future__ import annotations

import numpy as np
import pytest
from backprop_core import reference


def network(dims: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((o, i)) * np.sqrt(2 / i) for i, o in zip(dims[:-1], dims[1:])]
    biases = [rng.standard_normal((o, 1)) * 0.1 for o in dims[1:]]
    return weights, biases


def data(N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).uniform(-1, 1, (1, N))
    return x, np.sin(3 * x)


def test_splitmix64_published_values() -> None:
    # The first outputs of Vigna's splitmix64.c from state 0.
    rng = reference.SplitMix64.__new__(reference.SplitMix64)
    rng.state = 0
    assert [rng.next() for _ in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_uniform_rejects_to_stay_unbiased() -> None:
    # s = 2^63 + 1: about half the draws fall under the threshold and are redrawn; every result
    # must lie in [0, s), and both halves of the range appear.
    rng = reference.SplitMix64(5, 0)
    s = (1 << 63) + 1
    draws = [rng.uniform(s) for _ in range(2000)]
    assert all(0 <= d < s for d in draws)
    assert 0.4 < np.mean([d < s // 2 for d in draws]) < 0.6


def test_permutations_are_uniform() -> None:
    # Each of 4 items lands in each of 4 positions a quarter of the time (4000 shuffles).
    counts = np.zeros((4, 4))
    for stream in range(4000):
        order = reference.permutation(np.arange(4), 7, stream)
        assert sorted(order) == [0, 1, 2, 3]
        counts[order, np.arange(4)] += 1
    assert np.abs(counts / 4000 - 0.25).max() < 0.03


def test_full_batch_sgd_is_gradient_descent() -> None:
    x, y = data(20, 1)
    weights, biases = network([1, 8, 8, 1], 2)
    r = reference.fit(x, y, weights, biases, learning_rate=0.05, epochs=30, shuffle=False)
    W = [w.copy() for w in weights]
    b = [c.copy() for c in biases]
    losses = []
    for _ in range(30):
        value, dW, db = reference.gradients(x, y, W, b, reduction="mean")
        losses.append(float(value))
        W = [w - 0.05 * g for w, g in zip(W, dW)]
        b = [c - 0.05 * g for c, g in zip(b, db)]
    np.testing.assert_array_equal(r.history.loss, losses)
    for a, e in zip(r.all_weights + r.all_biases, W + b):
        np.testing.assert_array_equal(a, e)
    assert r.history.steps == 30 and r.history.stop_reason == "epochs"
    assert losses[-1] < 0.5 * losses[0]  # it learns


def test_minibatches_momentum_and_l2_by_hand() -> None:
    x, y = data(10, 3)
    weights, biases = network([1, 5, 1], 4)
    lr, mu, alpha = 0.1, 0.9, 0.01
    r = reference.fit(
        x, y, weights, biases, learning_rate=lr, epochs=2, batch_size=4, momentum=mu,
        nesterov=True, alpha=alpha, seed=11,
    )
    W, b = [w.copy() for w in weights], [c.copy() for c in biases]
    bufs = [np.zeros_like(p) for p in W + b]
    history = []
    for epoch in range(2):
        order = reference.permutation(np.arange(10), 11, 1 + epoch)
        total = 0.0
        for batch in (order[:4], order[4:8], order[8:]):
            value, dW, db = reference.gradients(x[:, batch], y[:, batch], W, b, reduction="mean")
            n = len(batch)
            total += (value + 0.5 * alpha * sum(np.sum(w * w) for w in W) / n) * n
            grads = [g + alpha / n * w for g, w in zip(dW, W)] + list(db)
            params = W + b
            for i, (p, g) in enumerate(zip(params, grads)):
                bufs[i] = mu * bufs[i] + g
                params[i] = p - lr * (g + mu * bufs[i])
            W, b = params[: len(W)], params[len(W) :]
        history.append(total / 10)
    np.testing.assert_allclose(r.history.loss, history, rtol=1e-14)
    for a, e in zip(r.all_weights + r.all_biases, W + b):
        np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-15)
    assert r.history.steps == 6


def test_adam_first_step_moves_by_the_learning_rate() -> None:
    # t = 1: m_hat = g and v_hat = g^2, so each parameter moves by lr * g / (|g| + eps).
    x, y = data(16, 5)
    weights, biases = network([1, 6, 1], 6)
    r = reference.fit(x, y, weights, biases, optimizer="adam", learning_rate=1e-3, epochs=1)
    _, dW, db = reference.gradients(x, y, weights, biases, reduction="mean")
    for p, p0, g in zip(r.all_weights + r.all_biases, weights + biases, dW + db):
        np.testing.assert_allclose(p0 - p, 1e-3 * g / (np.abs(g) + 1e-8), rtol=1e-12, atol=1e-18)


def test_adam_matches_its_equations_over_many_steps() -> None:
    x, y = data(12, 7)
    weights, biases = network([1, 4, 1], 8)
    b1, b2, eps, lr = 0.8, 0.99, 1e-6, 0.01
    r = reference.fit(
        x, y, weights, biases, optimizer="adam", learning_rate=lr, epochs=40, batch_size=5,
        beta1=b1, beta2=b2, epsilon=eps, shuffle=False, loss="squared_error", reduction="sum",
    )
    params = [p.copy() for p in weights + biases]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = 0
    for _ in range(40):
        for start in (0, 5, 10):
            cols = slice(start, start + 5)
            _, dW, db = reference.gradients(x[:, cols], y[:, cols], params[:2], params[2:])
            t += 1
            for i, g in enumerate(dW + db):
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g**2
                m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
                params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    for a, e in zip(r.all_weights + r.all_biases, params):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-15)


def test_invscaling_follows_scikit_learn() -> None:
    x, y = data(8, 9)
    weights, biases = network([1, 3, 1], 10)
    r = reference.fit(
        x, y, weights, biases, epochs=3, schedule="invscaling", power_t=0.25, learning_rate=0.2
    )
    assert r.history.learning_rate == 0.2 / (3 * 8 + 1) ** 0.25  # 24 samples seen, plus 1


def test_plateau_rule_and_adaptive_rate() -> None:
    # A learning rate of 0: the loss never improves, so the rule fires after n_iter_no_change + 1
    # epochs; "adaptive" divides the rate by 5 each time until it is at most 1e-6.
    x, y = data(8, 11)
    weights, biases = network([1, 3, 1], 12)
    r = reference.fit(x, y, weights, biases, learning_rate=0.0, epochs=50, n_iter_no_change=3)
    assert r.history.stop_reason == "no_improvement" and r.history.epochs == 5
    r = reference.fit(
        x, y, weights, biases, learning_rate=1e-5, epochs=100, n_iter_no_change=2, tol=10.0,
        schedule="adaptive",
    )
    # The first epoch sets the best; the rule fires after epochs 4, 7 and 10 (3 more epochs of no
    # improvement each time): 1e-5 -> 2e-6 -> 4e-7, then 4e-7 <= 1e-6 stops.
    assert r.history.epochs == 10 and r.history.stop_reason == "no_improvement"
    assert r.history.learning_rate == 1e-5 / 5 / 5


def test_early_stopping_keeps_the_best_epoch() -> None:
    x, y = data(40, 13)
    weights, biases = network([1, 16, 1], 14)
    r = reference.fit(
        x, y, weights, biases, learning_rate=0.5, epochs=30, batch_size=8, momentum=0.9,
        early_stopping=True, validation_fraction=0.25, seed=3,
    )
    train, val = reference.held_out(40, 0.25, 3)
    assert len(val) == 10 and sorted(np.concatenate([train, val])) == list(range(40))
    best = int(np.argmin(r.history.validation_loss))
    assert r.history.best_epoch == best and len(r.history.validation_loss) == 30
    out = reference.forward(x[:, val], r.all_weights, r.all_biases)[0]
    kept = reference.squared_error(out, y[:, val], "mean")[0]
    assert kept == r.history.validation_loss[best]


def test_cross_entropy_training_learns_labels() -> None:
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 120))
    labels = (x[0] > 0).astype(int) + (x[1] > 0).astype(int)  # 3 classes
    weights, biases = network([2, 16, 3], 16)
    r = reference.fit(
        x, labels, weights, biases, loss="cross_entropy", optimizer="adam", learning_rate=0.02,
        epochs=60, batch_size=16,
    )
    out = reference.forward(x, r.all_weights, r.all_biases)[0]
    assert np.mean(out.argmax(axis=0) == labels) > 0.9
    assert r.history.loss[-1] < 0.3 * r.history.loss[0]


def test_inputs_are_not_written() -> None:
    x, y = data(6, 17)
    weights, biases = network([1, 3, 1], 18)
    saved = [p.copy() for p in weights + biases]
    reference.fit(x, y, weights, biases, epochs=2)
    assert all((a == b).all() for a, b in zip(weights + biases, saved))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer: expected one of"),
        ({"schedule": "cosine"}, "schedule: expected one of"),
        ({"schedule": "adaptive"}, "schedule: 'adaptive' needs n_iter_no_change"),
        ({"batch_size": 0}, "batch_size: expected an int >= 1"),
        ({"momentum": 1.0}, r"momentum: expected a number in \[0.0, 1.0\)"),
        ({"nesterov": True}, "nesterov: needs momentum > 0"),
        ({"early_stopping": True, "validation_fraction": 0.0}, "validation_fraction"),
        ({"loss": "hinge"}, "loss: expected one of"),
    ],
)
def test_bad_options_are_named(kwargs: dict, message: str) -> None:
    x, y = data(6, 19)
    weights, biases = network([1, 3, 1], 20)
    with pytest.raises(ValueError, match=message):
        reference.fit(x, y, weights, biases, **kwargs)
