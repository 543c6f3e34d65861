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


def _backward(all_weights, all_biases, all_f, all_h, y, relu_grad_at_zero):
    K = len(all_weights) - 1
    all_dl_dweights = [None] * (K + 1)
    all_dl_dbiases = [None] * (K + 1)
    all_dl_df = [None] * (K + 1)
    all_dl_dh = [None] * (K + 1)
    _check_mlp_y(y, all_f[K])
    # Derivative of the loss 0.5 (f - y)^2 with respect to the network output
    all_dl_df[K] = all_f[K] - y
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
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Notebook 7.2's ``backward_pass``, for the loss ``sum 0.5 (f_K - y)^2``.

    Parameters
    ----------
    all_weights, all_biases : list of array_like
        As in :func:`forward`.
    all_f, all_h : list of array_like
        What :func:`forward` stored.
    y : float or array_like
        Targets: a scalar, or an array of at most 2 dimensions broadcastable to the output's
        shape (D_o, N), as :func:`backprop_core.gradients` takes them.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0 (1: the notebook's indicator, 0: PyTorch's).

    Returns
    -------
    all_dl_dweights, all_dl_dbiases : list of ndarray
        Shaped like the parameters, summed over samples.
    """
    dtype = _mlp_dtype(
        named_items("all_weights", all_weights),
        named_items("all_biases", all_biases),
        named_items("all_f", all_f),
        named_items("all_h", all_h),
        [("y", y)],
    )
    return _backward(
        as_arrays(all_weights, dtype, "all_weights"),
        as_arrays(all_biases, dtype, "all_biases"),
        as_arrays(all_f, dtype, "all_f"),
        as_arrays(all_h, dtype, "all_h"),
        as_array(y, dtype, "y"),
        relu_grad_at_zero,
    )


def gradients(
    net_input: Any,
    y: Any,
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    relu_grad_at_zero: float = 1.0,
) -> tuple[np.floating, list[np.ndarray], list[np.ndarray]]:
    """Loss and gradients of the MLP: :func:`forward`, the loss, then :func:`backward`.

    Parameters
    ----------
    net_input : array_like, shape (D_0, N)
        Samples as columns.
    y : float or array_like
        Targets: a scalar, or an array of at most 2 dimensions broadcastable to the output's
        shape (D_o, N), as :func:`backprop_core.gradients` takes them.
    all_weights, all_biases : list of array_like
        As in :func:`forward`.
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0.

    Returns
    -------
    loss : numpy scalar
        ``sum 0.5 (f_K - y)^2``.
    all_dl_dweights, all_dl_dbiases : list of ndarray
        As :func:`backward` returns.
    """
    dtype = _mlp_dtype(
        [("net_input", net_input), ("y", y)],
        named_items("all_weights", all_weights),
        named_items("all_biases", all_biases),
    )
    all_weights = as_arrays(all_weights, dtype, "all_weights")
    all_biases = as_arrays(all_biases, dtype, "all_biases")
    y = as_array(y, dtype, "y")
    net_output, all_f, all_h = _forward(as_array(net_input, dtype, "net_input"), all_weights, all_biases)
    _check_mlp_y(y, net_output)
    loss = np.sum(0.5 * (net_output - y) ** 2)
    dW, db = _backward(all_weights, all_biases, all_f, all_h, y, relu_grad_at_zero)
    return loss, dW, db
