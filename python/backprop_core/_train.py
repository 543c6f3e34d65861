"""Native training: :func:`fit` checks and shapes the arguments, then runs the C++ loop
(``train.hpp``) with the GIL released; Python is entered once an epoch (progress, callback) and
every ~50 ms for Ctrl-C. It equals :func:`backprop_core.reference.fit` step for step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._dtype import _check_kind
from ._train_results import FitHistory
from .reference import _check_fit_options, is_labels


def _parameters(model: Any) -> tuple[list[np.ndarray], list[np.ndarray], np.dtype]:
    try:
        weights, biases = list(model.weights), list(model.biases)
    except AttributeError:
        raise TypeError(
            f"model: expected a backprop_core.MLP (with weights and biases), got "
            f"{type(model).__name__}"
        ) from None
    dtype = np.dtype(weights[0].dtype) if weights else np.dtype(np.float64)
    return weights, biases, dtype


def _as_model_dtype(name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    _check_kind(name, value)
    a = np.asarray(value)
    if a.dtype.kind == "f" and a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the model's), got {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def fit(
    model: Any,
    net_input: Any,
    y: Any,
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
    callback: Callable[[FitHistory], Any] | None = None,
    progress: bool = False,
) -> FitHistory:
    """Train a model natively by minibatch SGD or Adam, updating its parameters in place.

    The whole loop runs in the C++ core with the GIL released, and equals
    :func:`backprop_core.reference.fit` step for step (same definitions, same shuffles). The
    definitions, each following PyTorch or scikit-learn:

    * Objective of a minibatch of B samples: its loss plus ``alpha/2 sum_k ||W_k||^2`` (weights
      only), the whole divided by B for ``reduction="mean"`` (scikit-learn's penalty; PyTorch's
      ``weight_decay = alpha / B`` on the weights).
    * SGD as PyTorch's (``buf = momentum buf + g``; step ``buf`` or, Nesterov,
      ``g + momentum buf``); Adam as PyTorch's (``lr m_hat / (sqrt(v_hat) + eps)``;
      scikit-learn's uses ``eps / sqrt(1 - beta2^t)`` in its place).
    * scikit-learn's schedules and plateau rule (``n_iter_no_change``, ``tol``), early stopping
      on ``ceil(validation_fraction N)`` held-out samples (their loss is watched, and the best
      epoch's weights are kept).
    * Shuffling by the package's generator (SplitMix64, Lemire, Fisher-Yates; see
      :func:`backprop_core.reference.permutation`): the same order on every machine.
    * Threads: a minibatch of 32 or more samples on small layers is taken in two shards of
      samples whose gradients are added (on two threads when :func:`get_num_threads` allows);
      the split depends on the shapes alone, so the results do not depend on the threads.

    Parameters
    ----------
    model : backprop_core.MLP
        The network; its parameters are updated in place (the model's dtype is kept).
    net_input : array_like, shape (D_0, N)
        Samples as columns; integers are converted, the other float dtype is refused.
    y : array_like
        Targets broadcastable to (D_o, N), or for ``loss="cross_entropy"`` integer class labels
        of shape (N,) (or one-hot columns).
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        ``0.5 (f - y)^2`` or softmax cross-entropy.
    reduction : {"sum", "mean"}, default "mean"
        A minibatch's loss summed over its samples, or divided by their number.
    optimizer : {"sgd", "adam"}, default "sgd"
        The optimizer.
    learning_rate : float, default 0.01
        The initial learning rate.
    epochs : int, default 10
        Passes over the training samples.
    batch_size : int or None, default None
        Samples per step; None: all (full batch).
    shuffle : bool, default True
        Shuffle every epoch; False takes the samples in index order.
    seed : int, default 0
        Seed of the shuffles and the held-out split, in [0, 2^64).
    momentum : float, default 0.0
        SGD momentum in [0, 1).
    nesterov : bool, default False
        Nesterov momentum.
    beta1, beta2, epsilon : float
        Adam's parameters.
    alpha : float, default 0.0
        The L2 penalty's strength.
    schedule : {"constant", "invscaling", "adaptive"}, default "constant"
        scikit-learn's learning-rate schedules.
    power_t : float, default 0.5
        The exponent of ``"invscaling"``.
    early_stopping : bool, default False
        Hold out samples, watch their loss, end with the best epoch's weights.
    validation_fraction : float, default 0.1
        The held-out fraction.
    n_iter_no_change : int or None, default None
        Patience of the plateau rule; None: every epoch runs.
    tol : float, default 1e-4
        The plateau rule's least improvement.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.
    callback : callable, optional
        ``callback(history)`` after each epoch with the :class:`FitHistory` so far; a true
        result stops training. An exception it raises stops training and propagates.
    progress : bool, default False
        Show a progress bar with the loss (needs tqdm).

    Returns
    -------
    FitHistory
        The loss per epoch and how training ended.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (checked every ~50 ms), with the model at its last completed step; the
        exception's ``history`` attribute holds the epochs completed.
    """
    weights, biases, dtype = _parameters(model)
    X = _as_model_dtype("net_input", net_input, dtype)
    if X.ndim != 2:
        raise ValueError(f"net_input: expected shape (D_0, N), got {X.shape}")
    o = {k: v for k, v in locals().items() if k not in ("model", "net_input", "y")}
    _check_fit_options(o, X.shape[1])
    D_o = weights[-1].shape[0] if weights and weights[-1].ndim == 2 else 0
    if loss == "cross_entropy" and is_labels(y):
        Y = np.ascontiguousarray(y, dtype=np.int64)
    else:
        Y = np.ascontiguousarray(np.broadcast_to(_as_model_dtype("y", y, dtype), (D_o, X.shape[1])))
    if isinstance(relu_grad_at_zero, bool) or not 0 <= relu_grad_at_zero <= 1:
        raise ValueError(f"relu_grad_at_zero: expected a number in [0, 1], got {relu_grad_at_zero!r}")

    history = FitHistory(learning_rate=float(learning_rate))
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        bar = tqdm(total=epochs, unit="epoch")

    def on_epoch(epoch: int, value: float, val: float | None, lr: float, steps: int) -> bool:
        history.loss.append(value)
        if val is not None:
            history.validation_loss.append(val)
        history.epochs, history.steps, history.learning_rate = epoch + 1, steps, lr
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}")
        return bool(callback(history)) if callback is not None else False

    try:
        r = _core.train(
            weights, biases, X, Y, loss=loss, reduction=reduction, optimizer=optimizer,
            learning_rate=float(learning_rate), epochs=int(epochs),
            batch_size=0 if batch_size is None else int(batch_size), shuffle=bool(shuffle),
            seed=int(seed), momentum=float(momentum), nesterov=bool(nesterov),
            beta1=float(beta1), beta2=float(beta2), epsilon=float(epsilon), alpha=float(alpha),
            schedule=schedule, power_t=float(power_t), early_stopping=bool(early_stopping),
            validation_fraction=float(validation_fraction),
            n_iter_no_change=0 if n_iter_no_change is None else int(n_iter_no_change),
            tol=float(tol), relu_grad_at_zero=float(relu_grad_at_zero),
            on_epoch=on_epoch,
        )
    except BaseException as e:
        # Ctrl-C, or an error in the callback: the model is at its last completed step
        if isinstance(getattr(e, "fit_history", None), dict):
            e.history = _history(e.fit_history)  # type: ignore[attr-defined]
            if isinstance(e, KeyboardInterrupt):  # (also when it arrived during the callback)
                e.history.stop_reason = "interrupt"
            del e.fit_history
        raise
    finally:
        if bar is not None:
            bar.close()
    return _history(r)


def _history(r: dict[str, Any]) -> FitHistory:
    return FitHistory(
        loss=r["loss"], validation_loss=r["validation_loss"], epochs=r["epochs"],
        steps=r["steps"], learning_rate=r["learning_rate"], stop_reason=r["stop_reason"],
        best_epoch=r["best_epoch"],
    )


def fit_lbfgs(
    model: Any,
    net_input: Any,
    y: Any,
    *,
    loss: str = "squared_error",
    reduction: str = "mean",
    alpha: float = 0.0,
    max_iter: int = 200,
    max_fun: int = 15000,
    tol: float = 1e-4,
    relu_grad_at_zero: float = 1.0,
) -> FitHistory:
    """Train a model by full-batch L-BFGS (scipy.optimize's L-BFGS-B), with native loss and
    gradients, updating its parameters in place.

    The objective is :func:`fit`'s with every sample in one batch: the loss plus
    ``alpha/2 sum ||W_k||^2``, the whole divided by N for ``"mean"``. scipy is called as
    scikit-learn's ``solver="lbfgs"`` calls it (``maxiter``, ``maxfun``, ``gtol=tol``), so the
    same starting weights give scikit-learn's path. scipy works in float64; a float32 model's
    objective is computed in float32.

    Parameters
    ----------
    model : backprop_core.MLP
        The network; its parameters are updated in place.
    net_input : array_like, shape (D_0, N)
        Samples as columns, as for :func:`fit`.
    y : array_like
        Targets, as for :func:`fit`.
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        The loss.
    reduction : {"sum", "mean"}, default "mean"
        Summed over samples, or divided by N.
    alpha : float, default 0.0
        The L2 penalty's strength.
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
        ``loss`` holds the objective after each iteration, ``epochs`` the iterations,
        ``steps`` the objective evaluations; ``stop_reason`` is scipy's message.
    """
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ImportError("fit_lbfgs needs scipy: pip install scipy") from None
    weights, biases, dtype = _parameters(model)
    X = _as_model_dtype("net_input", net_input, dtype)
    if X.ndim != 2:
        raise ValueError(f"net_input: expected shape (D_0, N), got {X.shape}")
    _check_fit_options(
        dict(loss=loss, reduction=reduction, optimizer="sgd", schedule="constant",
             n_iter_no_change=None, epochs=0, batch_size=None, learning_rate=0.0, momentum=0.0,
             beta1=0.0, beta2=0.0, alpha=alpha, epsilon=1.0, nesterov=False,
             early_stopping=False), X.shape[1])
    for name, v in (("max_iter", max_iter), ("max_fun", max_fun)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    D_o = weights[-1].shape[0]
    if loss == "cross_entropy" and is_labels(y):
        Y = np.ascontiguousarray(y, dtype=np.int64)
    else:
        Y = np.ascontiguousarray(np.broadcast_to(_as_model_dtype("y", y, dtype), (D_o, X.shape[1])))
    params = weights + biases
    grads = [np.empty_like(p) for p in params]
    L = len(weights)
    bounds = np.cumsum([0] + [p.size for p in params])
    history = FitHistory(learning_rate=0.0)

    def set_params(theta: np.ndarray) -> None:
        for p, a, b in zip(params, bounds[:-1], bounds[1:]):
            p[...] = theta[a:b].reshape(p.shape)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        set_params(theta)
        value = _core.objective(
            weights, biases, X, Y, grads[:L], grads[L:], loss=loss, reduction=reduction,
            alpha=float(alpha), relu_grad_at_zero=float(relu_grad_at_zero),
        )
        history.steps += 1
        return value, np.concatenate([g.ravel() for g in grads]).astype(np.float64)

    def record(intermediate_result: Any) -> None:
        history.loss.append(float(intermediate_result.fun))
        history.epochs += 1

    theta0 = np.concatenate([p.ravel() for p in params]).astype(np.float64)
    result = minimize(
        objective, theta0, method="L-BFGS-B", jac=True, callback=record,
        options={"maxiter": int(max_iter), "maxfun": int(max_fun), "gtol": float(tol)},
    )
    set_params(result.x)
    history.stop_reason = str(result.message)
    return history
