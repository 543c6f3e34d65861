"""The worked examples of notebooks 7.1 and 7.2, built exactly as the notebooks build them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ToyExample(NamedTuple):
    x: float
    y: float
    beta: np.ndarray  # beta_0 .. beta_3
    omega: np.ndarray  # omega_0 .. omega_3
    activations: tuple[str, ...]


class MLPExample(NamedTuple):
    net_input: np.ndarray
    y: float
    all_weights: list[np.ndarray]
    all_biases: list[np.ndarray]


def toy_example() -> ToyExample:
    """Notebook 7.1's parameters, sample and target."""
    return ToyExample(
        x=2.3,
        y=2.0,
        beta=np.array([1.0, 2.0, -3.0, 0.4]),
        omega=np.array([0.1, -0.4, 2.0, 3.0]),
        activations=("sin", "exp", "cos"),
    )


def mlp_example(K: int = 5, D: int = 6, D_i: int = 1, D_o: int = 1, seed: int = 44) -> MLPExample:
    """Notebook 7.2's network: drawn from ``np.random.seed(seed)`` in the notebook's order.

    Uses numpy's legacy global generator, as the notebook does, and restores its state after.
    """
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        all_weights: list[np.ndarray] = [np.empty(0)] * (K + 1)
        all_biases: list[np.ndarray] = [np.empty(0)] * (K + 1)
        all_weights[0] = np.random.normal(size=(D, D_i))
        all_weights[-1] = np.random.normal(size=(D_o, D))
        all_biases[0] = np.random.normal(size=(D, 1))
        all_biases[-1] = np.random.normal(size=(D_o, 1))
        for layer in range(1, K):
            all_weights[layer] = np.random.normal(size=(D, D))
            all_biases[layer] = np.random.normal(size=(D, 1))
    finally:
        np.random.set_state(state)
    return MLPExample(np.ones((D_i, 1)) * 1.2, 30.0, all_weights, all_biases)
