"""``python -m backprop_core fit --out DIR``: fit y = sin(3x) with the native loop and draw the
data, the fitted curve and the loss per epoch (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._model import MLP
from ._train_results import FitHistory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTHS = [1, 32, 32, 1]
OPTIONS: dict[str, Any] = dict(optimizer="adam", learning_rate=0.01, epochs=400, batch_size=32)


def sine_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples x ~ U(-1, 1) (sorted) as a row, y = sin(3x) + N(0, 0.1^2) noise."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, n)).reshape(1, -1)
    return x, np.sin(3 * x) + 0.1 * rng.standard_normal(x.shape)


def sine_fit(seed: int = 0) -> tuple[np.ndarray, np.ndarray, MLP, FitHistory]:
    """The data, and an MLP 1-32-32-1 (He initialisation) fitted to it by Adam natively."""
    x, y = sine_data(seed=seed)
    model = MLP.from_widths(WIDTHS, init="he", seed=seed)
    history = model.fit(x, y, seed=seed, **OPTIONS)
    return x, y, model, history


def figure(x: np.ndarray, y: np.ndarray, model: MLP, history: FitHistory) -> Figure:
    """Left: the samples, sin(3x) and the fit; right: the loss of each epoch (log scale)."""
    from .plot import _new_figure

    fig = _new_figure(10, 4, layout="constrained")
    data, loss = fig.subplots(1, 2)
    grid = np.linspace(-1, 1, 400).reshape(1, -1)
    data.scatter(x[0], y[0], s=10, color="#999999", label="samples (noise sd 0.1)")
    data.plot(grid[0], np.sin(3 * grid[0]), color="#009E73", lw=1.5, ls="--", label="sin(3x)")
    data.plot(grid[0], model.predict(grid)[0], color="#0072B2", lw=2,
              label=f"MLP {'-'.join(map(str, WIDTHS))}")
    data.set(xlabel="x", ylabel="y", title="y = sin(3x), fitted by backprop_core.fit")
    data.legend(loc="lower right")
    loss.semilogy(np.arange(1, len(history.loss) + 1), history.loss, color="#D55E00")
    loss.set(xlabel="epoch", ylabel="mean 0.5 (f - y)^2",
             title=f"loss per epoch ({OPTIONS['optimizer']}, batch {OPTIONS['batch_size']})")
    return fig


def run(out: Path) -> int:
    """Fit, then write ``fit.png`` and ``fit.svg`` into ``out`` and print their paths."""
    x, y, model, history = sine_fit()
    try:
        fig = figure(x, y, model, history)
    except ImportError as e:  # matplotlib is missing; the message says how to install it
        print(f"backprop_core fit: {e}", file=sys.stderr)
        return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        for suffix in ("png", "svg"):
            path = out / f"fit.{suffix}"
            fig.savefig(path, dpi=150, metadata={"Date": None} if suffix == "svg" else None)
            print(path)
    except OSError as e:
        print(f"backprop_core fit: cannot write into {out}: {e}", file=sys.stderr)
        return 1
    print(f"final loss {history.loss[-1]:.4g} after {history.epochs} epochs")
    return 0
