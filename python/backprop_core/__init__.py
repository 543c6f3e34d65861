"""backprop_core: forward and backward passes computed natively, checked against numpy.

The toy chain of notebook 7.1 (:func:`toy_forward`, :func:`toy_backward`) and the ReLU MLP of
notebook 7.2 (:func:`forward`, :func:`backward`, :func:`gradients`). :mod:`backprop_core.reference`
holds the same functions in plain numpy.
"""

from __future__ import annotations

from . import reference
from ._api import backward, forward, gradients, toy_backward, toy_forward, toy_gradients
from ._core import MLP
from ._results import ToyBackward, ToyForward
from .gradcheck import GradcheckReport, gradcheck

__version__ = "0.1.0"

__all__ = [
    "GradcheckReport",
    "MLP",
    "ToyBackward",
    "ToyForward",
    "backward",
    "forward",
    "gradcheck",
    "gradients",
    "reference",
    "toy_backward",
    "toy_forward",
    "toy_gradients",
]
