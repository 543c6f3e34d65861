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
from ._chain import Chain
from ._model import MLP
from ._results import Backward, Forward, Gradients, ToyBackward, ToyForward, ToyGradients
from ._threads import get_num_threads, set_num_threads
from ._train import fit, fit_lbfgs
from ._train_results import FitHistory
from .gradcheck import GradcheckReport, gradcheck

__version__ = "0.1.0"

_MAX_THREADS = 256  # thread_budget's cap


def _check_thread_setting() -> None:
    """Warn about a BACKPROP_CORE_NUM_THREADS the core ignores or caps, reading it exactly as the
    core's thread_budget (parallel.hpp) does: ASCII digits only, at least 1, at most 256 threads.
    (str.isdigit and int() also take superscript, full-width and other scripts' digits.)"""
    value = _os.environ.get("BACKPROP_CORE_NUM_THREADS")
    if value is None:
        return
    digits = value != "" and all("0" <= c <= "9" for c in value)
    if not digits or value.strip("0") == "":
        _warnings.warn(
            f"BACKPROP_CORE_NUM_THREADS={value!r} is not a positive integer in ASCII digits and "
            "is ignored: backprop_core uses the CPUs this process may run on",
            RuntimeWarning,
            stacklevel=3,
        )
    # Four significant digits already exceed the cap: int() of thousands of digits would raise.
    elif len(value.lstrip("0")) > 3 or int(value) > _MAX_THREADS:
        _warnings.warn(
            f"BACKPROP_CORE_NUM_THREADS={value!r} is more than {_MAX_THREADS}: backprop_core uses "
            f"{_MAX_THREADS} threads",
            RuntimeWarning,
            stacklevel=3,
        )


_check_thread_setting()

__all__ = [
    "Backward",
    "Chain",
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
    "get_num_threads",
    "gradients",
    "reference",
    "set_num_threads",
    "toy_backward",
    "toy_forward",
    "toy_gradients",
]
