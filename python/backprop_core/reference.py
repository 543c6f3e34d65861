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
from ._train_results import Fit, FitHistory

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
    return [as_array(v, dtype, name) for name, v in named]


def _check_toy_y(x: np.ndarray, y: np.ndarray) -> None:
    # As the native functions: one target for all samples, or one per sample; no broadcasting.
    if y.ndim != 0 and not (x.ndim == 1 and y.shape == x.shape):
        raise ValueError(f"y: expected a scalar or the shape of x {x.shape}, got shape {y.shape}")


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
        Targets, a scalar or the shape of ``x`` (no broadcasting), as
        :func:`backprop_core.toy_backward` takes them.
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
    _check_toy_y(x, y)
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
    return np.asarray(y) if _labels_given(y, loss) else as_array(y, dtype, "y")


# ----------------------------------------------------------------------------- notebook 7.2


def _mlp_dtype(*named: list[tuple[str, Any]]) -> np.dtype:
    return common_dtype([item for group in named for item in group])


def _check_mlp_y(y: np.ndarray, output: np.ndarray) -> None:
    # As the native functions: numpy's broadcasting, but to the output's 2 dimensions only.
    if output.ndim != 2:  # all_f of the wrong shape: not the targets' fault
        return
    D_o, N = output.shape
    padded = (1,) * (2 - y.ndim) + y.shape
    if y.ndim > 2 or padded[0] not in (1, D_o) or padded[1] not in (1, N):
        raise ValueError(
            f"y: expected a scalar or an array broadcastable to ({D_o}, {N}), got shape {y.shape}"
        )


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
        as_array(net_input, dtype, "net_input"),
        as_arrays(all_weights, dtype, "all_weights"),
        as_arrays(all_biases, dtype, "all_biases"),
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
        Targets: a scalar, or an array of at most 2 dimensions broadcastable to the output's
        shape (D_o, N), as :func:`backprop_core.gradients` takes them; for
        ``loss="cross_entropy"`` also integer class labels of shape (N,).
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
    all_f = as_arrays(all_f, dtype, "all_f")
    K = len(all_weights) - 1
    targets = _as_targets(y, loss, dtype)
    if not _labels_given(y, loss):
        _check_mlp_y(targets, all_f[K])
    _, dl_df_K = LOSSES[loss](all_f[K], targets, reduction)
    return _backward(
        as_arrays(all_weights, dtype, "all_weights"),
        as_arrays(all_biases, dtype, "all_biases"),
        all_f,
        as_arrays(all_h, dtype, "all_h"),
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
        Targets: a scalar, or an array of at most 2 dimensions broadcastable to the output's
        shape (D_o, N), as :func:`backprop_core.gradients` takes them; for
        ``loss="cross_entropy"`` also integer class labels of shape (N,).
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
    all_weights = as_arrays(all_weights, dtype, "all_weights")
    all_biases = as_arrays(all_biases, dtype, "all_biases")
    targets = _as_targets(y, loss, dtype)
    net_output, all_f, all_h = _forward(
        as_array(net_input, dtype, "net_input"), all_weights, all_biases
    )
    if not _labels_given(y, loss):
        _check_mlp_y(targets, net_output)
    y = targets
    value, dl_df_K = LOSSES[loss](net_output, y, reduction)
    dW, db = _backward(all_weights, all_biases, all_f, all_h, dl_df_K, relu_grad_at_zero)
    return value, dW, db


# ----------------------------------------------------------------------------- shuffling
#
# The package's own generator, so that a seed gives the same order on every machine, in Python
# and in the C++ core (train.hpp implements the same three functions):
#
# * SplitMix64 (Steele, Lea and Flood 2014): state += 0x9E3779B97F4A7C15, output mix64(state).
# * Stream k of a seed starts from state mix64(mix64(seed) + k) (mod 2^64). Stream 0 chooses the
#   held-out samples for early stopping; stream 1 + e shuffles epoch e.
# * An integer uniform in [0, s): Lemire's multiply-shift with rejection (unbiased): m = r * s
#   (128 bits), reject while the low 64 bits are below (2^64 - s) mod s, return m >> 64.
# * A permutation of a list: Fisher-Yates from the end, for i = n-1 .. 1 swap a[i] and
#   a[uniform(i + 1)].

_MASK64 = (1 << 64) - 1


def mix64(z: int) -> int:
    """SplitMix64's output function (the finaliser of MurmurHash3, Stafford's variant 13).

    Parameters
    ----------
    z : int
        A 64-bit unsigned integer.

    Returns
    -------
    int
        ``z`` mixed: ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
        z *= 0x94D049BB133111EB; z ^= z >> 31`` (mod 2^64).
    """
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """The package's generator: SplitMix64 started at stream ``stream`` of ``seed``.

    Parameters
    ----------
    seed : int
        In [0, 2^64).
    stream : int
        In [0, 2^64): 0 picks held-out samples, 1 + e shuffles epoch e.
    """

    def __init__(self, seed: int, stream: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
        if not 0 <= seed <= _MASK64:
            raise ValueError(f"seed: expected an int in [0, 2^64), got {seed}")
        self.state = mix64((mix64(int(seed)) + stream) & _MASK64)

    def next(self) -> int:
        """The next 64-bit output."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        return mix64(self.state)

    def uniform(self, s: int) -> int:
        """An integer uniform in [0, s), 1 <= s < 2^64 (Lemire's method)."""
        m = self.next() * s
        if (m & _MASK64) < s:
            threshold = ((1 << 64) - s) % s
            while (m & _MASK64) < threshold:
                m = self.next() * s
        return m >> 64


def permutation(items: Any, seed: int, stream: int) -> np.ndarray:
    """``items`` shuffled by Fisher-Yates with the package's generator.

    Parameters
    ----------
    items : array_like of int, shape (n,)
        What to shuffle (sample indices).
    seed : int
        The seed, in [0, 2^64).
    stream : int
        Which stream of the seed: 0 for the held-out split, 1 + e for epoch e.

    Returns
    -------
    ndarray of int64, shape (n,)
        The same items in the order the native core also gives.
    """
    a = [int(v) for v in np.asarray(items).ravel()]
    rng = SplitMix64(seed, stream)
    for i in range(len(a) - 1, 0, -1):
        j = rng.uniform(i + 1)
        a[i], a[j] = a[j], a[i]
    return np.array(a, dtype=np.int64)


# ----------------------------------------------------------------------------- training
#
# Definitions (the native fit follows them step for step):
#
# * Objective of a minibatch of B samples: its loss (LOSSES, with the reduction) plus the L2
#   penalty alpha/2 sum_k ||W_k||^2 on the weights only (not the biases), divided by B when the
#   reduction is "mean". That is scikit-learn's (alpha/2 ||W||^2 / B with a mean loss); PyTorch's
#   weight_decay=wd adds wd * W to the gradient of every parameter given it, so ours is
#   weight_decay = alpha / B ("mean") or alpha ("sum") on a parameter group holding the weights.
# * SGD as PyTorch defines it (dampening 0): buf = momentum * buf + g; the step is buf, or
#   g + momentum * buf with nesterov; W -= lr * step. scikit-learn keeps lr inside its velocity
#   (v = momentum * v - lr * g): the same while the learning rate is constant.
# * Adam as PyTorch defines it: m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
#   m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t), W -= lr * m_hat / (sqrt(v_hat) + eps),
#   t counting steps from 1. scikit-learn adds eps to sqrt(v) before the bias correction, which
#   is PyTorch's rule with eps / sqrt(1 - beta2^t) in place of eps (about 31.6 eps at t = 1).
# * Learning-rate schedules (scikit-learn's): "constant"; "invscaling": after each epoch
#   lr = learning_rate / (samples seen + 1)^power_t, samples seen = epochs done * training
#   samples (the + 1 is scikit-learn's);
#   "adaptive": lr / 5 each time the plateau rule fires, stopping once lr <= 1e-6.
# * The plateau rule (scikit-learn's, with n_iter_no_change set): after each epoch the watched
#   loss (the held-out loss with early stopping, else the epoch's training objective) counts as
#   no improvement when it is above best - tol; more than n_iter_no_change such epochs in a row
#   stop training (or, with "adaptive", divide lr by 5 and reset the count). scikit-learn watches
#   a score (R^2 or accuracy) on held-out samples; we watch the held-out loss.
# * Early stopping: ceil(validation_fraction * N) samples are held out (the first of
#   permutation(range(N), seed, 0), kept in index order; the rest train, in index order); the
#   weights of the epoch with the lowest held-out loss are restored at the end.
# * Minibatches: each epoch takes the training samples in the order permutation(train, seed,
#   1 + e) (shuffle=True) or in index order (shuffle=False), batch_size at a time, the last
#   minibatch holding the remainder.

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "invscaling", "adaptive")


def _sgd_step(params, grads, buffers, lr, momentum, nesterov):
    for p, g, buf in zip(params, grads, buffers):
        if momentum != 0:
            buf[...] = momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p[...] = p - lr * g


def _adam_step(params, grads, ms, vs, t, lr, beta1, beta2, epsilon):
    for p, g, m, v in zip(params, grads, ms, vs):
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p[...] = p - lr * m_hat / (np.sqrt(v_hat) + epsilon)


def _take(y: np.ndarray, columns: np.ndarray) -> np.ndarray:
    return y[columns] if y.ndim == 1 else y[:, columns]  # labels (N,) or targets (D_o, N)


def _check_fit_options(o: dict[str, Any], N: int) -> None:
    _check_loss(o["loss"], o["reduction"])
    if N < 1:
        raise ValueError("net_input: training needs at least one sample, got shape (D_0, 0)")
    if o["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {o['optimizer']!r}")
    if o["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {list(SCHEDULES)}, got {o['schedule']!r}")
    if o["schedule"] == "adaptive" and o["n_iter_no_change"] is None:
        raise ValueError("schedule: 'adaptive' needs n_iter_no_change (the plateau rule)")
    for name in ("epochs", "batch_size", "n_iter_no_change"):
        v = o[name]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if o["epochs"] < 0:
        raise ValueError(f"epochs: expected an int >= 0, got {o['epochs']}")
    if o["batch_size"] is not None and o["batch_size"] < 1:
        raise ValueError(f"batch_size: expected an int >= 1 or None, got {o['batch_size']}")
    if o["n_iter_no_change"] is not None and o["n_iter_no_change"] < 1:
        raise ValueError(f"n_iter_no_change: expected an int >= 1, got {o['n_iter_no_change']}")
    for name, low, high in (
        ("learning_rate", 0.0, np.inf),
        ("momentum", 0.0, 1.0),
        ("beta1", 0.0, 1.0),
        ("beta2", 0.0, 1.0),
        ("alpha", 0.0, np.inf),
    ):
        v = o[name]
        if not (isinstance(v, (int, float, np.floating)) and low <= v and (v < high)):
            raise ValueError(f"{name}: expected a number in [{low}, {high}), got {v!r}")
    if not o["epsilon"] > 0:
        raise ValueError(f"epsilon: expected a number > 0, got {o['epsilon']!r}")
    if o["nesterov"] and o["momentum"] == 0:
        raise ValueError("nesterov: needs momentum > 0")
    if o["early_stopping"]:
        f = o["validation_fraction"]
        if not (isinstance(f, (int, float)) and 0 < f < 1):
            raise ValueError(f"validation_fraction: expected a number in (0, 1), got {f!r}")
        n_val = int(np.ceil(f * N))
        if not 1 <= n_val < N:
            raise ValueError(
                f"validation_fraction: {f} of {N} samples holds out {n_val}, leaving "
                f"{N - n_val} to train"
            )


def held_out(N: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The split early stopping makes: training and held-out sample indices.

    Parameters
    ----------
    N : int
        Number of samples.
    validation_fraction : float
        In (0, 1): ``ceil(validation_fraction * N)`` samples are held out.
    seed : int
        The fit's seed; the split uses its stream 0.

    Returns
    -------
    train, validation : ndarray of int64
        Sorted indices: the held-out samples are the first ``ceil(validation_fraction * N)`` of
        ``permutation(range(N), seed, 0)``.
    """
    n_val = int(np.ceil(validation_fraction * N))
    order = permutation(np.arange(N), seed, 0)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def fit(
    net_input: Any,
    y: Any,
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
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
) -> Any:
    """Train the MLP by minibatch SGD or Adam, in plain numpy: the oracle of the native fit.

    The definitions (objective, L2 penalty, SGD, Adam, schedules, plateau rule, early stopping,
    shuffling) are stated in the comments above this function in ``reference.py`` and in the
    README; each follows PyTorch or scikit-learn, as said there.

    Parameters
    ----------
    net_input : array_like, shape (D_0, N)
        Samples as columns.
    y : array_like
        Targets broadcastable to (D_o, N), or for ``loss="cross_entropy"`` integer labels (N,).
    all_weights, all_biases : list of array_like
        The starting parameters (not written: the result holds new arrays).
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        See :data:`LOSSES`.
    reduction : {"sum", "mean"}, default "mean"
        Each minibatch's loss summed over its samples, or divided by their number.
    optimizer : {"sgd", "adam"}, default "sgd"
        PyTorch's SGD (with ``momentum``, ``nesterov``) or Adam (``beta1``, ``beta2``,
        ``epsilon``).
    learning_rate : float, default 0.01
        The initial learning rate.
    epochs : int, default 10
        Passes over the training samples (fewer if a stopping rule fires).
    batch_size : int or None, default None
        Samples per step; None: all of them (full batch).
    shuffle : bool, default True
        Shuffle each epoch with the package's generator; False takes samples in index order.
    seed : int, default 0
        Seed of the shuffles and of the held-out split, in [0, 2^64).
    momentum : float, default 0.0
        SGD momentum in [0, 1).
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    beta1, beta2, epsilon : float
        Adam's decay rates and epsilon (PyTorch's placement, outside the square root of v_hat).
    alpha : float, default 0.0
        L2 penalty ``alpha/2 sum ||W_k||^2`` on the weights (not the biases).
    schedule : {"constant", "invscaling", "adaptive"}, default "constant"
        scikit-learn's learning-rate schedules.
    power_t : float, default 0.5
        The exponent of ``"invscaling"``.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the samples, watch their loss, and end with the
        weights of the epoch where it was lowest.
    validation_fraction : float, default 0.1
        The held-out fraction, with early stopping.
    n_iter_no_change : int or None, default None
        The plateau rule's patience; None: no plateau rule (all epochs run).
    tol : float, default 1e-4
        The plateau rule's least improvement.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.

    Returns
    -------
    Fit
        ``all_weights``, ``all_biases`` (new arrays, the dtype of the computation) and
        ``history`` (a :class:`~backprop_core.FitHistory`).
    """
    o = dict(locals())
    dtype = _mlp_dtype(
        [("net_input", net_input), *_named_targets(y, loss)],
        named_items("all_weights", all_weights),
        named_items("all_biases", all_biases),
    )
    X = as_array(net_input, dtype)
    N = X.shape[1]
    _check_fit_options(o, N)
    W = [np.array(w, dtype=dtype) for w in all_weights]
    b = [np.array(c, dtype=dtype) for c in all_biases]
    Y = _as_targets(y, loss, dtype)
    if Y.ndim != 1 or loss != "cross_entropy":
        Y = np.broadcast_to(Y, (W[-1].shape[0], N))
    params = W + b
    history = FitHistory(learning_rate=float(learning_rate))

    # The held-out samples, and the order of the training samples
    train, validation = np.arange(N), np.arange(0)
    if early_stopping:
        train, validation = held_out(N, validation_fraction, seed)
    n_train = len(train)
    B = n_train if batch_size is None else batch_size

    # Optimizer state: momentum buffers, or Adam's first and second moments
    buffers = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    lr = learning_rate
    t = 0
    best, no_improvement = np.inf, 0
    best_params = [p.copy() for p in params]

    for epoch in range(epochs):
        order = permutation(train, seed, 1 + epoch) if shuffle else train
        total = 0.0
        for start in range(0, n_train, max(B, 1)):
            batch = order[start : start + B]
            # Loss and gradients of the minibatch
            value, dW, db = gradients(
                X[:, batch], _take(Y, batch), W, b, relu_grad_at_zero,
                loss=loss, reduction=reduction,
            )
            # The L2 penalty alpha/2 ||W||^2 on the weights, over B for the mean
            scale = 1 / len(batch) if reduction == "mean" else 1
            penalty = 0.5 * alpha * sum(float(np.sum(w * w)) for w in W) * scale
            dW = [dw + (alpha * scale) * w for dw, w in zip(dW, W)]
            total += (float(value) + penalty) * (len(batch) if reduction == "mean" else 1)
            # One step of the optimizer
            t += 1
            if optimizer == "sgd":
                _sgd_step(params, dW + db, buffers, lr, momentum, nesterov)
            else:
                _adam_step(params, dW + db, buffers, second, t, lr, beta1, beta2, epsilon)
        history.loss.append(total / n_train if reduction == "mean" else total)
        history.epochs, history.steps = epoch + 1, t

        # The watched loss: held-out with early stopping, else the epoch's training objective
        if early_stopping:
            out = _forward(X[:, validation], W, b)[0]
            watched = float(LOSSES[loss](out, _take(Y, validation), reduction)[0])
            history.validation_loss.append(watched)
        else:
            watched = history.loss[-1]
        no_improvement = no_improvement + 1 if watched > best - tol else 0
        if watched < best:
            best = watched
            if early_stopping:
                best_params = [p.copy() for p in params]
                history.best_epoch = epoch
        # scikit-learn's invscaling: lr = learning_rate / (samples seen + 1)^power_t
        if schedule == "invscaling":
            lr = learning_rate / float((epoch + 1) * n_train + 1) ** power_t
        if n_iter_no_change is not None and no_improvement > n_iter_no_change:
            if schedule == "adaptive" and lr > 1e-6:
                lr = lr / 5
                no_improvement = 0
            else:
                history.stop_reason = "no_improvement"
                break

    if early_stopping and history.best_epoch is not None:
        for p, kept in zip(params, best_params):
            p[...] = kept
    history.learning_rate = float(lr)
    return Fit(W, b, history)
