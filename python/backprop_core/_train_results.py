"""Result types of training, shared by the native ``fit`` and the reference's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


@dataclass
class FitHistory:
    """What a training run did, epoch by epoch.

    Attributes
    ----------
    loss : list of float
        The training objective of each epoch: each minibatch's loss plus its L2 penalty, taken at
        the weights that minibatch started from, summed over the epoch's minibatches ("sum"), or
        averaged over the epoch's samples with each minibatch weighted by its size ("mean"), as
        scikit-learn's ``loss_curve_``.
    validation_loss : list of float
        With early stopping, the loss on the held-out samples after each epoch (no penalty).
    epochs : int
        Epochs completed.
    steps : int
        Optimizer steps taken (minibatches).
    learning_rate : float
        The learning rate at the end (schedules change it).
    stop_reason : str
        ``"epochs"`` (all ran), ``"no_improvement"`` (the plateau rule), ``"callback"`` or
        ``"interrupt"``.
    best_epoch : int or None
        With early stopping, the epoch (0-based) whose weights were kept; else None.
    """

    loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    learning_rate: float = 0.0
    stop_reason: str = "epochs"
    best_epoch: int | None = None


class Fit(NamedTuple):
    """The reference's training result: new parameters and the history."""

    all_weights: list[np.ndarray]
    all_biases: list[np.ndarray]
    history: FitHistory
