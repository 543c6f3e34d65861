"""backprop_core.MLP: a ReLU MLP whose parameters live packed in native memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from . import _core
from ._api import check_loss, check_relu_grad_at_zero, loss_gradients
from ._model_io import ModelMethods
from ._results import Forward, Gradients

_tuple_new = tuple.__new__  # a named result from the core's tuple, without a Python-level call


def _not_initialised() -> NoReturn:
    raise RuntimeError(
        "MLP: not initialised (made without __init__, e.g. by MLP.__new__ or a pickle that "
        "carries no parameters); construct it as MLP(all_weights, all_biases)"
    )


def _written(
    out: Any, dW: list[np.ndarray], db: list[np.ndarray], inputs: list[Any]
) -> tuple[Any, Any]:
    """Copies computed gradients into ``out = (dW_list, db_list)`` after checking it as the
    native path does: two lists of C-contiguous, writeable arrays of the gradients' dtype and
    shapes, none overlapping another or an input."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"out: expected a tuple (all_dl_dweights, all_dl_dbiases), got "
                        f"{type(out).__name__}")
    lists, containers = [], (out[0], out[1])
    for name, given, want in (("out[0]", out[0], dW), ("out[1]", out[1], db)):
        if not isinstance(given, (list, tuple)):
            raise TypeError(f"{name}: expected a list of arrays, got {type(given).__name__}")
        items = list(given)  # read once
        if len(items) != len(want):
            raise ValueError(f"{name}: expected {len(want)} arrays, got {len(items)}")
        for k, (a, w) in enumerate(zip(items, want)):
            if type(a) is not np.ndarray:
                raise TypeError(f"{name}[{k}]: expected a numpy array, got {type(a).__name__}")
            if a.dtype != w.dtype or a.shape != w.shape:
                raise ValueError(f"{name}[{k}]: expected a {w.dtype} array of shape {w.shape}, "
                                 f"got a {a.dtype} array of shape {a.shape}")
            if not a.flags.c_contiguous or not a.flags.writeable:
                raise ValueError(f"{name}[{k}]: expected a C-contiguous, writeable array")
        lists.append(items)
    flat = [*lists[0], *lists[1]]
    for i, a in enumerate(flat):
        for other in flat[i + 1:] + [v for v in inputs if isinstance(v, np.ndarray)]:
            if np.shares_memory(a, other):
                raise ValueError("out: its arrays may not overlap each other, the input, y or "
                                 "the model's parameters")
    for a, g in zip(flat, [*dW, *db]):
        np.copyto(a, g)
    return containers  # (returned as given, as the native path returns them)


class MLP(ModelMethods):  # from_widths, fit, predict, state dicts, save / load
    """A ReLU MLP whose parameters live packed in native memory.

    Parameters
    ----------
    all_weights : list of array_like
        ``all_weights[k]`` of shape (D_{k+1}, D_k); copied in.
    all_biases : list of array_like
        ``all_biases[k]`` of shape (D_{k+1}, 1) or (D_{k+1},); copied in.

    Notes
    -----
    The dtype (float32 or float64) is fixed at construction by numpy's promotion of the
    parameters. ``weights`` and ``biases`` are writeable views of the packed memory, so an update
    such as ``m.weights[0] -= lr * dW[0]`` changes the model (views taken before a call of
    ``__init__`` keep the old parameters alive, detached from the model). Inputs of another float
    dtype are refused (``TypeError``) rather than cast. Models pickle as their parameters (plain
    arrays). One model may be used from several threads at once, and in a forked child: calls
    share no state but the parameters; writing to the parameters while another thread computes
    with them gives that call a mix of old and new values.

    Examples
    --------
    >>> import numpy as np, backprop_core as bc
    >>> m = bc.MLP([np.ones((2, 1)), np.ones((1, 2))], [np.zeros((2, 1)), np.zeros((1, 1))])
    >>> m
    MLP(dims=[1, 2, 1], dtype=float64)
    >>> loss, dW, db = m.gradients(np.array([[1.0]]), 0.0)
    >>> float(loss), dW[1].tolist()
    (2.0, [[2.0, 2.0]])
    """

    __slots__ = ("__weakref__", "_handle")

    def __init__(self, all_weights: Sequence[Any], all_biases: Sequence[Any]) -> None:
        # One assignment: a model being re-initialised is never half old, half new.
        self._handle = _core.model_new(all_weights, all_biases)

    def _native(self) -> Any:
        try:
            return self._handle
        except AttributeError:
            _not_initialised()

    @property
    def weights(self) -> list[np.ndarray]:
        """Writeable views of the weights, ``weights[k]`` of shape (D_{k+1}, D_k)."""
        return _core.model_parameters(self._native(), True)

    @property
    def biases(self) -> list[np.ndarray]:
        """Writeable views of the biases, shaped as given to the constructor."""
        return _core.model_parameters(self._native(), False)

    @property
    def dims(self) -> list[int]:
        """The widths D_0 .. D_{K+1}."""
        return _core.model_dims(self._native())

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64."""
        return _core.model_dtype(self._native())

    def forward(self, net_input: Any) -> Forward[Any]:
        """Forward pass.

        Parameters
        ----------
        net_input : array_like, shape (D_0, N)
            Samples as columns, of the model's dtype.

        Returns
        -------
        Forward
            ``(net_output, all_f, all_h)`` as :func:`backprop_core.forward` returns.
        """
        return _tuple_new(Forward, _core.model_forward(self._native(), net_input))

    def _gradients(
        self,
        net_input: Any,
        y: Any,
        *,
        relu_grad_at_zero: float = 1.0,
        out: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
        loss: str = "squared_error",
        reduction: str = "sum",
    ) -> Gradients[Any]:
        """MLP.gradients for the calls its native fast path leaves (see its docstring): checks,
        converts, and raises the errors."""
        try:
            handle = self._handle
        except AttributeError:
            _not_initialised()
        c = check_relu_grad_at_zero(relu_grad_at_zero)
        if check_loss(loss, reduction):
            return _tuple_new(Gradients, _core.model_gradients(handle, net_input, y, c, out))
        weights = _core.model_parameters(handle, True)
        biases = _core.model_parameters(handle, False)
        value, dW, db = loss_gradients(net_input, y, weights, biases, c, loss, reduction,
                                       np.dtype(weights[0].dtype))
        if out is not None:
            dW, db = _written(out, dW, db, [net_input, y, *weights, *biases])
        return _tuple_new(Gradients, (value, dW, db))

    if TYPE_CHECKING:  # the method itself is native (assigned below the class), typed as this
        gradients = _gradients

    def __repr__(self) -> str:
        try:
            handle = self._handle
        except AttributeError:
            return "MLP(<not initialised>)"
        return f"MLP(dims={_core.model_dims(handle)}, dtype={_core.model_dtype(handle)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from copies of the parameters: plain arrays pickle anywhere.
        handle = self._native()
        weights = [w.copy() for w in _core.model_parameters(handle, True)]
        biases = [b.copy() for b in _core.model_parameters(handle, False)]
        return (type(self), (weights, biases))

    def __setstate__(self, state: Any) -> NoReturn:
        raise TypeError("MLP: a pickle carries the parameters only (MLP(all_weights, all_biases))")

    def __copy__(self) -> MLP:
        return type(self)(self.weights, self.biases)

    def __deepcopy__(self, memo: dict[int, Any]) -> MLP:
        return self.__copy__()


# A native method (its docstring at the binding): the per-sample call, with no Python frame; the
# calls it does not take go to MLP._gradients.
MLP.gradients = _core.model_gradients_method(MLP, MLP._gradients)
