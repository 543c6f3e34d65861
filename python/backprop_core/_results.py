"""Result types shared by the native functions and the reference."""

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
