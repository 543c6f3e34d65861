"""backprop_core.Chain: notebook 7.1's chain whose parameters and activations live natively."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from . import _core
from ._results import NOTEBOOK_CHAIN, ToyForward, ToyGradients


def _not_initialised() -> NoReturn:
    raise RuntimeError(
        "Chain: not initialised (made without __init__, e.g. by Chain.__new__ or a pickle that "
        "carries no parameters); construct it as Chain(beta, omega, activations=...)"
    )


class Chain:
    """The toy chain of notebook 7.1 with its parameters and activations held natively.

    ``f_0 = beta_0 + omega_0 x``, ``f_k = beta_k + omega_k a_k(f_{k-1})`` for k = 1..L, loss
    ``sum (f_L - y)^2``: the chain of :func:`backprop_core.toy_gradients`, with its arguments
    checked and parsed once, at construction, instead of on every call. Made for loops over
    single samples: ``gradients(x, y, out=(dl_dbeta, dl_domega))`` with Python floats allocates
    nothing but the loss and its result tuple.

    Parameters
    ----------
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes; copied in.
    activations : sequence of str, length L, default ("sin", "exp", "cos")
        As in :func:`backprop_core.toy_forward`.

    Notes
    -----
    The dtype (float32 or float64) is fixed at construction by numpy's promotion of ``beta`` and
    ``omega``. ``beta`` and ``omega`` are writeable views of the native parameters, so
    ``c.beta[:] -= lr * dl_dbeta`` changes the chain. Inputs of another float dtype are refused
    (``TypeError``) rather than cast; Python floats take the chain's dtype. Chains pickle as
    their parameters and activations.

    Examples
    --------
    >>> import numpy as np, backprop_core as bc
    >>> c = bc.Chain([1.0, 2.0, -3.0, 0.4], [0.1, -0.4, 2.0, 3.0])
    >>> c
    Chain(activations=('sin', 'exp', 'cos'), dtype=float64)
    >>> out = (np.empty(4), np.empty(4))
    >>> loss, dl_dbeta, dl_domega = c.gradients(2.3, 2.0, out=out)
    >>> round(float(loss), 3), dl_domega is out[1]
    (0.139, True)
    """

    __slots__ = ("__weakref__", "_handle")

    def __init__(
        self, beta: Any, omega: Any, *, activations: Sequence[str] = NOTEBOOK_CHAIN
    ) -> None:
        # One assignment: a chain being re-initialised is never half old, half new.
        self._handle = _core.chain_new(beta, omega, activations)

    def _native(self) -> Any:
        try:
            return self._handle
        except AttributeError:
            _not_initialised()

    @property
    def beta(self) -> np.ndarray:
        """Writeable view of the offsets, shape (L + 1,)."""
        return _core.chain_parameters(self._native())[0]

    @property
    def omega(self) -> np.ndarray:
        """Writeable view of the slopes, shape (L + 1,)."""
        return _core.chain_parameters(self._native())[1]

    @property
    def activations(self) -> tuple[str, ...]:
        """The activations, by name."""
        return _core.chain_activations(self._native())

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64."""
        return _core.chain_dtype(self._native())

    def forward(self, x: Any) -> ToyForward:
        """Forward pass: ``ToyForward(f, h)`` as :func:`backprop_core.toy_forward` returns.

        Parameters
        ----------
        x : float or array_like, shape () or (N,)
            One sample, or N samples, of the chain's dtype (or Python floats).
        """
        return _core.chain_forward(self._native(), x)

    if TYPE_CHECKING:  # the method itself is native (assigned below the class)

        def gradients(
            self,
            x: Any,
            y: Any,
            *,
            relu_grad_at_zero: float = 1.0,
            out: tuple[np.ndarray, np.ndarray] | None = None,
        ) -> ToyGradients: ...

    def __repr__(self) -> str:
        try:
            handle = self._handle
        except AttributeError:
            return "Chain(<not initialised>)"
        return (
            f"Chain(activations={_core.chain_activations(handle)}, "
            f"dtype={_core.chain_dtype(handle)})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from copies of the parameters: plain arrays pickle anywhere.
        handle = self._native()
        beta, omega = (p.copy() for p in _core.chain_parameters(handle))
        return (_rebuild, (type(self), beta, omega, _core.chain_activations(handle)))

    def __setstate__(self, state: Any) -> NoReturn:
        raise TypeError("Chain: a pickle carries the parameters only (Chain(beta, omega, ...))")

    def __copy__(self) -> Chain:
        return _rebuild(type(self), self.beta, self.omega, self.activations)

    def __deepcopy__(self, memo: dict[int, Any]) -> Chain:
        return self.__copy__()


def _rebuild(cls: type[Chain], beta: Any, omega: Any, activations: Sequence[str]) -> Chain:
    return cls(beta, omega, activations=activations)


# A native method (its docstring at the binding): the per-sample call, with no Python frame.
Chain.gradients = _core.chain_gradients_method(Chain)  # type: ignore[method-assign]
