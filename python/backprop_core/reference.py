"""The test oracle: plain numpy, written step by step like notebooks 7.1 and 7.2.

Same names, signatures and results as the native functions in :mod:`backprop_core`, so a test
can run either. Written for reading, not speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._dtype import as_array, as_arrays, common_dtype, named_items
from ._results import NOTEBOOK_CHAIN, ToyBackward, ToyForward

# ----------------------------------------------------------------------------- activations


def relu(f: np.ndarray) -> np.ndarray:
    """Notebook 7.2's ReLU, ``f.clip(0.0)`` (NaN stays NaN).

    Parameters
    ----------
    f : ndarray
        Pre-activations.

    Returns
    -------
    ndarray
        ``max(f, 0)``, same shape and dtype.
    """
    return f.clip(0.0)


def indicator_function(f: np.ndarray, relu_grad_at_zero: float = 1.0) -> np.ndarray:
    """The ReLU derivative, notebook 7.2's ``indicator_function``.

    Parameters
    ----------
    f : ndarray
        Pre-activations.
    relu_grad_at_zero : float, default 1.0
        The value at exactly 0: 1 is the notebook's indicator (1 where f >= 0), 0 is PyTorch's.

    Returns
    -------
    ndarray
        1 where f > 0, 0 where f < 0, ``relu_grad_at_zero`` where f == 0; NaN stays NaN.
    """
    d = np.array(f)
    d[f > 0] = 1
    d[f < 0] = 0
    d[f == 0] = relu_grad_at_zero
    return d


# name: (h = a(f), dh/df given f and h)
ACTIVATIONS = {
    "identity": (lambda f: f, lambda f, h, c: np.ones_like(f)),
    "sin": (np.sin, lambda f, h, c: np.cos(f)),
    "cos": (np.cos, lambda f, h, c: -np.sin(f)),
    "exp": (np.exp, lambda f, h, c: h),
    "tanh": (np.tanh, lambda f, h, c: 1 - h * h),
    "sigmoid": (lambda f: 1 / (1 + np.exp(-f)), lambda f, h, c: h * (1 - h)),
    "relu": (relu, lambda f, h, c: indicator_function(f, c)),
}


# ----------------------------------------------------------------------------- notebook 7.1


def _stack(rows: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    if not rows:
        return np.empty((0, *like.shape), dtype=like.dtype)
    return np.stack(rows)


def _toy_inputs(x: Any, beta: Any, omega: Any, y: Any = None) -> list[np.ndarray]:
    named = [("x", x), ("beta", beta), ("omega", omega)]
    if y is not None:
        named.append(("y", y))
    dtype = common_dtype(named)
    return [as_array(v, dtype) for _, v in named]


def toy_forward(
    x: Any, beta: Any, omega: Any, activations: Sequence[str] = NOTEBOOK_CHAIN
) -> ToyForward:
    """Forward pass of the toy chain, step by step like notebook 7.1.

    Parameters
    ----------
    x : float or array_like, shape () or (N,)
        One sample or N samples.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes.
    activations : sequence of str, length L
        Activation names; see :func:`backprop_core.toy_forward`.

    Returns
    -------
    ToyForward
        ``f`` (L + 1 rows) and ``h`` (L rows), as :func:`backprop_core.toy_forward` returns.
    """
    x, beta, omega = _toy_inputs(x, beta, omega)
    L = len(activations)
    f = [None] * (L + 1)
    h = [None] * L  # h[k - 1] holds h_k
    f[0] = beta[0] + omega[0] * x
    for k in range(1, L + 1):
        a, _ = ACTIVATIONS[activations[k - 1]]
        h[k - 1] = a(f[k - 1])
        f[k] = beta[k] + omega[k] * h[k - 1]
    return ToyForward(_stack(f, f[0]), _stack(h, f[0]))


def toy_backward(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    relu_grad_at_zero: float = 1.0,
) -> ToyBackward:
    """Forward and backward pass of the toy chain, step by step like notebook 7.1.

    Parameters
    ----------
    x : float or array_like, shape () or (N,)
        One sample or N samples.
    y : float or array_like
        Targets, a scalar or the shape of ``x``.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes.
    activations : sequence of str, length L
        Activation names; see :func:`backprop_core.toy_forward`.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0 (1: the notebook's indicator, 0: PyTorch's).

    Returns
    -------
    ToyBackward
        ``loss`` (sum of ``(f_L - y)^2``), ``f``, ``h``, ``dl_df``, ``dl_dh``, ``dl_dbeta`` and
        ``dl_domega``, as :func:`backprop_core.toy_backward` returns.
    """
    x, beta, omega, y = _toy_inputs(x, beta, omega, y)
    f, h = toy_forward(x, beta, omega, activations)
    L = len(activations)
    loss = np.sum((f[L] - y) ** 2)

    dl_df = [None] * (L + 1)
    dl_dh = [None] * L
    dl_df[L] = 2 * (f[L] - y)
    for k in range(L, 0, -1):
        _, da = ACTIVATIONS[activations[k - 1]]
        dl_dh[k - 1] = omega[k] * dl_df[k]  # df_k/dh_k = omega_k
        dl_df[k - 1] = da(f[k - 1], h[k - 1], relu_grad_at_zero) * dl_dh[k - 1]  # dh_k/df_{k-1}

    inputs = [x, *h]  # what omega_k multiplies
    dl_dbeta = np.array([np.sum(dl_df[k]) for k in range(L + 1)], dtype=f.dtype)
    dl_domega = np.array([np.sum(dl_df[k] * inputs[k]) for k in range(L + 1)], dtype=f.dtype)
    return ToyBackward(
        loss, f, h, _stack(dl_df, f[0]), _stack(dl_dh, f[0]), dl_dbeta, dl_domega
    )


def toy_gradients(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    relu_grad_at_zero: float = 1.0,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Loss and parameter derivatives of the toy chain: the sums of :func:`toy_backward`.

    Parameters
    ----------
    x, y : float or array_like
        Samples and targets, as in :func:`toy_backward`.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes.
    activations : sequence of str
        Activation names.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.

    Returns
    -------
    loss, dl_dbeta, dl_domega
        As :func:`backprop_core.toy_gradients` returns.
    """
    r = toy_backward(x, y, beta, omega, activations, relu_grad_at_zero)
    return r.loss, r.dl_dbeta, r.dl_domega


# ----------------------------------------------------------------------------- losses
#
# Each loss takes the network output f = f_K of shape (D_o, N) (samples as columns) and the
# targets, and gives the loss and dl/df_K; backpropagation takes dl/df_K from there. Reductions:
#
# * "sum" (the notebooks'): the per-sample losses summed over the N samples (and the outputs).
# * "mean": the same sum divided by N, the number of samples (columns) in the call; not by the
#   number of entries N * D_o. For squared error that is (1/N) sum_n sum_i 0.5 (f_in - y_in)^2,
#   which is scikit-learn's MLPRegressor objective as its gradients define it (its reported
#   squared_loss divides by N * D_o, but its gradients by N: they agree when D_o = 1), and
#   PyTorch's 0.5 * MSELoss(reduction="sum")(f, y) / N; PyTorch's MSELoss(reduction="mean") is
#   (2 / D_o) times ours (no 0.5, divided by N * D_o). For cross-entropy, "mean" is exactly
#   PyTorch's CrossEntropyLoss(reduction="mean") and scikit-learn's log_loss.
# A batch of N = 0 samples has loss 0 and gradient 0 under either reduction.

REDUCTIONS = ("sum", "mean")


def squared_error(net_output: np.ndarray, y: Any, reduction: str = "sum") -> tuple[Any, np.ndarray]:
    """Notebook 7.2's loss ``0.5 (f_K - y)^2`` and its derivative.

    Parameters
    ----------
    net_output : ndarray, shape (D_o, N)
        The network output ``f_K``, samples as columns.
    y : array_like
        Targets, broadcastable to ``net_output``'s shape.
    reduction : {"sum", "mean"}, default "sum"
        ``"sum"`` over samples and outputs (the notebook's), or that sum divided by N (the number
        of samples): see the notes on reductions at the top of this section.

    Returns
    -------
    loss : numpy scalar
        ``sum 0.5 (f_K - y)^2``, divided by N for ``"mean"``.
    dl_df : ndarray, shape (D_o, N)
        ``f_K - y``, divided by N for ``"mean"``.
    """
    N = net_output.shape[1]
    loss = np.sum(0.5 * (net_output - y) ** 2)
    dl_df = net_output - y  # d 0.5 (f - y)^2 / df
    if reduction == "mean":
        return loss / max(N, 1), dl_df / max(N, 1)
    return loss, dl_df


def log_softmax(f: np.ndarray) -> np.ndarray:
    """``log softmax`` of each column, in the stable log-sum-exp form.

    Parameters
    ----------
    f : ndarray, shape (D_o, N)
        Scores, one column per sample.

    Returns
    -------
    ndarray, shape (D_o, N)
        ``f - m - log(sum(exp(f - m)))`` with ``m`` each column's largest score, so no ``exp``
        overflows.
    """
    z = f - f.max(axis=0, keepdims=True)  # the largest score of each sample becomes 0
    return z - np.log(np.sum(np.exp(z), axis=0, keepdims=True))


def softmax(f: np.ndarray) -> np.ndarray:
    """Softmax of each column, ``exp(f - m) / sum(exp(f - m))``.

    Parameters
    ----------
    f : ndarray, shape (D_o, N)
        Scores, one column per sample.

    Returns
    -------
    ndarray, shape (D_o, N)
        Probabilities; each column sums to 1.
    """
    e = np.exp(f - f.max(axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def is_labels(y: Any) -> bool:
    """Whether cross-entropy targets are integer class labels (else class probabilities).

    Parameters
    ----------
    y : array_like
        Targets: integers of shape (N,) are labels; real numbers broadcastable to (D_o, N) are
        one-hot rows (or any class probabilities).

    Returns
    -------
    bool
        True for an array of integers.
    """
    return not isinstance(y, (bool, np.bool_)) and np.asarray(y).dtype.kind in "iu"


def _check_labels(labels: np.ndarray, D_o: int, N: int) -> None:
    if labels.shape != (N,):
        raise ValueError(f"y: expected class labels of shape ({N},), got shape {labels.shape}")
    if N and (labels.min() < 0 or labels.max() >= D_o):
        raise ValueError(
            f"y: class labels must lie in [0, {D_o}), got values from {labels.min()} to "
            f"{labels.max()}"
        )


def softmax_cross_entropy(
    net_output: np.ndarray, y: Any, reduction: str = "sum"
) -> tuple[Any, np.ndarray]:
    """Softmax cross-entropy ``-sum_i y_i log softmax(f)_i`` of each sample, and its derivative.

    Parameters
    ----------
    net_output : ndarray, shape (D_o, N)
        Class scores (logits) ``f_K``, samples as columns; D_o >= 1.
    y : array_like
        Integer class labels of shape (N,) in [0, D_o), or one-hot columns (any class
        probabilities) broadcastable to (D_o, N).
    reduction : {"sum", "mean"}, default "sum"
        Summed over samples, or that sum divided by N (PyTorch's ``CrossEntropyLoss`` default).

    Returns
    -------
    loss : numpy scalar
        ``-sum_n log p_{y_n, n}`` (labels) or ``-sum y * log p`` (one-hot), divided by N for
        ``"mean"``; ``log p`` is :func:`log_softmax`.
    dl_df : ndarray, shape (D_o, N)
        ``p - onehot(y)`` (labels) or ``p * sum_i y_i - y`` (which is ``p - y`` for one-hot
        columns), ``p = softmax(f_K)``, divided by N for ``"mean"``.
    """
    D_o, N = net_output.shape
    if D_o == 0:
        raise ValueError("net_output: cross-entropy needs at least one class (output), got 0")
    log_p = log_softmax(net_output)
    p = softmax(net_output)
    if is_labels(y):
        labels = np.asarray(y)
        _check_labels(labels, D_o, N)
        samples = np.arange(N)
        loss = -np.sum(log_p[labels, samples])
        dl_df = p.copy()
        dl_df[labels, samples] -= 1  # d(-log p_y)/df = p - onehot(y)
    else:
        loss = -np.sum(y * log_p)
        dl_df = p * np.sum(y * np.ones_like(p), axis=0, keepdims=True) - y
    if reduction == "mean":
        return loss / max(N, 1), dl_df / max(N, 1)
    return loss, dl_df


# name: (loss, dl/df_K) = function(net_output, y, reduction)
LOSSES = {
    "squared_error": squared_error,
    "cross_entropy": softmax_cross_entropy,
}


def _check_loss(loss: Any, reduction: Any) -> None:
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {loss!r}")
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {list(REDUCTIONS)}, got {reduction!r}")


def _labels_given(y: Any, loss: str) -> bool:
    return loss == "cross_entropy" and is_labels(y)


def _named_targets(y: Any, loss: str) -> list[tuple[str, Any]]:
    return [] if _labels_given(y, loss) else [("y", y)]  # labels do not set the dtype


def _as_targets(y: Any, loss: str, dtype: np.dtype) -> np.ndarray:
    return np.asarray(y) if _labels_given(y, loss) else as_array(y, dtype)


# ----------------------------------------------------------------------------- notebook 7.2


def _mlp_dtype(*named: list[tuple[str, Any]]) -> np.dtype:
    return common_dtype([item for group in named for item in group])


def _column(b: np.ndarray) -> np.ndarray:
    return b.reshape(-1, 1)  # biases may be given as (D, 1), as the notebook does, or as (D,)


def _forward(net_input, all_weights, all_biases):
    # Retrieve number of layers
    K = len(all_weights) - 1
    all_f = [None] * (K + 1)
    all_h = [None] * (K + 1)
    # all_h[0] is the input, and all_f[K] will be the output
    all_h[0] = net_input
    for layer in range(K):
        all_f[layer] = all_weights[layer] @ all_h[layer] + _column(all_biases[layer])
        all_h[layer + 1] = relu(all_f[layer])
    all_f[K] = all_weights[K] @ all_h[K] + _column(all_biases[K])
    net_output = all_f[K]
    return net_output, all_f, all_h


def forward(
    net_input: Any, all_weights: Sequence[Any], all_biases: Sequence[Any]
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Notebook 7.2's ``compute_network_output``.

    Parameters
    ----------
    net_input : array_like, shape (D_0, N)
        Samples as columns.
    all_weights, all_biases : list of array_like
        ``all_weights[k]`` of shape (D_{k+1}, D_k), ``all_biases[k]`` of shape (D_{k+1}, 1) or
        (D_{k+1},).

    Returns
    -------
    net_output, all_f, all_h
        The output (``all_f[K]``), the pre-activations and the activations (``all_h[0]`` is the
        input), as :func:`backprop_core.forward` returns.
    """
    dtype = _mlp_dtype(
        [("net_input", net_input)],
        named_items("all_weights", all_weights),
        named_items("all_biases", all_biases),
    )
    return _forward(
        as_array(net_input, dtype), as_arrays(all_weights, dtype), as_arrays(all_biases, dtype)
    )


def _backward(all_weights, all_biases, all_f, all_h, dl_df_K, relu_grad_at_zero):
    K = len(all_weights) - 1
    all_dl_dweights = [None] * (K + 1)
    all_dl_dbiases = [None] * (K + 1)
    all_dl_df = [None] * (K + 1)
    all_dl_dh = [None] * (K + 1)
    # Derivative of the loss with respect to the network output (f - y for 0.5 (f - y)^2)
    all_dl_df[K] = dl_df_K
    for layer in range(K, -1, -1):
        # Biases: df/db = 1, summed over the samples (columns)
        dl_db = np.sum(all_dl_df[layer], axis=1, keepdims=True)
        all_dl_dbiases[layer] = dl_db.reshape(all_biases[layer].shape)
        # Weights: dl/dW = dl/df h^T
        all_dl_dweights[layer] = all_dl_df[layer] @ all_h[layer].T
        if layer > 0:
            # Activations: dl/dh = W^T dl/df
            all_dl_dh[layer] = all_weights[layer].T @ all_dl_df[layer]
            # Pre-activations: through the ReLU
            ind = indicator_function(all_f[layer - 1], relu_grad_at_zero)
            all_dl_df[layer - 1] = ind * all_dl_dh[layer]
    return all_dl_dweights, all_dl_dbiases


def backward(
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    all_f: Sequence[Any],
    all_h: Sequence[Any],
    y: Any,
    relu_grad_at_zero: float = 1.0,
    *,
    loss: str = "squared_error",
    reduction: str = "sum",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Notebook 7.2's ``backward_pass``, for the loss ``sum 0.5 (f_K - y)^2`` by default.

    Parameters
    ----------
    all_weights, all_biases : list of array_like
        As in :func:`forward`.
    all_f, all_h : list of array_like
        What :func:`forward` stored.
    y : float or array_like
        Targets, broadcastable to the output's shape; for ``loss="cross_entropy"`` also integer
        class labels of shape (N,).
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0 (1: the notebook's indicator, 0: PyTorch's).
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        ``0.5 (f_K - y)^2`` (:func:`squared_error`) or softmax cross-entropy
        (:func:`softmax_cross_entropy`).
    reduction : {"sum", "mean"}, default "sum"
        Summed over samples (the notebook's), or that sum divided by the number of samples N.

    Returns
    -------
    all_dl_dweights, all_dl_dbiases : list of ndarray
        Shaped like the parameters, summed over samples (divided by N for ``"mean"``).
    """
    _check_loss(loss, reduction)
    dtype = _mlp_dtype(
        named_items("all_weights", all_weights),
        named_items("all_biases", all_biases),
        named_items("all_f", all_f),
        named_items("all_h", all_h),
        _named_targets(y, loss),
    )
    all_f = as_arrays(all_f, dtype)
    K = len(all_weights) - 1
    _, dl_df_K = LOSSES[loss](all_f[K], _as_targets(y, loss, dtype), reduction)
    return _backward(
        as_arrays(all_weights, dtype),
        as_arrays(all_biases, dtype),
        all_f,
        as_arrays(all_h, dtype),
        dl_df_K,
        relu_grad_at_zero,
    )


def gradients(
    net_input: Any,
    y: Any,
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    relu_grad_at_zero: float = 1.0,
    *,
    loss: str = "squared_error",
    reduction: str = "sum",
) -> tuple[np.floating, list[np.ndarray], list[np.ndarray]]:
    """Loss and gradients of the MLP: :func:`forward`, the loss, then :func:`backward`.

    Parameters
    ----------
    net_input : array_like, shape (D_0, N)
        Samples as columns.
    y : float or array_like
        Targets, broadcastable to the output's shape; for ``loss="cross_entropy"`` also integer
        class labels of shape (N,).
    all_weights, all_biases : list of array_like
        As in :func:`forward`.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        As in :func:`backward`.
    reduction : {"sum", "mean"}, default "sum"
        As in :func:`backward`.

    Returns
    -------
    loss : numpy scalar
        ``sum 0.5 (f_K - y)^2`` by default; the chosen loss and reduction otherwise.
    all_dl_dweights, all_dl_dbiases : list of ndarray
        As :func:`backward` returns.
    """
    _check_loss(loss, reduction)
    dtype = _mlp_dtype(
        [("net_input", net_input), *_named_targets(y, loss)],
        named_items("all_weights", all_weights),
        named_items("all_biases", all_biases),
    )
    all_weights = as_arrays(all_weights, dtype)
    all_biases = as_arrays(all_biases, dtype)
    y = _as_targets(y, loss, dtype)
    net_output, all_f, all_h = _forward(as_array(net_input, dtype), all_weights, all_biases)
    value, dl_df_K = LOSSES[loss](net_output, y, reduction)
    dW, db = _backward(all_weights, all_biases, all_f, all_h, dl_df_K, relu_grad_at_zero)
    return value, dW, db
