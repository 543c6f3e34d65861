# Type stub of _results.py: the same named results, generic in the dtype of their arrays (generic
# NamedTuples need Python 3.11 at run time, so only type checkers see them generic).
from typing import Generic, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.floating]
NOTEBOOK_CHAIN: tuple[str, str, str]

_F = TypeVar("_F", bound=np.floating)

class ToyForward(NamedTuple, Generic[_F]):
    f: npt.NDArray[_F]
    h: npt.NDArray[_F]

class ToyBackward(NamedTuple, Generic[_F]):
    loss: _F
    f: npt.NDArray[_F]
    h: npt.NDArray[_F]
    dl_df: npt.NDArray[_F]
    dl_dh: npt.NDArray[_F]
    dl_dbeta: npt.NDArray[_F]
    dl_domega: npt.NDArray[_F]

class ToyGradients(NamedTuple, Generic[_F]):
    loss: _F
    dl_dbeta: npt.NDArray[_F]
    dl_domega: npt.NDArray[_F]

class Forward(NamedTuple, Generic[_F]):
    net_output: npt.NDArray[_F]
    all_f: list[npt.NDArray[_F]]
    all_h: list[npt.NDArray[_F]]

class Backward(NamedTuple, Generic[_F]):
    all_dl_dweights: list[npt.NDArray[_F]]
    all_dl_dbiases: list[npt.NDArray[_F]]

class Gradients(NamedTuple, Generic[_F]):
    loss: _F
    all_dl_dweights: list[npt.NDArray[_F]]
    all_dl_dbiases: list[npt.NDArray[_F]]
