"""Native training (backprop_core.fit) against the reference's loop, step for step.

The two compute the same steps with different products and sums (the core's loops or BLAS, numpy's
BLAS), so they differ by rounding, which training then carries along: with learning rates that
keep training stable, after 1000 steps in float64 every parameter array stays within 1e-10 of the
reference, relative to the array's largest entry (an entry near 0 is judged against its array's
scale, not its own). Unstable training (learning rates near divergence) amplifies 1e-16
differences exponentially, as it would between any two correct implementations.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import backprop_core as bc
import numpy as np
import pytest
from backprop_core import reference


def network(dims: list[int], seed: int, dtype: type = np.float64) -> bc.MLP:
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((o, i)) * np.sqrt(2 / i) for i, o in zip(dims[:-1], dims[1:])]
    biases = [rng.standard_normal((o, 1)) * 0.1 for o in dims[1:]]
    return [w.astype(dtype) for w in weights], [b.astype(dtype) for b in biases]


def regression(N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).uniform(-1, 1, (1, N))
    return x, np.sin(3 * x)


def classes(N: int, seed: int, onehot: bool = False) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((4, N))
    labels = (x[0] > 0).astype(int) + (x[1] * x[2] > 0)
    return x, (np.eye(3)[:, labels] if onehot else labels)


def assert_same_training(model: bc.MLP, history: bc.FitHistory, expected: reference.Fit,
                         rtol: float) -> None:
    params = list(model.weights) + list(model.biases)
    for k, (a, e) in enumerate(zip(params, expected.all_weights + expected.all_biases)):
        assert a.dtype == e.dtype and a.shape == e.shape, f"parameter {k}"
        err = np.max(np.abs(a.astype(np.float64) - e)) / np.max(np.abs(e))
        assert err <= rtol, f"parameter {k}: {err:.3g} relative to its largest entry"
    h = expected.history
    np.testing.assert_allclose(history.loss, h.loss, rtol=rtol)
    np.testing.assert_allclose(history.validation_loss, h.validation_loss, rtol=rtol)
    assert (history.epochs, history.steps, history.stop_reason, history.best_epoch) == (
        h.epochs, h.steps, h.stop_reason, h.best_epoch
    )
    assert history.learning_rate == pytest.approx(h.learning_rate, rel=1e-15)


# 1000 steps each (250 or 300 samples, minibatches of 25 or 30 or 32, shuffled): both losses,
# both reductions, SGD with momentum and Nesterov, Adam, L2.
CASES = {
    "sgd-momentum-l2": ("reg", dict(learning_rate=0.01, momentum=0.9, alpha=1e-3, batch_size=32,
                                    epochs=125)),
    "sgd-nesterov-sum": ("reg", dict(learning_rate=0.01, momentum=0.9, nesterov=True,
                                     reduction="sum", batch_size=32, epochs=125)),
    "adam-l2": ("reg", dict(optimizer="adam", learning_rate=0.01, alpha=1e-3, batch_size=32,
                            epochs=125)),
    "ce-labels-sgd-momentum": ("cls", dict(loss="cross_entropy", learning_rate=0.02, momentum=0.9,
                                           alpha=1e-3, batch_size=30, epochs=100)),
    "ce-onehot-sgd-nesterov-sum": ("cls1", dict(loss="cross_entropy", reduction="sum",
                                                learning_rate=0.003, momentum=0.5, nesterov=True,
                                                batch_size=30, epochs=100)),
    "ce-labels-adam-l2": ("cls", dict(loss="cross_entropy", optimizer="adam", learning_rate=0.01,
                                      alpha=1e-3, batch_size=30, epochs=100)),
    "ce-onehot-adam-sum": ("cls1", dict(loss="cross_entropy", optimizer="adam",
                                                 reduction="sum", learning_rate=0.003,
                                                 batch_size=30, epochs=100)),
    # 12 inputs: the first layer's weight gradient from the transposed minibatch
    # (use_transposed_input; the 24x12 and 16x24 layers both take it)
    "wide-ce-adam-l2": ("wide", dict(loss="cross_entropy", optimizer="adam", learning_rate=0.01,
                                     alpha=1e-3, batch_size=30, epochs=100)),
    "wide-ce-sgd-momentum": ("wide", dict(loss="cross_entropy", learning_rate=0.02,
                                          momentum=0.9, batch_size=30, epochs=100)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_native_equals_reference_after_1000_steps(case: str) -> None:
    data, options = CASES[case]
    if data == "reg":
        x, y = regression(256, 1)
        dims = [1, 32, 32, 1]
    elif data == "wide":
        x = np.random.default_rng(2).standard_normal((12, 300))
        y = (x[0] > 0).astype(int) + (x[3] * x[7] > 0)
        dims = [12, 24, 16, 3]
    else:
        x, y = classes(300, 2, onehot=data == "cls1")
        dims = [4, 16, 16, 3]
    weights, biases = network(dims, 3)
    expected = reference.fit(x, y, weights, biases, seed=7, **options)
    assert expected.history.steps == 1000
    model = bc.MLP(weights, biases)
    history = bc.fit(model, x, y, seed=7, **options)
    assert_same_training(model, history, expected, 1e-10)
    assert history.loss[-1] < 0.5 * history.loss[0]  # it trains


@pytest.mark.parametrize(
    "options",
    [
        dict(early_stopping=True, n_iter_no_change=5, schedule="adaptive", momentum=0.9),
        dict(early_stopping=True, validation_fraction=0.3, momentum=0.5),
        dict(schedule="invscaling", power_t=0.25, momentum=0.9),
        dict(shuffle=False, batch_size=None, n_iter_no_change=3, tol=1e-3),
    ],
    ids=["early-adaptive", "early-best", "invscaling", "full-batch-plateau"],
)
def test_schedules_and_stopping_follow_the_reference(options: dict) -> None:
    x, y = regression(200, 4)
    weights, biases = network([1, 16, 16, 1], 5)
    kw = dict(learning_rate=0.05, epochs=60, batch_size=16, seed=9)
    kw.update(options)
    expected = reference.fit(x, y, weights, biases, **kw)
    model = bc.MLP(weights, biases)
    assert_same_training(model, bc.fit(model, x, y, **kw), expected, 1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_float32_follows_the_reference(optimizer: str) -> None:
    x, y = regression(256, 6)
    weights, biases = network([1, 16, 16, 1], 7, np.float32)
    kw = dict(optimizer=optimizer, learning_rate=0.01, momentum=0.9 * (optimizer == "sgd"),
              alpha=1e-3, batch_size=32, epochs=10)
    expected = reference.fit(x.astype(np.float32), y.astype(np.float32), weights, biases, **kw)
    model = bc.MLP(weights, biases)
    history = bc.fit(model, x.astype(np.float32), y.astype(np.float32), **kw)
    assert model.dtype == np.float32
    assert_same_training(model, history, expected, 2e-6)


def test_permutations_equal_the_reference() -> None:
    for n in (0, 1, 2, 7, 1000, 12345):
        for seed in (0, 1, 2**64 - 1):
            for stream in (0, 1, 99):
                np.testing.assert_array_equal(
                    bc._core.permutation(n, seed, stream),
                    reference.permutation(np.arange(n), seed, stream),
                )


def test_callback_stops_and_sees_the_history() -> None:
    x, y = regression(64, 8)
    weights, biases = network([1, 8, 1], 9)
    seen = []

    def callback(history: bc.FitHistory) -> bool:
        seen.append((history.epochs, list(history.loss)))
        return history.epochs == 3

    model = bc.MLP(weights, biases)
    history = bc.fit(model, x, y, epochs=20, batch_size=16, callback=callback)
    assert history.epochs == 3 and history.stop_reason == "callback" and history.steps == 12
    assert [e for e, _ in seen] == [1, 2, 3] and seen[-1][1] == history.loss
    expected = reference.fit(x, y, weights, biases, epochs=3, batch_size=16)
    assert_same_training(model, history, expected._replace(
        history=bc.FitHistory(**{**vars(expected.history), "stop_reason": "callback"})), 1e-12)


def test_callback_error_propagates_with_the_model_at_its_last_epoch() -> None:
    x, y = regression(64, 10)
    weights, biases = network([1, 8, 1], 11)

    def callback(history: bc.FitHistory) -> None:
        if history.epochs == 2:
            raise RuntimeError("stop here")

    model = bc.MLP(weights, biases)
    with pytest.raises(RuntimeError, match="stop here"):
        bc.fit(model, x, y, epochs=20, batch_size=16, callback=callback)
    expected = reference.fit(x, y, weights, biases, epochs=2, batch_size=16)
    for a, e in zip(list(model.weights) + list(model.biases),
                    expected.all_weights + expected.all_biases):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-15)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to the own process is POSIX")
def test_ctrl_c_stops_quickly_at_a_completed_step() -> None:
    x, y = regression(2000, 12)
    weights, biases = network([1, 32, 32, 1], 13)
    model = bc.MLP(weights, biases)
    sent = []

    def interrupt() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, whatever the run inherited: a shell starts a background job
    # with SIGINT ignored, and the fit below would then never end.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, interrupt)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            bc.fit(model, x, y, epochs=10**9, learning_rate=1e-3)  # full batch: a step an epoch
        latency = time.perf_counter() - sent[0]
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert latency < 0.5, f"KeyboardInterrupt came {latency:.3f} s after SIGINT"
    history = info.value.history
    assert history.stop_reason == "interrupt" and history.epochs >= 1
    # the model is at the end of the last completed step: the same as training that many steps
    again = bc.MLP(weights, biases)
    bc.fit(again, x, y, epochs=history.epochs, learning_rate=1e-3)
    for a, e in zip(list(model.weights) + list(model.biases),
                    list(again.weights) + list(again.biases)):
        np.testing.assert_array_equal(a, e)


def test_the_gil_is_released_while_training() -> None:
    x, y = regression(20000, 14)
    weights, biases = network([1, 64, 64, 1], 15)
    model = bc.MLP(weights, biases)
    ticks = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=count)
    thread.start()
    start = time.perf_counter()
    bc.fit(model, x, y, epochs=3)  # three long steps, one Python call between each
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    during = [t for t in ticks if start <= t <= start + elapsed]
    assert elapsed > 0.02 and len(during) >= 5, (elapsed, len(during))


def test_progress_bar_shows_the_loss(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    x, y = regression(32, 16)
    weights, biases = network([1, 4, 1], 17)
    bc.fit(bc.MLP(weights, biases), x, y, epochs=5, progress=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "loss=" in err


def test_bad_arguments_are_named() -> None:
    x, y = regression(16, 18)
    weights, biases = network([1, 4, 1], 19)
    model = bc.MLP(weights, biases)
    with pytest.raises(TypeError, match="net_input: expected dtype float64"):
        bc.fit(model, x.astype(np.float32), y)
    with pytest.raises(TypeError, match="model: expected a backprop_core.MLP"):
        bc.fit((weights, biases), x, y)
    with pytest.raises(ValueError, match=r"net_input: expected shape \(1, N\)"):
        bc.fit(model, np.ones((2, 16)), y)
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        bc.fit(model, x, y, optimizer="lbfgs")
    cls = bc.MLP(*network([1, 4, 3], 20))
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        bc.fit(cls, x, np.arange(16), loss="cross_entropy")
    saved = [p.copy() for p in list(model.weights) + list(model.biases)]
    with pytest.raises(ValueError, match="validation_fraction"):
        bc.fit(model, x, y, early_stopping=True, validation_fraction=0.99)  # holds out all 16
    assert all((a == b).all() for a, b in zip(list(model.weights) + list(model.biases), saved))


@pytest.mark.parametrize("loss", ["squared_error", "cross_entropy"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_native_objective_equals_the_reference(loss: str, reduction: str) -> None:
    # L-BFGS's objective: the loss of every sample plus alpha/2 ||W||^2 (over N for "mean")
    if loss == "squared_error":
        x, y = regression(50, 21)
        dims = [1, 8, 8, 1]
    else:
        x, y = classes(50, 22)
        dims = [4, 8, 3]
    weights, biases = network(dims, 23)
    alpha, N = 0.3, x.shape[1]
    value, dW, db = reference.gradients(x, y, weights, biases, loss=loss, reduction=reduction)
    scale = 1 / N if reduction == "mean" else 1
    value = value + 0.5 * alpha * sum(np.sum(w * w) for w in weights) * scale
    dW = [g + alpha * scale * w for g, w in zip(dW, weights)]
    out_W, out_b = [np.empty_like(w) for w in weights], [np.empty_like(b) for b in biases]
    Y = y if loss == "cross_entropy" else np.ascontiguousarray(y)
    got = bc._core.objective(weights, biases, x, Y, out_W, out_b, loss=loss, reduction=reduction,
                             alpha=alpha, relu_grad_at_zero=1.0)
    assert got == pytest.approx(value, rel=1e-13)
    for a, e in zip(out_W + out_b, dW + db):
        np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-14 * np.max(np.abs(e)))


def test_lbfgs_converges_and_reports() -> None:
    pytest.importorskip("scipy")
    x, y = regression(100, 24)
    weights, biases = network([1, 16, 16, 1], 25)
    model = bc.MLP(weights, biases)
    history = bc.fit_lbfgs(model, x, y, alpha=1e-4, max_iter=100, tol=1e-6)
    assert history.epochs == len(history.loss) and history.steps >= history.epochs
    assert history.loss[-1] < 0.05 * history.loss[0]
    final = reference.gradients(x, y, list(model.weights), list(model.biases), reduction="mean")
    penalty = 0.5 * 1e-4 * sum(np.sum(w * w) for w in model.weights) / 100
    assert float(final[0]) + penalty == pytest.approx(history.loss[-1], rel=1e-12)
