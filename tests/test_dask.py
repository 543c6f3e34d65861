"""backprop_core.dask on a real 2-worker cluster (processes): distributed gradients, L-BFGS and
data-parallel SGD/Adam against the single-process native results, prediction, a worker killed
mid-fit, the workers' thread counts and argument errors.

Skipped without the ``dask`` extra (``pip install ".[dask]"``: dask[array], distributed, scipy).
"""

from __future__ import annotations

import os
import signal

import backprop_core as bc
import numpy as np
import pytest

pytest.importorskip("dask.array", reason='needs the dask extra: pip install ".[dask]"')
pytest.importorskip("distributed", reason='needs the dask extra: pip install ".[dask]"')
pytest.importorskip("scipy", reason='needs the dask extra: pip install ".[dask]"')

import backprop_core.dask as bcd  # noqa: E402
import dask.array as da  # noqa: E402
import distributed  # noqa: E402
from scipy.optimize import minimize  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def _network(dims, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    W = [(rng.normal(size=(o, i)) / np.sqrt(i)).astype(dtype) for i, o in zip(dims, dims[1:])]
    b = [(0.1 * rng.normal(size=(o, 1))).astype(dtype) for o in dims[1:]]
    return W, b


def _data(D_0, D_o, N, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(D_0, N)).astype(dtype), rng.normal(size=(D_o, N)).astype(dtype)


def _rel(got, want):
    return float(np.max(np.abs(np.asarray(got) - want)) / max(np.max(np.abs(want)), 1e-300))


def _assert_close(got, want, rtol):
    assert got.loss.dtype == np.asarray(want.loss).dtype
    assert _rel(got.loss, want.loss) <= rtol, ("loss", got.loss, want.loss)
    for name, gs, ws in (("dW", got[1], want[1]), ("db", got[2], want[2])):
        assert len(gs) == len(ws)
        for k, (g, w) in enumerate(zip(gs, ws)):
            assert g.shape == w.shape and g.dtype == w.dtype, (name, k, g.shape, w.shape)
            assert _rel(g, w) <= rtol, (name, k, _rel(g, w))


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("chunks", range(1, 8))
def test_gradients_equal_the_single_process_ones(client, chunks):
    W, b = _network([5, 16, 16, 2], seed=chunks)
    X, Y = _data(5, 2, 701, seed=10 + chunks)
    want = bc.gradients(X, Y, W, b)
    model = bc.MLP(W, b)
    # uneven chunks: the last one shorter
    size = -(-X.shape[1] // chunks)
    Xd = da.from_array(X, chunks=(5, size))
    assert Xd.numblocks == (1, chunks)
    _assert_close(bcd.gradients(model, Xd, Y, client), want, 1e-12)  # Y numpy, rechunked
    Yd = da.from_array(Y, chunks=(2, 100))  # other chunks than X's
    _assert_close(bcd.gradients(model, Xd, Yd, client), want, 1e-12)
    # a scalar target and a per-output column broadcast in every chunk
    _assert_close(bcd.gradients(model, Xd, 0.5, client), bc.gradients(X, 0.5, W, b), 1e-12)
    col = np.array([[0.5], [-1.0]])
    _assert_close(bcd.gradients(model, Xd, col, client), bc.gradients(X, col, W, b), 1e-12)


def test_the_sum_is_a_fixed_tree_over_the_chunks(client):
    """The cluster's result is the bits of the chunks' gradients added pairwise level by level
    in chunk order, computed here in one process: whichever worker ran what, the same bits."""
    W, b = _network([3, 8, 1], seed=1)
    X, Y = _data(3, 1, 500, seed=2)
    sizes = (90, 60, 110, 40, 80, 70, 50)
    got = bcd.gradients(bc.MLP(W, b), da.from_array(X, chunks=(3, sizes)), Y, client)
    edges = np.cumsum((0, *sizes))
    parts = [
        [np.asarray(r[0]), *r[1], *r[2]]
        for r in (bc.gradients(X[:, i:j], Y[:, i:j], W, b) for i, j in zip(edges, edges[1:]))
    ]
    while len(parts) > 1:
        parts = [
            [u + v for u, v in zip(*parts[i : i + 2])] if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    want = parts[0]
    assert np.asarray(got.loss).tobytes() == want[0].tobytes()
    for g, w in zip(got[1] + got[2], want[1:]):
        assert g.tobytes() == w.tobytes()


def test_float32_and_features_in_several_chunks(client):
    W, b = _network([6, 12, 1], seed=3, dtype=np.float32)
    X, Y = _data(6, 1, 400, seed=4, dtype=np.float32)
    got = bcd.gradients(bc.MLP(W, b), da.from_array(X, chunks=(2, 150)), Y, client)
    assert got.loss.dtype == np.float32 and all(g.dtype == np.float32 for g in got[1] + got[2])
    _assert_close(got, bc.gradients(X, Y, W, b), 1e-5)


def test_each_worker_pool_is_sized_to_its_threads(client):
    W, b = _network([3, 4, 1], seed=5)
    X, Y = _data(3, 1, 64, seed=6)
    bcd.gradients(bc.MLP(W, b), da.from_array(X, chunks=(3, 16)), Y, client)
    threads = client.run(bc.get_num_threads)
    nthreads = client.nthreads()
    assert threads == nthreads and set(threads.values()) == {1}, threads


def test_no_client_starts_and_closes_a_local_cluster():
    W, b = _network([3, 4, 1], seed=7)
    X, Y = _data(3, 1, 50, seed=8)
    before = set(distributed.client._global_clients)
    got = bcd.gradients(bc.MLP(W, b), da.from_array(X, chunks=(3, 20)), Y)
    _assert_close(got, bc.gradients(X, Y, W, b), 1e-12)
    assert set(distributed.client._global_clients) <= before  # its client is gone


def test_predict_maps_the_forward_pass_over_the_chunks(client):
    W, b = _network([4, 10, 3], seed=9)
    X, _ = _data(4, 3, 333, seed=10)
    Xd = da.from_array(X, chunks=(4, 100))
    out = bcd.predict(bc.MLP(W, b), Xd)
    assert out.shape == (3, 333) and out.chunks == ((3,), Xd.chunks[1]) and out.dtype == X.dtype
    want = bc.forward(X, W, b)[0]
    np.testing.assert_array_equal(client.compute(out).result(), want)  # same native pass
    np.testing.assert_array_equal(out.compute(scheduler="sync"), want)
    # the parameters are one key of the graph, whatever the number of chunks
    params = [k for k in dict(out.dask) if not isinstance(k, tuple)]
    assert len(params) == 1


def test_bad_arguments_are_named(client):
    W, b = _network([3, 4, 1], seed=11)
    m = bc.MLP(W, b)
    X = da.zeros((3, 10), chunks=(3, 5))
    with pytest.raises(TypeError, match=r"^X: expected a dask array .* got ndarray"):
        bcd.gradients(m, np.zeros((3, 10)), 0.0, client)
    with pytest.raises(ValueError, match=r"^X: expected shape \(3, N\) \(the model's D_0\), got \(4, 10\)"):
        bcd.gradients(m, da.zeros((4, 10)), 0.0, client)
    with pytest.raises(TypeError, match=r"^X: expected dtype float64 \(the model's\), got float32"):
        bcd.gradients(m, X.astype(np.float32), 0.0, client)
    with pytest.raises(ValueError, match=r"^Y: expected a scalar or an array broadcastable to \(1, 10\), got shape \(2, 10\)"):
        bcd.gradients(m, X, np.zeros((2, 10)), client)
    with pytest.raises(TypeError, match=r"^client: expected a distributed.Client or None, got str"):
        bcd.gradients(m, X, 0.0, "tcp://127.0.0.1:1")
    with pytest.raises(TypeError, match=r"^model: expected a backprop_core.MLP, got list"):
        bcd.gradients([W, b], X, 0.0, client)
    with pytest.raises(ValueError, match="relu_grad_at_zero"):
        bcd.gradients(m, X, 0.0, client, relu_grad_at_zero=2.0)
    # targets without the samples' axis, or 1-D along it
    Xn = np.random.default_rng(0).normal(size=(3, 10))
    for Y in (np.array([0.5]), np.array([[0.5]]), np.linspace(0, 1, 10), np.linspace(0, 1, 10)[None]):
        got = bcd.gradients(m, da.from_array(Xn, chunks=(3, 4)), Y, client)
        _assert_close(got, bc.gradients(Xn, np.broadcast_to(Y, (1, 10)).copy(), W, b), 1e-12)
    # integer samples are converted to the model's dtype
    Xi = np.arange(30).reshape(3, 10) % 4
    _assert_close(bcd.gradients(m, da.from_array(Xi, chunks=(3, 4)), 1.0, client), bc.gradients(Xi.astype(float), 1.0, W, b), 1e-12)


# ----------------------------------------------------------------------------- L-BFGS


def _single_process_lbfgs(W, b, X, Y, alpha, tol):
    """scipy's L-BFGS-B on native single-process gradients, called as bc.fit_lbfgs calls it."""
    shapes = [p.shape for p in W + b]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    K, N = len(W), X.shape[1]

    def objective(theta):
        P = [theta[i:j].reshape(s) for i, j, s in zip(cuts, cuts[1:], shapes)]
        loss, dW, db = bc.gradients(X, Y, P[:K], P[K:])
        value = float(loss) + 0.5 * alpha * sum(float(np.sum(w * w)) for w in P[:K])
        g = [d + alpha * w for d, w in zip(dW, P[:K])] + list(db)
        return value / N, np.concatenate([x.ravel() for x in g]) / N

    theta = np.concatenate([p.ravel() for p in W + b])
    options = {"maxiter": 200, "maxfun": 15000, "gtol": tol}
    return minimize(objective, theta, method="L-BFGS-B", jac=True, options=options)


def test_lbfgs_matches_single_process_lbfgs(client):
    """A well-conditioned problem (a linear layer, L2): the same number of iterations and the
    same final loss as the package's single-process bc.fit_lbfgs, and as scipy's L-BFGS on
    native single-process gradients written out here."""
    W, b = _network([8, 2], seed=12)
    rng = np.random.default_rng(13)
    X = rng.normal(size=(8, 3000))
    A = np.array([[1.0, -2, 0.5, 0, 0, 1, 3, -1], [0.3, 0, 0, 1, -1, 2, 0, 0.5]])
    Y = A @ X + 0.1 * rng.normal(size=(2, 3000))
    tol = 1e-9
    want = _single_process_lbfgs(W, b, X, Y, 0.5, tol)
    model = bc.MLP(W, b)
    got = bcd.fit_lbfgs(model, da.from_array(X, chunks=(8, 700)), Y, client, alpha=0.5, tol=tol)
    assert want.success and got.stop_reason == str(want.message), (want.message, got.stop_reason)
    assert got.epochs == want.nit and 3 <= got.epochs < 100 and got.steps == want.nfev
    assert abs(got.loss[-1] - want.fun) <= 1e-8 * abs(want.fun), (got.loss[-1], want.fun)
    native = bc.fit_lbfgs(bc.MLP(W, b), X, Y, alpha=0.5, tol=tol)
    assert native.epochs == got.epochs and native.steps == got.steps
    assert abs(got.loss[-1] - native.loss[-1]) <= 1e-8 * abs(native.loss[-1])
    # the model holds the solution: its objective is the last one recorded, and its gradient is
    # a small fraction of the starting point's (scipy stopped on the objective's progress)
    def objective_and_gradient(Wk, bk):
        loss, dW, db = bc.gradients(X, Y, Wk, bk)
        value = (float(loss) + 0.25 * float(np.sum(Wk[0] ** 2))) / 3000
        return value, np.max(np.abs(np.concatenate([(dW[0] + 0.5 * Wk[0]).ravel(), db[0].ravel()]))) / 3000

    value, gradient = objective_and_gradient(model.weights, model.biases)
    assert abs(value - got.loss[-1]) <= 1e-12 * value
    assert gradient < 1e-5 * objective_and_gradient(W, b)[1]


# ----------------------------------------------------------------------------- SGD and Adam


def _single_process_fits(W, b, X, Y, **options):
    """The package's training in one process: the native bc.fit and reference.fit."""
    m = bc.MLP(W, b)
    bc.fit(m, X, Y, **options)
    return [(m.weights, m.biases), bc.reference.fit(X, Y, W, b, **options)[:2]]


def _assert_same_model(model, fits, rtol):
    for W, b in fits:
        for got, want in zip(model.weights + model.biases, list(W) + list(b)):
            assert _rel(got, want) <= rtol, _rel(got, want)


def test_sgd_equals_single_process_training_after_100_steps(client):
    W, b = _network([4, 16, 1], seed=14)
    X, _ = _data(4, 1, 400, seed=15)
    Y = np.abs(X[:1] - 0.5 * X[1:2]) + 0.2 * X[2:3]  # learnable
    options = dict(optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True, alpha=0.01,
                   epochs=10, batch_size=40, seed=3)  # fmt: skip
    model = bc.MLP(W, b)
    history = bcd.fit(model, da.from_array(X, chunks=(4, 200)), Y, client, **options)
    assert history.steps == 100 and history.epochs == 10 and history.stop_reason == "epochs"
    _assert_same_model(model, _single_process_fits(W, b, X, Y, **options), 1e-10)
    ref = bc.reference.fit(X, Y, W, b, **options).history
    np.testing.assert_allclose(history.loss, ref.loss, rtol=1e-10)
    assert history.loss[-1] < 0.7 * history.loss[0]  # it trained


@pytest.mark.parametrize(
    "options",
    [
        dict(optimizer="adam", learning_rate=0.01, alpha=0.1, reduction="sum", epochs=3, batch_size=64),
        dict(learning_rate=0.1, early_stopping=True, n_iter_no_change=1, schedule="adaptive",
             tol=0.5, epochs=4, batch_size=150, shuffle=False),
    ],
    ids=["adam-sum-l2", "early-stopping-adaptive"],
)  # fmt: skip
def test_adam_and_the_epoch_rules_equal_single_process_training(client, options):
    W, b = _network([4, 8, 2], seed=16)
    X, Y = _data(4, 2, 300, seed=17)
    model = bc.MLP(W, b)
    history = bcd.fit(model, da.from_array(X, chunks=(4, 110)), Y, client, seed=5, **options)
    _assert_same_model(model, _single_process_fits(W, b, X, Y, seed=5, **options), 1e-10)
    ref = bc.reference.fit(X, Y, W, b, seed=5, **options).history
    assert (history.steps, history.stop_reason, history.best_epoch) == (ref.steps, ref.stop_reason, ref.best_epoch)
    assert history.learning_rate == ref.learning_rate
    np.testing.assert_allclose(history.validation_loss, ref.validation_loss, rtol=1e-10)


def test_a_worker_killed_mid_fit_gives_the_same_model_or_a_clear_error(client):
    """A worker is killed (SIGKILL) after the second epoch: its chunks are lost and Dask
    recomputes them on the other worker (or a restarted one). The fit then ends with exactly
    the model of an undisturbed run, or raises a RuntimeError leaving the model as it was."""
    W, b = _network([4, 8, 1], seed=18)
    X, Y = _data(4, 1, 240, seed=19)
    options = dict(optimizer="sgd", learning_rate=0.05, momentum=0.5, epochs=4, batch_size=60, seed=1)
    Xd = da.from_array(X, chunks=(4, 60))
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    killed = []

    def callback(history):
        if history.epochs == 2:
            os.kill(pids[victim], signal.SIGKILL)
            killed.append(victim)

    model = bc.MLP(W, b)
    try:
        history = bcd.fit(model, Xd, Y, client, callback=callback, **options)
    except RuntimeError as e:
        assert "the model is unchanged" in str(e)
        _assert_same_model(model, [(W, b)], 0.0)
    else:
        assert history.steps == 16
        _assert_same_model(model, _single_process_fits(W, b, X, Y, **options), 1e-10)
    assert killed == [victim]
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the tests after this one
    assert os.getpid() not in client.run(os.getpid).values()
    assert pids[victim] not in client.run(os.getpid).values()


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # its cluster has a dashboard
def test_the_readme_example_runs():
    """README.md's Dask example (a ```py block: the docs test runs only ```python blocks, which
    need no extra) as written, with its own cluster."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Dask") :]
    code = re.search(r"^```py\n(.*?)^```$", section, re.MULTILINE | re.DOTALL).group(1)
    namespace = {"__name__": "__main__"}
    exec(compile(code, "README.md (Dask)", "exec"), namespace)
    X = namespace["X"].compute()
    Y = namespace["Y"].compute()
    model, history = namespace["model"], namespace["history"]
    assert history.steps == 10 and history.loss[-1] < history.loss[0]
    assert 1 <= namespace["result"].epochs <= 10
    np.testing.assert_allclose(namespace["net_output"], bc.forward(X, model.weights, model.biases)[0], rtol=1e-12)
    loss0 = float(namespace["loss"])
    assert loss0 > float(bc.gradients(X, Y, model.weights, model.biases).loss)  # it trained


@pytest.mark.parametrize("name", ["MLPRegressor", "MLPClassifier"])
def test_sklearn_estimators_learn_incrementally_inside_dask_ml(client, name):
    dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers", reason="needs dask-ml")
    bsk = pytest.importorskip("backprop_core.sklearn", reason="needs the sklearn extra")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 4))
    if name == "MLPRegressor":
        y, extra = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=600), {}
    else:
        y, extra = (X[:, 0] + X[:, 1] > 0).astype(int), {"classes": np.array([0, 1])}
    opts = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.01, random_state=0)
    inc = dask_ml_wrappers.Incremental(getattr(bsk, name)(**opts), shuffle_blocks=False)
    inc.fit(da.from_array(X, chunks=(150, 4)), da.from_array(y, chunks=150), **extra)
    # The same partial_fit calls on the same blocks, in order, in this process.
    seq = getattr(bsk, name)(**opts)
    for i in range(0, 600, 150):
        seq.partial_fit(X[i : i + 150], y[i : i + 150], **extra)
    for got, want in zip(inc.estimator_.coefs_ + inc.estimator_.intercepts_, seq.coefs_ + seq.intercepts_):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(np.asarray(inc.predict(X)), seq.predict(X), rtol=1e-12)
