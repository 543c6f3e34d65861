"""Result types shared by the native functions and the reference: named, and tuples still."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating]

# Notebook 7.1's chain, the default everywhere (one tuple: the core remembers the last it parsed).
NOTEBOOK_CHAIN = ("sin", "exp", "cos")


class ToyForward(NamedTuple):
    """Forward pass of the toy chain.

    ``f[k]`` is the pre-activation ``f_k`` (k = 0..L) and ``h[k - 1]`` the activation ``h_k``
    (k = 1..L). For a scalar ``x`` these are 1-D; for ``N`` samples each gains a trailing axis N.
    """

    f: Array
    h: Array


class ToyBackward(NamedTuple):
    """Forward and backward pass of the toy chain.

    ``loss`` is the sum over samples of ``(f_L - y)^2``; ``dl_df`` and ``dl_dh`` have the shapes of
    ``f`` and ``h``; ``dl_dbeta`` and ``dl_domega`` have ``L + 1`` entries, summed over samples.
    """

    loss: np.floating
    f: Array
    h: Array
    dl_df: Array
    dl_dh: Array
    dl_dbeta: Array
    dl_domega: Array


class ToyGradients(NamedTuple):
    """Loss and parameter gradients of the toy chain (no per-sample intermediates)."""

    loss: np.floating
    dl_dbeta: Array
    dl_domega: Array


class Forward(NamedTuple):
    """Forward pass of the MLP: ``net_output`` is ``all_f[K]``; ``all_h[0]`` is the input."""

    net_output: Array
    all_f: list[Array]
    all_h: list[Array]


class Backward(NamedTuple):
    """Derivatives of the loss with respect to every weight and bias, shaped like them."""

    all_dl_dweights: list[Array]
    all_dl_dbiases: list[Array]


class Gradients(NamedTuple):
    """The loss and its derivatives with respect to every weight and bias."""

    loss: np.floating
    all_dl_dweights: list[Array]
    all_dl_dbiases: list[Array]
