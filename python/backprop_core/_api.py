"""The public native functions: the contract, stated once. Options are keyword-only and checked
here; results are named tuples. The compiled core checks shapes and applies the dtype policy
(backprop_core._dtype) where arrays need converting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from ._results import (
    NOTEBOOK_CHAIN,
    Backward,
    Forward,
    Gradients,
    ToyBackward,
    ToyForward,
    ToyGradients,
)

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
    c = float(value)
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"relu_grad_at_zero: expected a value in [0, 1], got {value!r}")
    return c


def toy_forward(
    x: Any, beta: Any, omega: Any, *, activations: Sequence[str] = NOTEBOOK_CHAIN
) -> ToyForward:
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
    """
    return _tuple_new(ToyForward, _core.toy_forward(x, beta, omega, activations))


def toy_backward(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    *,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    relu_grad_at_zero: float = 1.0,
) -> ToyBackward:
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
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    return _tuple_new(ToyBackward, _core.toy_backward(x, y, beta, omega, activations, c))


def toy_gradients(
    x: Any,
    y: Any,
    beta: Any,
    omega: Any,
    *,
    activations: Sequence[str] = NOTEBOOK_CHAIN,
    relu_grad_at_zero: float = 1.0,
) -> ToyGradients:
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
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    return _tuple_new(ToyGradients, _core.toy_gradients(x, y, beta, omega, activations, c))


def forward(net_input: Any, all_weights: Sequence[Any], all_biases: Sequence[Any]) -> Forward:
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
    """
    return _tuple_new(Forward, _core.forward(net_input, all_weights, all_biases))


def backward(
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    all_f: Sequence[Any],
    all_h: Sequence[Any],
    y: Any,
    *,
    relu_grad_at_zero: float = 1.0,
) -> Backward:
    """Backward pass of the ReLU MLP of notebook 7.2 (its ``backward_pass``).

    The loss is ``sum over outputs and samples of 0.5 (f_K - y)^2``.

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

    Returns
    -------
    all_dl_dweights, all_dl_dbiases : list of ndarray
        Derivatives with the shapes of the weights and biases, summed over samples.

    Raises
    ------
    ValueError
        As :func:`forward`; ``all_f``/``all_h`` of the wrong length or with shapes inconsistent
        with the weights; ``y`` not broadcastable to the output.
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    return _tuple_new(Backward, _core.backward(all_weights, all_biases, all_f, all_h, y, c))


def gradients(
    net_input: Any,
    y: Any,
    all_weights: Sequence[Any],
    all_biases: Sequence[Any],
    *,
    relu_grad_at_zero: float = 1.0,
) -> Gradients:
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

    Returns
    -------
    loss : numpy scalar
        ``sum 0.5 (f_K - y)^2``.
    all_dl_dweights, all_dl_dbiases : list of ndarray
        As in :func:`backward`.
    """
    c = check_relu_grad_at_zero(relu_grad_at_zero)
    return _tuple_new(Gradients, _core.gradients(net_input, y, all_weights, all_biases, c))
