"""backprop_core on Dask: gradients, training and prediction over samples that live on a cluster.

Needs the ``dask`` extra (``pip install "backprop_core[dask]"``: ``dask[array]``,
``distributed`` and scipy, for L-BFGS). The data are dask arrays in the package's column layout, ``X`` of shape
(D_0, N) and ``Y`` of shape (D_o, N) (or a scalar), chunked along the samples; they stay on the
workers. Only parameters and gradients travel:

* the parameters reach every worker once per call or step (``client.scatter(...,
  broadcast=True)``), never embedded in the task graph;
* each chunk's loss and gradients are computed natively (:func:`backprop_core.gradients`) by the
  worker holding the chunk, then summed by a tree reduction in a fixed order (chunk 0 + 1,
  2 + 3, ..., then the pairs' sums likewise), so the result is the same bits for any number of
  workers (and equals the single-process sum to rounding);
* each task sizes the worker's native pool to the worker's threads
  (:func:`backprop_core.set_num_threads`): single-threaded workers (the default cluster's, and
  Dask's advice for native code with a pool of its own) run one busy thread each, so two
  workers on two cores never run four. (A worker with n threads running n native tasks at once
  may briefly use up to 2n - 1: one task holds the pool, the others run on their own thread.)

``client=None`` starts a ``distributed.LocalCluster(processes=True, threads_per_worker=1)`` with
one worker per CPU this process may use, and closes it when the call returns (a few seconds
each time: pass a ``distributed.Client`` to reuse one; any client works unchanged). Its worker
processes are spawned, so a script calling this must guard its entry point with
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
    import distributed
except ImportError as e:  # pragma: no cover - exercised where the extra is missing
    raise ImportError(
        "backprop_core.dask needs dask[array] and distributed: "
        'pip install "backprop_core[dask]"'
    ) from e

from . import _api
from ._results import Gradients
from ._threads import get_num_threads, set_num_threads

__all__ = ["fit", "fit_lbfgs", "gradients", "predict"]


# ----------------------------------------------------------------------------- the cluster


@contextlib.contextmanager
def _session(client: Any) -> Iterator[distributed.Client]:
    """The client to use: the one given, or a local cluster started now and closed on exit."""
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(
                f"client: expected a distributed.Client or None, got {type(client).__name__}"
            )
        yield client
        return
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with distributed.LocalCluster(
        processes=True,
        n_workers=max(1, workers or 1),
        threads_per_worker=1,
        dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as own:
        yield own


def _fit_worker_threads() -> None:
    """Size this worker's native pool to the worker's threads (once; cheap after)."""
    try:
        n = distributed.get_worker().state.nthreads
    except ValueError:  # not on a worker (a local scheduler)
        return
    if get_num_threads() != n:
        set_num_threads(n)


# ----------------------------------------------------------------------------- the arguments


def _parameters(model: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Copies of the model's parameters (the model is written only at the end of a fit)."""
    try:
        weights, biases = list(model.weights), list(model.biases)
    except AttributeError:
        raise TypeError(
            f"model: expected a backprop_core.MLP, got {type(model).__name__}"
        ) from None
    if not weights:
        raise ValueError("model: has no layers")
    return [np.array(w) for w in weights], [np.array(b) for b in biases]


def _samples(X: Any, dtype: np.dtype, D_0: int) -> da.Array:
    """X as a dask array (D_0, N) of the model's dtype, one chunk along the features."""
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X: expected a dask array of shape (D_0, N) chunked along the samples, got "
            f"{type(X).__name__} (wrap numpy data with dask.array.from_array)"
        )
    if X.ndim != 2 or X.shape[0] != D_0:
        raise ValueError(f"X: expected shape ({D_0}, N) (the model's D_0), got {X.shape}")
    if X.dtype.kind == "f" and X.dtype != dtype:
        raise TypeError(f"X: expected dtype {dtype} (the model's), got {X.dtype}")
    if X.dtype.kind not in "fiub":
        raise TypeError(f"X: expected real numbers, got dtype {X.dtype}")
    if X.dtype != dtype:
        X = X.astype(dtype)
    if X.numblocks[0] != 1:
        X = X.rechunk({0: -1})
    return X


def _targets(Y: Any, X: da.Array, dtype: np.dtype, D_o: int) -> da.Array | np.ndarray:
    """Y chunked as X's samples (a dask array), or a small constant every chunk broadcasts."""
    N = X.shape[1]
    if isinstance(Y, da.Array):
        if Y.dtype.kind == "f" and Y.dtype != dtype:
            raise TypeError(f"Y: expected dtype {dtype} (the model's), got {Y.dtype}")
        shape = Y.shape
    else:
        Y = np.asarray(Y)
        if Y.dtype.kind == "f" and Y.dtype != dtype:
            raise TypeError(f"Y: expected dtype {dtype} (the model's), got {Y.dtype}")
        shape = Y.shape
    if Y.dtype.kind not in "fiub":
        raise TypeError(f"Y: expected real numbers, got dtype {Y.dtype}")
    try:
        if np.broadcast_shapes(shape, (D_o, N)) != (D_o, N):
            raise ValueError
    except ValueError:
        raise ValueError(
            f"Y: expected a scalar or an array broadcastable to ({D_o}, {N}), got shape {shape}"
        ) from None
    if len(shape) == 2 and shape[1] == N and N != 1 or len(shape) == 1 and shape[0] == N != 1:
        Y = da.broadcast_to(da.asarray(Y).astype(dtype), (D_o, N))
        return Y.rechunk(((D_o,), X.chunks[1]))
    # no axis of samples: the same small array for every chunk
    if not shape:
        return np.asarray(Y, dtype=dtype)
    return np.ascontiguousarray(np.broadcast_to(np.asarray(Y, dtype=dtype), (D_o, 1)))


# ----------------------------------------------------------------------------- the tasks


def _chunk_gradients(
    params: tuple[list[np.ndarray], list[np.ndarray]],
    x: np.ndarray,
    y: Any,
    columns: np.ndarray | None,
    relu_grad_at_zero: float,
) -> list[np.ndarray]:
    """One chunk's (or the chosen columns') summed loss and gradients, flat: [loss, *dW, *db]."""
    _fit_worker_threads()
    if columns is not None:
        x = np.ascontiguousarray(x[:, columns])
        if np.ndim(y) == 2 and y.shape[1] != 1:
            y = np.ascontiguousarray(y[:, columns])
    W, b = params
    loss, dW, db = _api.gradients(x, y, W, b, relu_grad_at_zero=relu_grad_at_zero)
    return [np.asarray(loss), *dW, *db]


def _add(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
    return [u + v for u, v in zip(a, b)]


def _tree_sum(parts: list[Any]) -> Any:
    """Pairs summed level by level in chunk order: the same order whatever runs them."""
    if not parts:
        raise ValueError("X: no samples to sum over")
    add = dask.delayed(_add, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i : i + 2]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]


def _broadcast(client: distributed.Client, params: Any, attempts: int = 10) -> Any:
    """The parameters scattered to every worker: one future. A worker that died and is not yet
    removed by the scheduler breaks a broadcast: it is tried again, a little later."""
    for attempt in range(attempts):
        try:
            (future,) = client.scatter([params], broadcast=True, hash=False)
            return future
        except (OSError, distributed.comm.CommClosedError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * 2**attempt)


# What a step raises when workers die faster than Dask can recompute (a task that killed its
# workers too often, a result or broadcast lost with its last holder, a closed connection).
_LOST = (
    distributed.scheduler.KilledWorker,
    distributed.comm.CommClosedError,
    concurrent.futures.CancelledError,
    asyncio.CancelledError,
)


class _Data:
    """X and Y's chunks as delayed objects, with each chunk's first sample."""

    def __init__(self, X: da.Array, Y: da.Array | np.ndarray) -> None:
        self.xs = list(X.to_delayed().ravel())
        self.ys = list(Y.to_delayed().ravel()) if isinstance(Y, da.Array) else [Y] * len(self.xs)
        self.starts = np.concatenate([[0], np.cumsum(X.chunks[1])])

    def sum_gradients(
        self,
        client: distributed.Client,
        params: tuple[list[np.ndarray], list[np.ndarray]],
        relu_grad_at_zero: float,
        columns: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Summed [loss, *dW, *db] over all samples, or over the sorted sample indices given:
        the parameters broadcast once, one task per chunk that holds any of the samples."""
        future = _broadcast(client, params)
        try:
            parts = []
            for c, (x, y) in enumerate(zip(self.xs, self.ys)):
                lo, hi = self.starts[c], self.starts[c + 1]
                local = None
                if columns is not None:
                    local = columns[np.searchsorted(columns, lo) : np.searchsorted(columns, hi)] - lo
                    if len(local) == 0:
                        continue
                    if len(local) == hi - lo:  # the whole chunk, in order
                        local = None
                task = dask.delayed(_chunk_gradients, pure=True)
                parts.append(task(future, x, y, local, relu_grad_at_zero))
            return client.compute(_tree_sum(parts)).result()
        finally:
            future.release()


def _unflat(flat: list[np.ndarray], K: int) -> Gradients:
    return Gradients(flat[0][()], list(flat[1 : 1 + K]), list(flat[1 + K :]))


# ----------------------------------------------------------------------------- public


def gradients(
    model: Any,
    X: Any,
    Y: Any,
    client: distributed.Client | None = None,
    *,
    relu_grad_at_zero: float = 1.0,
) -> Gradients:
    """Loss and gradients of a model over samples on a Dask cluster, summed over the samples.

    The same result as ``backprop_core.gradients(X, Y, model.weights, model.biases)`` on the
    whole data (to rounding: the chunks' sums are added in a fixed tree order, so the bits do not
    depend on the number of workers). Each chunk is computed by the worker that holds or makes
    it and then released, so the data never need to fit in one worker's memory.

    Parameters
    ----------
    model : backprop_core.MLP
        The network (its parameters are broadcast to the workers).
    X : dask.array.Array, shape (D_0, N)
        Samples as columns, chunked along the samples (chunks along the features are joined).
        Of the model's float dtype, or integers (converted).
    Y : float or array_like or dask.array.Array
        Targets broadcastable to (D_o, N): a scalar, a small array without the samples' axis,
        or a (dask or numpy) array with it (rechunked to X's chunks).
    client : distributed.Client, optional
        The cluster to use; None starts a local one for this call and closes it (see the
        module's documentation).
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.

    Returns
    -------
    Gradients
        ``(loss, all_dl_dweights, all_dl_dbiases)`` as :func:`backprop_core.gradients` returns.
    """
    W, b = _parameters(model)
    _api.check_relu_grad_at_zero(relu_grad_at_zero)
    Xd = _samples(X, W[0].dtype, W[0].shape[1])
    Yd = _targets(Y, Xd, W[0].dtype, W[-1].shape[0])
    with _session(client) as c:
        flat = _Data(Xd, Yd).sum_gradients(c, (W, b), float(relu_grad_at_zero))
    return _unflat(flat, len(W))


def _predict_block(x: np.ndarray, params: tuple[list[np.ndarray], list[np.ndarray]]) -> np.ndarray:
    _fit_worker_threads()
    return np.asarray(_api.forward(x, *params).net_output)


def predict(model: Any, X: Any) -> da.Array:
    """The network's outputs for samples in a dask array, lazily, chunk by chunk.

    Parameters
    ----------
    model : backprop_core.MLP
        The network; its parameters are copied now and enter the graph once (one key every
        chunk's task reads), not once a chunk.
    X : dask.array.Array, shape (D_0, N)
        Samples as columns, chunked along the samples.

    Returns
    -------
    dask.array.Array, shape (D_o, N)
        ``net_output`` of :func:`backprop_core.forward`, chunked as X's samples (compute it
        with any scheduler; on a distributed cluster each chunk is computed where it lies).
    """
    W, b = _parameters(model)
    Xd = _samples(X, W[0].dtype, W[0].shape[1])
    params = dask.delayed((W, b), pure=True, traverse=False)
    return da.map_blocks(
        _predict_block, Xd, params, dtype=W[0].dtype, chunks=((W[-1].shape[0],), Xd.chunks[1])
    )


def fit_lbfgs(
    model: Any,
    X: Any,
    Y: Any,
    client: distributed.Client | None = None,
    *,
    loss: str = "squared_error",
    reduction: str = "mean",
    alpha: float = 0.0,
    max_iter: int = 200,
    max_fun: int = 15000,
    tol: float = 1e-4,
    relu_grad_at_zero: float = 1.0,
) -> Any:
    """Full-batch L-BFGS over samples on a Dask cluster: :func:`backprop_core.fit_lbfgs` with
    one distributed loss and gradient per evaluation.

    The objective is the package's (:func:`backprop_core.fit`'s with every sample in one batch):
    ``sum 0.5 (f - y)^2 + alpha/2 sum_k ||W_k||^2``, the whole divided by N for
    ``reduction="mean"``; scipy's L-BFGS-B is called as :func:`backprop_core.fit_lbfgs` calls it
    (``maxiter``, ``maxfun``, ``gtol=tol``), so the path is the single-process one up to the
    rounding of the sums. X and Y are persisted on the workers for the run; the parameters are
    broadcast once per evaluation.

    Parameters
    ----------
    model : backprop_core.MLP
        The starting point; on return it holds the solution (in its dtype).
    X : dask.array.Array, shape (D_0, N)
        Samples as columns, chunked along the samples.
    Y : float or array_like or dask.array.Array
        Targets broadcastable to (D_o, N), as for :func:`gradients`.
    client : distributed.Client, optional
        The cluster; None starts a local one for this call (see the module's documentation).
    loss : {"squared_error"}, default "squared_error"
        Only the squared error is computed natively on the workers.
    reduction : {"mean", "sum"}, default "mean"
        The loss averaged over the samples, or summed.
    alpha : float, default 0.0
        L2 penalty on the weights (not the biases).
    max_iter : int, default 200
        L-BFGS iterations at most.
    max_fun : int, default 15000
        Objective evaluations at most.
    tol : float, default 1e-4
        Stop when the largest gradient entry is at most ``tol`` (scipy's ``gtol``).
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.

    Returns
    -------
    FitHistory
        ``loss`` holds the objective after each iteration, ``epochs`` the iterations, ``steps``
        the objective evaluations; ``stop_reason`` is scipy's message.
    """
    from scipy.optimize import minimize

    from ._train_results import FitHistory

    W, b = _parameters(model)
    _api.check_relu_grad_at_zero(relu_grad_at_zero)
    if loss != "squared_error":
        raise ValueError(f"loss: only 'squared_error' is computed on Dask workers, got {loss!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0 <= alpha < np.inf):
        raise ValueError(f"alpha: expected a number in [0, inf), got {alpha!r}")
    for name, v in (("max_iter", max_iter), ("max_fun", max_fun)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    dtype = W[0].dtype
    Xd = _samples(X, dtype, W[0].shape[1])
    Yd = _targets(Y, Xd, dtype, W[-1].shape[0])
    N = Xd.shape[1]
    scale = 1.0 / N if reduction == "mean" else 1.0
    shapes = [p.shape for p in W + b]
    cuts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    K = len(W)
    history = FitHistory(learning_rate=0.0)

    def unflat(theta: np.ndarray) -> list[np.ndarray]:
        return [theta[i:j].reshape(s).astype(dtype) for i, j, s in zip(cuts, cuts[1:], shapes)]

    def record(intermediate_result: Any) -> None:
        history.loss.append(float(intermediate_result.fun))
        history.epochs += 1

    with _session(client) as c:
        Xd, Yd = (c.persist(Xd), c.persist(Yd) if isinstance(Yd, da.Array) else Yd)
        data = _Data(Xd, Yd)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            params = unflat(theta)
            flat = data.sum_gradients(c, (params[:K], params[K:]), float(relu_grad_at_zero))
            Wt = params[:K]
            value = float(flat[0]) + 0.5 * alpha * sum(float(np.sum(w * w)) for w in Wt)
            grads = [g + alpha * w for g, w in zip(flat[1 : 1 + K], Wt)] + list(flat[1 + K :])
            history.steps += 1
            return value * scale, np.concatenate([g.ravel() for g in grads]).astype(np.float64) * scale

        theta0 = np.concatenate([p.ravel() for p in W + b]).astype(np.float64)
        result = minimize(
            objective, theta0, method="L-BFGS-B", jac=True, callback=record,
            options={"maxiter": int(max_iter), "maxfun": int(max_fun), "gtol": float(tol)},
        )  # fmt: skip
    _write(model, unflat(result.x))
    history.stop_reason = str(result.message)
    return history


def _write(model: Any, params: list[np.ndarray]) -> None:
    for p, v in zip(list(model.weights) + list(model.biases), params):
        p[...] = v


def fit(
    model: Any,
    X: Any,
    Y: Any,
    client: distributed.Client | None = None,
    *,
    loss: str = "squared_error",
    reduction: str = "mean",
    optimizer: str = "sgd",
    learning_rate: float = 0.01,
    epochs: int = 10,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    momentum: float = 0.0,
    nesterov: bool = False,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    alpha: float = 0.0,
    schedule: str = "constant",
    power_t: float = 0.5,
    early_stopping: bool = False,
    validation_fraction: float = 0.1,
    n_iter_no_change: int | None = None,
    tol: float = 1e-4,
    relu_grad_at_zero: float = 1.0,
    callback: Callable[[Any], Any] | None = None,
) -> Any:
    """Synchronous data-parallel SGD or Adam over samples on a Dask cluster.

    The same training as :func:`backprop_core.fit` with the same options (same objective,
    optimizer updates, schedules, plateau rule, early stopping and shuffles, from
    :mod:`backprop_core.reference`'s definitions), the gradient of each minibatch summed over
    the workers: each step broadcasts the parameters once, every chunk holding samples of the
    minibatch computes their gradients, one tree reduction sums them, and the step is taken
    here. It pays for large minibatches (see benchmarks/README.md's Dask section).

    Parameters
    ----------
    model : backprop_core.MLP
        The network; written once, when training ends (unchanged if it raises).
    X : dask.array.Array, shape (D_0, N)
        Samples as columns, chunked along the samples; persisted on the workers for the run.
    Y : float or array_like or dask.array.Array
        Targets broadcastable to (D_o, N), as for :func:`gradients`.
    client : distributed.Client, optional
        The cluster; None starts a local one for this call (see the module's documentation).
    loss : {"squared_error"}, default "squared_error"
        Only the squared error is computed natively on the workers.
    reduction : {"mean", "sum"}, default "mean"
        As :func:`backprop_core.fit`.
    optimizer : {"sgd", "adam"}, default "sgd"
        As :func:`backprop_core.fit`.
    learning_rate : float, default 0.01
        As :func:`backprop_core.fit`.
    epochs : int, default 10
        As :func:`backprop_core.fit`.
    batch_size : int or None, default None
        As :func:`backprop_core.fit` (None: full batch).
    shuffle : bool, default True
        As :func:`backprop_core.fit`.
    seed : int, default 0
        As :func:`backprop_core.fit`.
    momentum : float, default 0.0
        As :func:`backprop_core.fit`.
    nesterov : bool, default False
        As :func:`backprop_core.fit`.
    beta1, beta2, epsilon : float
        As :func:`backprop_core.fit`.
    alpha : float, default 0.0
        As :func:`backprop_core.fit`.
    schedule : {"constant", "invscaling", "adaptive"}, default "constant"
        As :func:`backprop_core.fit`.
    power_t : float, default 0.5
        As :func:`backprop_core.fit`.
    early_stopping : bool, default False
        As :func:`backprop_core.fit` (the held-out loss is computed on the workers too).
    validation_fraction : float, default 0.1
        As :func:`backprop_core.fit`.
    n_iter_no_change : int or None, default None
        As :func:`backprop_core.fit`.
    tol : float, default 1e-4
        As :func:`backprop_core.fit`.
    relu_grad_at_zero : float, default 1.0
        As :func:`backprop_core.fit`.
    callback : callable, optional
        ``callback(history)`` after each epoch; a true result stops training.

    Returns
    -------
    FitHistory
        As :func:`backprop_core.fit` returns.

    Raises
    ------
    RuntimeError
        When the cluster cannot finish a step (a task's workers kept dying); the model is left
        unchanged. A worker lost mid-fit is otherwise survived: Dask recomputes its chunks
        elsewhere and the result is the same bits.
    """
    from . import reference as ref
    from ._train_results import FitHistory

    W, b = _parameters(model)
    dtype = W[0].dtype
    Xd = _samples(X, dtype, W[0].shape[1])
    N = Xd.shape[1]
    o = {k: v for k, v in locals().items() if k in _FIT_OPTIONS}
    ref._check_fit_options(o, N)
    if loss != "squared_error":
        raise ValueError(f"loss: only 'squared_error' is computed on Dask workers, got {loss!r}")
    _api.check_relu_grad_at_zero(relu_grad_at_zero)
    Yd = _targets(Y, Xd, dtype, W[-1].shape[0])
    params = W + b
    K = len(W)
    history = FitHistory(learning_rate=float(learning_rate))

    train, validation = np.arange(N), np.arange(0)
    if early_stopping:
        train, validation = ref.held_out(N, validation_fraction, seed)
    n_train = len(train)
    B = n_train if batch_size is None else batch_size

    buffers = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    lr = learning_rate
    t = 0
    best, no_improvement = np.inf, 0
    best_params = [p.copy() for p in params]
    rgz = float(relu_grad_at_zero)

    with _session(client) as c:
        Xd, Yd = (c.persist(Xd), c.persist(Yd) if isinstance(Yd, da.Array) else Yd)
        data = _Data(Xd, Yd)

        def summed(columns: np.ndarray | None) -> list[np.ndarray]:
            try:
                return data.sum_gradients(c, (params[:K], params[K:]), rgz, columns)
            except _LOST as e:
                raise RuntimeError(
                    f"fit: the cluster could not finish step {t + 1} ({type(e).__name__}: {e}); "
                    "the model is unchanged"
                ) from e

        for epoch in range(epochs):
            order = train[_permutation(n_train, seed, 1 + epoch)] if shuffle else train
            total = 0.0
            for start in range(0, n_train, max(B, 1)):
                batch = order[start : start + B]
                flat = summed(None if len(batch) == N else np.sort(batch))
                scale = 1 / len(batch) if reduction == "mean" else 1
                value = flat[0] * scale
                Wt = params[:K]
                dW = [g * scale + (alpha * scale) * w for g, w in zip(flat[1 : 1 + K], Wt)]
                db = [g * scale for g in flat[1 + K :]]
                penalty = 0.5 * alpha * sum(float(np.sum(w * w)) for w in Wt) * scale
                total += (float(value) + penalty) * (len(batch) if reduction == "mean" else 1)
                t += 1
                if optimizer == "sgd":
                    ref._sgd_step(params, dW + db, buffers, lr, momentum, nesterov)
                else:
                    ref._adam_step(params, dW + db, buffers, second, t, lr, beta1, beta2, epsilon)
            history.loss.append(total / n_train if reduction == "mean" else total)
            history.epochs, history.steps = epoch + 1, t

            if early_stopping:
                held = float(summed(validation)[0])
                watched = held / len(validation) if reduction == "mean" else held
                history.validation_loss.append(watched)
            else:
                watched = history.loss[-1]
            no_improvement = no_improvement + 1 if watched > best - tol else 0
            if watched < best:
                best = watched
                if early_stopping:
                    best_params = [p.copy() for p in params]
                    history.best_epoch = epoch
            if schedule == "invscaling":
                lr = learning_rate / float((epoch + 1) * n_train + 1) ** power_t
            if n_iter_no_change is not None and no_improvement > n_iter_no_change:
                if schedule == "adaptive" and lr > 1e-6:
                    lr = lr / 5
                    no_improvement = 0
                else:
                    history.stop_reason = "no_improvement"
                    break
            if callback is not None and callback(history):
                history.stop_reason = "callback"
                break

    if early_stopping and history.best_epoch is not None:
        params = best_params
    history.learning_rate = float(lr)
    _write(model, params)
    return history


_FIT_OPTIONS = (
    "loss", "reduction", "optimizer", "learning_rate", "epochs", "batch_size", "shuffle", "seed",
    "momentum", "nesterov", "beta1", "beta2", "epsilon", "alpha", "schedule", "power_t",
    "early_stopping", "validation_fraction", "n_iter_no_change", "tol",
)  # fmt: skip


def _permutation(n: int, seed: int, stream: int) -> np.ndarray:
    """The package's shuffle of range(n), as the native fit makes it."""
    from . import _core

    return np.asarray(_core.permutation(n, seed, stream))
