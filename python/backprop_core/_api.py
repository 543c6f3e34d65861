"""The public native functions: the contract, stated once. Options are keyword-only and checked
here; results are named tuples. The compiled core checks shapes and applies the dtype policy
(backprop_core._dtype) where arrays need converting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union, overload

import numpy as np
import numpy.typing as npt

from . import _core
from ._dtype import as_array, common_dtype, named_items
from ._results import (
    NOTEBOOK_CHAIN,
    Backward,
    Forward,
    Gradients,
    ToyBackward,
    ToyForward,
    ToyGradients,
)

# Types for the dtype policy's two exact cases: float32 in, float32 out; float64 in, float64 out.
# Anything else (integers, float16, mixed) is typed Any: the policy decides at run time.
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Scalar32 = Union[float, np.float32, F32]
Scalar64 = Union[float, np.float64, F64]

_tuple_new = tuple.__new__  # a named result from the core's tuple, without a Python-level call


def check_relu_grad_at_zero(value: Any) -> float:
    """``relu_grad_at_zero`` as a float in [0, 1], or TypeError / ValueError naming it."""
    if type(value) is float and 0.0 <= value <= 1.0:  # the common case, first
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            f"relu_grad_at_zero: expected a real number in [0, 1], got {type(value).__name__}"
        )
    if isinstance(value, np.number) and not isinstance(value, (np.integer, np.floating)):
        raise TypeError(f"relu_grad_at_zero: expected a real number, got {type(value).__name__}")
    try:
        c = float(value)
    except OverflowError:  # an int beyond any float: outside [0, 1] all the same
        c = math.inf
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"relu_grad_at_zero: expected a value in [0, 1], got {value!r}")
    return c


LOSS_NAMES = ("squared_error", "cross_entropy")
REDUCTION_NAMES = ("sum", "mean")


def check_loss(loss: Any, reduction: Any) -> bool:
    """Checks ``loss`` and ``reduction``; True for the notebook's (squared error, summed)."""
    if type(loss) is str and type(reduction) is str and loss == "squared_error" \
            and reduction == "sum":
        return True
    if not isinstance(loss, str) or loss not in LOSS_NAMES:
        raise ValueError(f"loss: expected one of {list(LOSS_NAMES)}, got {loss!r}")
    if not isinstance(reduction, str) or reduction not in REDUCTION_NAMES:
        raise ValueError(f"reduction: expected one of {list(REDUCTION_NAMES)}, got {reduction!r}")
    return False


def loss_gradients(
    net_input: Any, y: Any, all_weights: Any, all_biases: Any, c: float, loss: str,
    reduction: str, model_dtype: np.dtype | None = None,
) -> tuple[Any, list[np.ndarray], list[np.ndarray]]:
    """Loss and gradients for any ``loss`` / ``reduction``, natively (train.hpp's objective
    with no penalty: the loss's dl/df_K sent back through the notebook's backward pass)."""
    from .reference import is_labels

    weights = named_items("all_weights", all_weights)  # each list read once
    biases = named_items("all_biases", all_biases)
    labels = loss == "cross_entropy" and is_labels(y)
    named = [("net_input", net_input), *([] if labels else [("y", y)])]
    dtype = common_dtype([*named, *weights, *biases])
    if model_dtype is not None:  # a model computes in its own dtype: another float is refused
        for name, value in named:
            kind = np.asarray(value).dtype
            if kind.kind == "f" and kind != model_dtype:
                raise TypeError(f"{name}: expected dtype {model_dtype} (the model's), got {kind}")
        dtype = model_dtype
    W = [as_array(v, dtype, n) for n, v in weights]
    b = [as_array(v, dtype, n) for n, v in biases]
    x = as_array(net_input, dtype, "net_input")
    if not W:
        raise ValueError("all_weights: expected at least one layer")
    if x.ndim != 2:
        raise ValueError(f"net_input: expected shape (D_0, N), got {x.shape}")
    D_o, N = int(W[-1].shape[0]) if W[-1].ndim == 2 else -1, x.shape[1]
    if labels:
        Y = np.ascontiguousarray(y, dtype=np.int64)
    else:
        Y = as_array(y, dtype, "y")
        padded = (1,) * (2 - Y.ndim) + Y.shape
        if Y.ndim > 2 or padded[0] not in (1, D_o) or padded[1] not in (1, N):
            raise ValueError(
                f"y: expected a scalar or an array broadcastable to ({D_o}, {N}), got shape "
                f"{Y.shape}"
            )
        if D_o >= 0:  # (else the core names the weights' shape first)
            Y = np.ascontiguousarray(np.broadcast_to(Y, (D_o, N)))
    dW = [np.empty(w.shape, dtype) for w in W]
    db = [np.empty(v.shape, dtype) for v in b]
    value = _core.objective(W, b, x, Y, dW, db, loss=loss, reduction=reduction, alpha=0.0,
                            relu_grad_at_zero=c)
    return dtype.type(value), dW, db


def loss_backward(
    all_weights: Any, all_biases: Any, all_f: Any, all_h: Any, y: Any, c: float, loss: str,
    reduction: str,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The backward pass for any ``loss`` / ``reduction``: dl/df_K from the loss's definition
    (O(D_{K+1} N), in numpy), then the native backward pass from it (f_K replaced by dl/df_K
    against a target of 0, whose squared error's derivative is dl/df_K itself, exactly)."""
    from .reference import LOSSES, is_labels

    weights, biases = named_items("all_weights", all_weights), named_items("all_biases", all_biases)
    fs, hs = named_items("all_f", all_f), named_items("all_h", all_h)
    labels = loss == "cross_entropy" and is_labels(y)
    dtype = common_dtype([*weights, *biases, *fs, *hs, *([] if labels else [("y", y)])])
    if not fs:
        raise ValueError("all_f: expected K + 1 arrays (the forward pass's), got 0")
    f_K = as_array(fs[-1][1], dtype, fs[-1][0])
    if f_K.ndim != 2:
        raise ValueError(f"{fs[-1][0]}: expected shape (D_{{K+1}}, N), got {f_K.shape}")
    targets = np.asarray(y) if labels else as_array(y, dtype, "y")
    if not labels:
        padded = (1,) * (2 - targets.ndim) + targets.shape
        if targets.ndim > 2 or any(p not in (1, s) for p, s in zip(padded, f_K.shape)):
            raise ValueError(f"y: expected a scalar or an array broadcastable to {f_K.shape}, "
                             f"got shape {targets.shape}")
    _, g = LOSSES[loss](f_K, targets, reduction)
    g = np.ascontiguousarray(g, dtype)
    return _core.backward([v for _, v in weights], [v for _, v in biases],
                          [v for _, v in fs[:-1]] + [g], [v for _, v in hs], dtype.type(0), c)


@overload
def toy_forward(  # type: ignore[overload-overlap]  # (a Python float fits either dtype)
    x: Scalar32, beta: F32, omega: F32, *, activations: Sequence[str] = ...
) -> ToyForward[np.float32]: ...
@overload
def toy_forward(
    x: Scalar64, beta: F64, omega: F64, *, activations: Sequence[str] = ...
) -> ToyForward[np.float64]: ...
@overload
def toy_forward(
    x: Any, beta: Any, omega: Any, *, activations: Sequence[str] = ...
) -> ToyForward[Any]: ...
def toy_forward(
    x: Any, beta: Any, omega: Any, *, activations: Sequence[str] = NOTEBOOK_CHAIN
) -> ToyForward[Any]:
    """Forward pass of the toy chain of notebook 7.1.

    ``f_0 = beta_0 + omega_0 x``, then for k = 1..L: ``h_k = a_k(f_{k-1})`` and
    ``f_k = beta_k + omega_k h_k``. With the default chain this is
    ``f = beta3 + omega3 cos(beta2 + omega2 exp(beta1 + omega1 sin(beta0 + omega0 x)))``.

    Parameters
    ----------
    x : float or array_like, shape () or (N,)
        One sample, or N samples.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes, ``beta[k]`` and ``omega[k]`` for k = 0..L.
    activations : sequence of str, length L
        Names from ``"identity"``, ``"sin"``, ``"cos"``, ``"exp"``, ``"tanh"``, ``"sigmoid"`` and
        ``"relu"``. Default: notebook 7.1's ``("sin", "exp", "cos")``. May be empty.

    Returns
    -------
    ToyForward
        ``f`` of shape (L + 1,) and ``h`` of shape (L,) for a scalar ``x``; (L + 1, N) and (L, N)
        for N samples. ``h[k - 1]`` is ``h_k``. float32 in, float32 out; see the dtype policy in
        the README.

    Raises
    ------
    ValueError
        ``beta``/``omega`` not of length L + 1, ``x`` of rank above 1, an unknown activation.
    TypeError
        Arrays that are not real numbers (bool, complex, object, str), ``activations`` a str.
    Examples
    --------
    Notebook 7.1's forward pass (its printed values: 1.230 1.623 7.137 2.372):

    >>> import numpy as np, backprop_core as bc
    >>> beta, omega = np.array([1.0, 2.0, -3.0, 0.4]), np.array([0.1, -0.4, 2.0, 3.0])
    >>> bc.toy_forward(2.3, beta, omega).f.round(3).tolist()
    [1.23, 1.623, 7.137, 2.372]
    """
    return _tuple_new(ToyForward, _core.toy_forward(x, beta, omega, activations))


@overload
def toy_backward(  # type: ignore[overload-overlap]  # (a Python float fits either dtype)
    x: Scalar32,
    y: Scalar32,
    beta: F32,
    omega: F32,
    *,
    activations: Sequence[str] = ...,
    relu_grad_at_zero: float = ...,
) -> ToyBackward[np.float32]: ...
@overload
def toy_backward(
    x: Scalar64,
    y: Scalar64,
    beta: F64,
    omega: F64,
    *,
    activations: Sequence[str] = ...,
    relu_grad_at_zero: float = ...,
) -> ToyBackward[np.float64]: ...
@overload
def toy_backward(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    *,
    activations: Sequence[str] = ...,
    relu_grad_at_zero: float = ...,
) -> ToyBackward[Any]: ...
def toy_backward(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    *,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    relu_grad_at_zero: float = 1.0,
) -> ToyBackward[Any]:
    """Forward and backward pass of the toy chain of notebook 7.1, loss ``sum (f_L - y)^2``.

    Parameters
    ----------
    x : float or array_like, shape () or (N,)
        One sample, or N samples.
    y : float or array_like, shape () or the shape of ``x``
        Targets; a scalar applies to every sample.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes.
    activations : sequence of str, length L
        As in :func:`toy_forward`.
    relu_grad_at_zero : float, default 1.0
        The derivative of ``"relu"`` at exactly 0: 1 follows notebook 7.2's indicator (f >= 0),
        0 follows PyTorch. Any value in [0, 1] (a subgradient) is accepted.

    Returns
    -------
    ToyBackward
        ``loss`` (a numpy scalar, summed over samples), ``f`` and ``h`` as in
        :func:`toy_forward`, ``dl_df`` and ``dl_dh`` of the same shapes (per sample), and
        ``dl_dbeta`` and ``dl_domega`` of shape (L + 1,), summed over samples.

    Raises
    ------
    ValueError
        As :func:`toy_forward`, and ``y`` whose shape is neither () nor that of ``x``.
    TypeError
        As :func:`toy_forward`.
    Examples
    --------
    Notebook 7.1's loss (0.139) and dl/domega_0 (5.246):

    >>> import numpy as np, backprop_core as bc
    >>> beta, omega = np.array([1.0, 2.0, -3.0, 0.4]), np.array([0.1, -0.4, 2.0, 3.0])
    >>> r = bc.toy_backward(2.3, 2.0, beta, omega)
    >>> round(float(r.loss), 3), round(float(r.dl_domega[0]), 3)
    (0.139, 5.246)
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    return _tuple_new(ToyBackward, _core.toy_backward(x, y, beta, omega, activations, c))


@overload
def toy_gradients(  # type: ignore[overload-overlap]  # (a Python float fits either dtype)
    x: Scalar32,
    y: Scalar32,
    beta: F32,
    omega: F32,
    *,
    activations: Sequence[str] = ...,
    relu_grad_at_zero: float = ...,
) -> ToyGradients[np.float32]: ...
@overload
def toy_gradients(
    x: Scalar64,
    y: Scalar64,
    beta: F64,
    omega: F64,
    *,
    activations: Sequence[str] = ...,
    relu_grad_at_zero: float = ...,
) -> ToyGradients[np.float64]: ...
@overload
def toy_gradients(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    *,
    activations: Sequence[str] = ...,
    relu_grad_at_zero: float = ...,
) -> ToyGradients[Any]: ...
def toy_gradients(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    *,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    relu_grad_at_zero: float = 1.0,
) -> ToyGradients[Any]:
    """Loss and parameter derivatives of the toy chain, without the per-sample intermediates.

    The same loss and sums as :func:`toy_backward`, computed in one fused pass that keeps each
    block of samples in cache, uses vectorised ``sin``/``cos``/``exp`` where the CPU has AVX2, and
    splits large batches across the machine's cores. Use it when only the gradient is wanted.

    Parameters
    ----------
    x : float or array_like, shape () or (N,)
        One sample, or N samples.
    y : float or array_like, shape () or the shape of ``x``
        Targets.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes.
    activations : sequence of str, length L
        As in :func:`toy_forward`.
    relu_grad_at_zero : float, default 1.0
        The derivative of ``"relu"`` at exactly 0 (1: notebook 7.2's indicator, 0: PyTorch's).

    Returns
    -------
    loss : numpy scalar
        ``sum (f_L - y)^2`` over samples.
    dl_dbeta, dl_domega : ndarray, shape (L + 1,)
        Summed over samples. They agree with :func:`toy_backward` to rounding (the vector
        functions are within 4 ulp and the sums are added in another order).

    Raises
    ------
    ValueError, TypeError
        As :func:`toy_backward`.
    Examples
    --------
    >>> import numpy as np, backprop_core as bc
    >>> beta, omega = np.array([1.0, 2.0, -3.0, 0.4]), np.array([0.1, -0.4, 2.0, 3.0])
    >>> loss, dl_dbeta, dl_domega = bc.toy_gradients(np.full(10, 2.3), 2.0, beta, omega)
    >>> round(float(loss), 3), round(float(dl_domega[0]), 2)  # ten times notebook 7.1's sample
    (1.386, 52.46)
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    return _tuple_new(ToyGradients, _core.toy_gradients(x, y, beta, omega, activations, c))


@overload
def forward(  # type: ignore[overload-overlap]  # (a Python float fits either dtype)
    net_input: F32, all_weights: Sequence[F32], all_biases: Sequence[F32]
) -> Forward[np.float32]: ...
@overload
def forward(
    net_input: F64, all_weights: Sequence[F64], all_biases: Sequence[F64]
) -> Forward[np.float64]: ...
@overload
def forward(
    net_input: Any, all_weights: Sequence[Any], all_biases: Sequence[Any]
) -> Forward[Any]: ...
def forward(net_input: Any, all_weights: Sequence[Any], all_biases: Sequence[Any]) -> Forward[Any]:
    """Forward pass of the ReLU MLP of notebook 7.2 (its ``compute_network_output``).

    ``f_k = W_k h_k + b_k`` for k = 0..K, ``h_{k+1} = ReLU(f_k)`` between layers, none after the
    last.

    Parameters
    ----------
    net_input : array_like, shape (D_0, N)
        N samples as columns.
    all_weights : list of array_like, K + 1 entries
        ``all_weights[k]`` of shape (D_{k+1}, D_k).
    all_biases : list of array_like, K + 1 entries
        ``all_biases[k]`` of shape (D_{k+1}, 1), as in the notebook, or (D_{k+1},).

    Returns
    -------
    net_output : ndarray, shape (D_{K+1}, N)
        The same array as ``all_f[K]``.
    all_f : list of ndarray
        Pre-activations, ``all_f[k]`` of shape (D_{k+1}, N).
    all_h : list of ndarray
        Activations, ``all_h[k]`` of shape (D_k, N); ``all_h[0]`` is a copy of the input.

    Raises
    ------
    ValueError
        Layer shapes that do not chain, ``len(all_weights) != len(all_biases)``, no layers, or
        ``net_input`` not of shape (D_0, N). The message names the layer and both shapes.
    TypeError
        Arrays that are not real numbers.
    Examples
    --------
    Notebook 7.2's network (output -0.923):

    >>> import backprop_core as bc
    >>> from backprop_core.examples import mlp_example
    >>> e = mlp_example()
    >>> round(float(bc.forward(e.net_input, e.all_weights, e.all_biases).net_output[0, 0]), 3)
    -0.923
    """
    return _tuple_new(Forward, _core.forward(net_input, all_weights, all_biases))


@overload
def backward(  # type: ignore[overload-overlap]  # (a Python float fits either dtype)
    all_weights: Sequence[F32],
    all_biases: Sequence[F32],
    all_f: Sequence[F32],
    all_h: Sequence[F32],
    y: Scalar32,
    *,
    relu_grad_at_zero: float = ...,
    loss: str = ...,
    reduction: str = ...,
) -> Backward[np.float32]: ...
@overload
def backward(
    all_weights: Sequence[F64],
    all_biases: Sequence[F64],
    all_f: Sequence[F64],
    all_h: Sequence[F64],
    y: Scalar64,
    *,
    relu_grad_at_zero: float = ...,
    loss: str = ...,
    reduction: str = ...,
) -> Backward[np.float64]: ...
@overload
def backward(
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    all_f: Sequence[Any],
    all_h: Sequence[Any],
    y: Any,
    *,
    relu_grad_at_zero: float = ...,
    loss: str = ...,
    reduction: str = ...,
) -> Backward[Any]: ...
def backward(
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    all_f: Sequence[Any],
    all_h: Sequence[Any],
    y: Any,
    *,
    relu_grad_at_zero: float = 1.0,
    loss: str = "squared_error",
    reduction: str = "sum",
) -> Backward[Any]:
    """Backward pass of the ReLU MLP of notebook 7.2 (its ``backward_pass``).

    The loss is ``sum over outputs and samples of 0.5 (f_K - y)^2``, unless ``loss`` or
    ``reduction`` say otherwise.

    Parameters
    ----------
    all_weights, all_biases : list of array_like
        As in :func:`forward`.
    all_f, all_h : list of array_like, K + 1 entries each
        The pre-activations and activations a forward pass stored (``all_h[0]`` is the input).
    y : float or array_like
        Targets, broadcastable to the output's shape (D_{K+1}, N).
    relu_grad_at_zero : float, default 1.0
        The ReLU derivative at exactly 0: 1 is the notebook's indicator (f >= 0), 0 is PyTorch's.
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        As in :func:`gradients`; for cross-entropy ``y`` may be int class labels of shape (N,).
        Other than the default, dl/df_K is taken from the loss's definition in numpy
        (:data:`backprop_core.reference.LOSSES`) and the backward pass from it natively.
    reduction : {"sum", "mean"}, default "sum"
        As in :func:`gradients`.

    Returns
    -------
    all_dl_dweights, all_dl_dbiases : list of ndarray
        Derivatives with the shapes of the weights and biases, summed over samples.

    Raises
    ------
    ValueError
        As :func:`forward`; ``all_f``/``all_h`` of the wrong length or with shapes inconsistent
        with the weights; ``y`` not broadcastable to the output.
    Examples
    --------
    >>> import backprop_core as bc
    >>> from backprop_core.examples import mlp_example
    >>> e = mlp_example()
    >>> fw = bc.forward(e.net_input, e.all_weights, e.all_biases)
    >>> g = bc.backward(e.all_weights, e.all_biases, fw.all_f, fw.all_h, e.y)
    >>> round(float(g.all_dl_dbiases[0][1, 0]), 3)  # notebook 7.2 prints 46.618
    46.618
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    if check_loss(loss, reduction):
        return _tuple_new(Backward, _core.backward(all_weights, all_biases, all_f, all_h, y, c))
    return _tuple_new(
        Backward, loss_backward(all_weights, all_biases, all_f, all_h, y, c, loss, reduction)
    )


@overload
def gradients(  # type: ignore[overload-overlap]  # (a Python float fits either dtype)
    net_input: F32,
    y: Scalar32,
    all_weights: Sequence[F32],
    all_biases: Sequence[F32],
    *,
    relu_grad_at_zero: float = ...,
    loss: str = ...,
    reduction: str = ...,
) -> Gradients[np.float32]: ...
@overload
def gradients(
    net_input: F64,
    y: Scalar64,
    all_weights: Sequence[F64],
    all_biases: Sequence[F64],
    *,
    relu_grad_at_zero: float = ...,
    loss: str = ...,
    reduction: str = ...,
) -> Gradients[np.float64]: ...
@overload
def gradients(
    net_input: Any,
    y: Any,
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    *,
    relu_grad_at_zero: float = ...,
    loss: str = ...,
    reduction: str = ...,
) -> Gradients[Any]: ...
def gradients(
    net_input: Any,
    y: Any,
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    *,
    relu_grad_at_zero: float = 1.0,
    loss: str = "squared_error",
    reduction: str = "sum",
) -> Gradients[Any]:
    """Loss and every weight and bias derivative of the ReLU MLP, in one native call.

    Equivalent to :func:`forward` then :func:`backward`, but the intermediates stay in native
    memory; for large batches the samples go forward and back in blocks that stay in cache, so
    no activation is kept for the whole batch. The sums over samples are then grouped by block,
    so results may differ from :func:`backward`'s in the last bits (never with the number of
    threads or the machine's load).

    Parameters
    ----------
    net_input : array_like, shape (D_0, N)
    y : float or array_like, broadcastable to (D_{K+1}, N)
    all_weights, all_biases : list of array_like
        As in :func:`forward`.
    relu_grad_at_zero : float, default 1.0
        As in :func:`backward`.
    loss : {"squared_error", "cross_entropy"}, default "squared_error"
        The notebook's ``0.5 (f_K - y)^2``, or softmax cross-entropy over the D_{K+1} outputs
        (``y`` int class labels of shape (N,), or one-hot / probability columns like f_K), as
        :func:`backprop_core.fit` and :func:`backprop_core.reference.gradients` define them.
    reduction : {"sum", "mean"}, default "sum"
        Summed over samples (the notebook), or divided by N (scikit-learn, PyTorch).

    Returns
    -------
    loss : numpy scalar
        ``sum 0.5 (f_K - y)^2`` by default; the chosen loss and reduction otherwise.
    all_dl_dweights, all_dl_dbiases : list of ndarray
        As in :func:`backward`.
    Examples
    --------
    >>> import backprop_core as bc
    >>> from backprop_core.examples import mlp_example
    >>> e = mlp_example()
    >>> g = bc.gradients(e.net_input, e.y, e.all_weights, e.all_biases)
    >>> round(float(g.loss), 3), round(float(g.all_dl_dbiases[0][2, 0]), 3)  # notebook 7.2
    (478.118, 8.447)
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    if check_loss(loss, reduction):
        return _tuple_new(Gradients, _core.gradients(net_input, y, all_weights, all_biases, c))
    return _tuple_new(
        Gradients, loss_gradients(net_input, y, all_weights, all_biases, c, loss, reduction)
    )
