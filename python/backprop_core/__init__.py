"""backprop_core: forward and backward passes computed natively, checked against numpy.

The toy chain of notebook 7.1 (:func:`toy_forward`, :func:`toy_backward`) and the ReLU MLP of
notebook 7.2 (:func:`forward`, :func:`backward`, :func:`gradients`). :mod:`backprop_core.reference`
holds the same functions in plain numpy.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings

from . import reference
from ._api import backward, forward, gradients, toy_backward, toy_forward, toy_gradients
from ._model import MLP
from ._results import Backward, Forward, Gradients, ToyBackward, ToyForward, ToyGradients
from ._train import fit, fit_lbfgs
from ._train_results import FitHistory
from .gradcheck import GradcheckReport, gradcheck

__version__ = "0.1.0"

_threads = _os.environ.get("BACKPROP_CORE_NUM_THREADS")
if _threads is not None and not (_threads.isdigit() and int(_threads) >= 1):
    _warnings.warn(
        f"BACKPROP_CORE_NUM_THREADS={_threads!r} is not a positive integer and is ignored: "
        "backprop_core uses the CPUs this process may run on",
        RuntimeWarning,
        stacklevel=2,
    )

__all__ = [
    "Backward",
    "FitHistory",
    "Forward",
    "GradcheckReport",
    "Gradients",
    "MLP",
    "ToyBackward",
    "ToyForward",
    "ToyGradients",
    "backward",
    "fit",
    "fit_lbfgs",
    "forward",
    "gradcheck",
    "gradients",
    "reference",
    "toy_backward",
    "toy_forward",
    "toy_gradients",
]
