"""Pictures of the backward pass: the toy chain as a computational graph, and the MLP's gradients.

Needs matplotlib, the optional extra ``plot``: ``pip install "backprop_core[plot]"``. matplotlib is
imported only when a function here is called, so ``import backprop_core.plot`` always works. The
figures are plain :class:`matplotlib.figure.Figure` objects on the Agg canvas: nothing touches
pyplot's global state, so they are safe in scripts, tests and servers without a display.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _api, reference

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["mlp_gradients", "toy_graph"]

INSTALL_HINT = 'plotting needs matplotlib: pip install "backprop_core[plot]"'

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
FORWARD_COLOUR = "#0072B2"  # blue: values of the forward pass
BACKWARD_COLOUR = "#D55E00"  # vermillion: dl/d(node) of the backward pass
LOCAL_COLOUR = "#009E73"  # green: local derivatives on the edges
NODE_FACE = "#F4F4F4"
PARAM_FACE = "#FFF8E1"

# toy_graph's geometry, in data units; one unit is UNIT_INCHES on its own figure. The text is
# sized in points, so the boxes are sized for the text at this scale.
UNIT_INCHES = 0.62
STEP = 2.4  # between the centres of neighbouring nodes of the chain
NODE_W, NODE_H = 1.25, 1.0
PARAM_W, PARAM_H = 1.05, 1.0
PARAM_Y = -2.5  # the row of parameter nodes, under the chain
PARAM_DX = 0.62  # beta_k sits left of f_k, omega_k right of it


def _matplotlib() -> None:
    """Import matplotlib, or say how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e


def _new_figure(width: float, height: float, **kwargs: Any) -> Figure:
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)  # attaches itself: drawing and savefig go through Agg
    return fig


def _fmt(v: float | np.floating[Any]) -> str:
    """Three decimals, as the notebooks print, unless that would hide the value or overflow."""
    v = float(v)
    if v == 0 or (1e-3 <= abs(v) < 1e4) or not np.isfinite(v):
        return f"{v:.3f}"
    return f"{v:.2e}"


def _short(v: float) -> str:
    """An input as a reader typed it: 2.3, 2.0, 0.1235."""
    return np.format_float_positional(v, precision=4, trim="0")


# ----------------------------------------------------------------------------- the toy chain


@dataclass
class _Node:
    key: str
    label: str  # mathtext
    x: float
    y: float
    value: float | np.floating[Any]
    grad: float | np.floating[Any]
    param: bool = False

    @property
    def half(self) -> tuple[float, float]:
        return ((PARAM_W if self.param else NODE_W) / 2, (PARAM_H if self.param else NODE_H) / 2)


@dataclass
class _Edge:
    tail: str
    head: str
    symbol: str  # mathtext for the local derivative d(head)/d(tail)
    value: float | np.floating[Any]


# How each activation's derivative dh_k/df_{k-1} reads, given the names of f_{k-1} and h_k: in
# terms of h where that is shorter, as the backward pass computes it.
_DERIVATIVE_SYMBOL: dict[str, Callable[[str, str], str]] = {
    "identity": lambda f, h: "1",
    "sin": lambda f, h: rf"\cos {f}",
    "cos": lambda f, h: rf"-\sin {f}",
    "exp": lambda f, h: rf"e^{{{f}}}",
    "tanh": lambda f, h: rf"1-{h}^2",
    "sigmoid": lambda f, h: rf"{h}(1-{h})",
    "relu": lambda f, h: rf"[{f} \geq 0]",
}

_FUNCTION_SYMBOL = {
    "identity": "",
    "sin": r"\sin",
    "cos": r"\cos",
    "exp": r"\exp",
    "tanh": r"\tanh",
    "sigmoid": r"\sigma",
    "relu": r"\mathrm{ReLU}",
}


def _chain_formula(activations: Sequence[str]) -> str:
    inner = r"\beta_0 + \omega_0 x"
    for k, name in enumerate(activations, start=1):
        inner = rf"\beta_{{{k}}} + \omega_{{{k}}}\,{_FUNCTION_SYMBOL[name]}({inner})"
    return rf"$f_{{{len(activations)}}} = {inner}$"


def _toy_graph_parts(
    x: float, y: float, beta: Any, omega: Any, activations: Sequence[str]
) -> tuple[list[_Node], list[_Edge], float]:
    """The nodes (with positions, values, derivatives) and edges of the chain's graph."""
    r = _api.toy_backward(x, y, beta, omega, activations=activations)
    beta = np.asarray(beta, dtype=r.f.dtype)
    omega = np.asarray(omega, dtype=r.f.dtype)
    L = len(activations)
    f, h, dl_df, dl_dh = r.f, r.h, r.dl_df, r.dl_dh

    chain: list[_Node] = [_Node("x", "$x$", 0.0, 0.0, x, omega[0] * dl_df[0])]
    edges: list[_Edge] = [_Edge("x", "f0", r"\omega_0", omega[0])]
    for k in range(L + 1):
        if k:
            name = activations[k - 1]
            _, da = reference.ACTIVATIONS[name]
            local = da(f[k - 1 : k], h[k - 1 : k], 1.0)[0]  # the native default at ReLU's kink
            chain.append(_Node(f"h{k}", f"$h_{{{k}}}$", 0, 0, h[k - 1], dl_dh[k - 1]))
            symbol = _DERIVATIVE_SYMBOL[name](f"f_{{{k - 1}}}", f"h_{{{k}}}")
            edges.append(_Edge(f"f{k - 1}", f"h{k}", symbol, local))
            edges.append(_Edge(f"h{k}", f"f{k}", rf"\omega_{{{k}}}", omega[k]))
        chain.append(_Node(f"f{k}", f"$f_{{{k}}}$", 0, 0, f[k], dl_df[k]))
    chain.append(_Node("loss", r"$\ell$", 0, 0, r.loss, 1.0))
    edges.append(_Edge(f"f{L}", "loss", rf"2(f_{{{L}}}-y)", 2 * (f[L] - y)))
    for i, node in enumerate(chain):
        node.x = i * STEP

    where = {n.key: n for n in chain}
    params: list[_Node] = []
    for k in range(L + 1):
        fx = where[f"f{k}"].x
        b_label, w_label = rf"$\beta_{{{k}}}$", rf"$\omega_{{{k}}}$"
        b_x, w_x = fx - PARAM_DX, fx + PARAM_DX
        params.append(_Node(f"beta{k}", b_label, b_x, PARAM_Y, beta[k], r.dl_dbeta[k], True))
        params.append(_Node(f"omega{k}", w_label, w_x, PARAM_Y, omega[k], r.dl_domega[k], True))
        edges.append(_Edge(f"beta{k}", f"f{k}", "1", 1.0))
        # omega_k multiplies h_k, or x for k = 0.
        multiplied = ("x", x) if k == 0 else (f"h_{{{k}}}", h[k - 1])
        edges.append(_Edge(f"omega{k}", f"f{k}", *multiplied))
    # y is an input of the loss as much as f_L is; its derivative completes the picture.
    params.append(_Node("y", "$y$", where["loss"].x, PARAM_Y, y, -2 * (f[L] - y), True))
    edges.append(_Edge("y", "loss", rf"-2(f_{{{L}}}-y)", -2 * (f[L] - y)))
    return chain + params, edges, float(r.loss)


def _exit_point(node: _Node, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from the node's centre toward a point leaves the node's box."""
    dx, dy = toward[0] - node.x, toward[1] - node.y
    hw, hh = node.half
    t = min(hw / abs(dx) if dx else np.inf, hh / abs(dy) if dy else np.inf)
    return node.x + t * dx, node.y + t * dy


def _draw_node(ax: Axes, node: _Node) -> None:
    from matplotlib.patches import FancyBboxPatch

    hw, hh = node.half
    ax.add_patch(
        FancyBboxPatch(
            (node.x - hw, node.y - hh), 2 * hw, 2 * hh,
            boxstyle="round,pad=0,rounding_size=0.15",
            facecolor=PARAM_FACE if node.param else NODE_FACE, edgecolor="#444444", linewidth=1.0,
        )
    )  # fmt: skip
    # Three lines, each its own Text so each has its colour: name, forward value, dl/d(node).
    ax.text(node.x, node.y + 0.27, node.label, ha="center", va="center", fontsize=12)
    ax.text(node.x, node.y - 0.04, _fmt(node.value), ha="center", va="center",
            fontsize=9, color=FORWARD_COLOUR)  # fmt: skip
    ax.text(node.x, node.y - 0.3, _fmt(node.grad), ha="center", va="center",
            fontsize=9, color=BACKWARD_COLOUR, fontweight="bold")  # fmt: skip


def _draw_edge(ax: Axes, tail: _Node, head: _Node, edge: _Edge) -> None:
    from matplotlib.patches import FancyArrowPatch

    start = _exit_point(tail, (head.x, head.y))
    end = _exit_point(head, (tail.x, tail.y))
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, color="#444444",
                        linewidth=1.1, shrinkA=0, shrinkB=1)
    )  # fmt: skip
    mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
    style: dict[str, Any] = dict(fontsize=9, color=LOCAL_COLOUR)
    symbol = f"${edge.symbol}$"
    if start[1] == end[1]:
        # Along the chain: the derivative's formula above the arrow, its value below.
        ax.text(mx, my + 0.1, symbol, ha="center", va="bottom", **style)
        ax.text(mx, my - 0.1, _fmt(edge.value), ha="center", va="top", **style)
    else:
        # From a parameter up to its f_k: beside the arrow, outward (beta_k's to the left,
        # omega_k's to the right), so the two labels of one f_k do not meet between the arrows.
        # Straight up (y into the loss): to the left, where the row has room.
        side = 1 if end[0] < start[0] else -1
        ha = "left" if side > 0 else "right"
        ax.text(mx + 0.12 * side, my, f"{symbol}\n{_fmt(edge.value)}", ha=ha, va="center",
                linespacing=1.4, **style)  # fmt: skip


def _legend_handles() -> list[Any]:
    from matplotlib.patches import Patch

    return [
        Patch(color=FORWARD_COLOUR, label="forward value"),
        Patch(color=BACKWARD_COLOUR, label=r"backward: $\partial\ell/\partial$(node)"),
        Patch(color=LOCAL_COLOUR,
              label=r"on each edge: local derivative $\partial$(head)/$\partial$(tail)"),
    ]  # fmt: skip


LEGEND_STYLE: dict[str, Any] = dict(ncol=3, frameon=False, fontsize=9, handlelength=1.0)


def toy_graph(
    x: float,
    y: float,
    beta: Any,
    omega: Any,
    activations: Sequence[str] = ("sin", "exp", "cos"),
    ax: Axes | None = None,
) -> Figure:
    """Draw the toy chain of notebook 7.1 as a computational graph, with both passes written on it.

    The chain ``x -> f_0 -> h_1 -> f_1 -> ... -> f_L -> loss`` runs left to right; under each
    ``f_k`` its parameters ``beta_k`` and ``omega_k`` feed it, and under the loss the target ``y``.
    Every node shows its name, its forward value (blue) and its derivative ``dl/d(node)`` (orange,
    bold) from :func:`backprop_core.toy_backward` (for ``x`` and ``y``, one chain-rule step
    from it). Every edge shows its local derivative (green),
    as formula and value: ``df_k/dh_k = omega_k``, ``dh_k/df_{k-1} = a_k'(f_{k-1})``,
    ``df_k/dbeta_k = 1``, ``df_k/domega_k = h_k`` (``x`` for k = 0), ``dl/df_L = 2(f_L - y)``.
    Backpropagation is then visible: a node's orange number is the sum, over its outgoing edges,
    of green times the head's orange number.

    Parameters
    ----------
    x, y : float
        One sample and its target: a graph shows one sample's numbers.
    beta, omega : array_like, shape (L + 1,)
        Offsets and slopes, as in :func:`backprop_core.toy_forward`.
    activations : sequence of str, length L, default ``("sin", "exp", "cos")``
        The chain's activations, as in :func:`backprop_core.toy_forward`. ReLU's derivative at
        exactly 0 is taken as 1, the package's default.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (its limits and aspect are set, its frame hidden, the formula becomes
        its title). The text is sized in points for an axes about ``1.5 * (2L + 3)`` inches wide
        and 3 tall; a smaller one crowds it. Default: a new figure of that size.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure holding ``ax``.

    Raises
    ------
    ImportError
        matplotlib is not installed; install the extra ``backprop_core[plot]``.
    ValueError
        ``x`` or ``y`` not a scalar, or anything :func:`backprop_core.toy_backward` rejects.

    Examples
    --------
    >>> from backprop_core.examples import toy_example
    >>> from backprop_core.plot import toy_graph
    >>> e = toy_example()
    >>> fig = toy_graph(e.x, e.y, e.beta, e.omega, e.activations)
    >>> fig.savefig("toy_graph.png")  # doctest: +SKIP
    """
    if np.ndim(x) != 0 or np.ndim(y) != 0:
        raise ValueError(
            f"toy_graph draws one sample: x and y must be scalars, got shapes "
            f"{np.shape(x)} and {np.shape(y)}"
        )
    activations = tuple(activations)
    x, y = float(x), float(y)
    nodes, edges, loss = _toy_graph_parts(x, y, beta, omega, activations)

    x_lo, x_hi = -NODE_W / 2 - 0.2, max(n.x for n in nodes) + NODE_W / 2 + 0.2
    y_lo, y_hi = PARAM_Y - PARAM_H / 2 - 0.2, NODE_H / 2 + 0.2
    title = (
        f"{_chain_formula(activations)},   $x$ = {_short(x)}, $y$ = {_short(y)},   "
        rf"$\ell = (f_{{{len(activations)}}} - y)^2$ = {_fmt(loss)}"
    )
    if ax is None:
        # The graph at UNIT_INCHES per unit, with a band on top for the title and the legend;
        # never narrower than the legend (short chains). Equal aspect centres the graph.
        head = 0.9
        width = max((x_hi - x_lo) * UNIT_INCHES, 8.5)
        height = (y_hi - y_lo) * UNIT_INCHES + head
        fig = _new_figure(width, height)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - head / height))
        fig.suptitle(title, fontsize=11, y=1.0 - 0.1 / height, va="top")
        fig.legend(handles=_legend_handles(), loc="upper center",
                   bbox_to_anchor=(0.5, 1.0 - 0.45 / height), **LEGEND_STYLE)  # fmt: skip
    else:
        _matplotlib()
        y_hi += 0.8  # room for the legend inside the caller's axes
        ax.set_title(title, fontsize=11)
        ax.legend(handles=_legend_handles(), loc="upper left", borderaxespad=0.2, **LEGEND_STYLE)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_aspect("equal")
    ax.set_axis_off()

    where = {n.key: n for n in nodes}
    for edge in edges:
        _draw_edge(ax, where[edge.tail], where[edge.head], edge)
    for node in nodes:
        _draw_node(ax, node)
    fig_out = ax.get_figure()
    assert fig_out is not None
    return fig_out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- the ReLU MLP


def _as_matrix(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1) if a.ndim == 1 else a  # biases may be (D,) or (D, 1)


# mlp_gradients' heatmap geometry, in cells (one matrix entry is a 1 x 1 cell).
GAP_WB = 0.4  # between dl/dW_k and dl/db_k
GAP_LAYERS = 1.5  # between layers
LABEL_INCHES = 0.5  # above the matrices, for "layer k" and "W_k  b_k"
MIN_SLOT_INCHES = 0.75  # each layer's share of the width, at least: its labels must fit


def mlp_gradients(
    all_weights: Sequence[Any], all_biases: Sequence[Any], net_input: Any, y: Any
) -> Figure:
    """Heatmaps of the ReLU MLP's weight and bias derivatives, and the gradient norm per layer.

    The derivatives come from :func:`backprop_core.gradients` (loss ``sum 0.5 (f_K - y)^2``,
    summed over samples). The top panel holds, left to right for each layer k, ``dl/dW_k`` (rows:
    the layer's outputs, columns: its inputs, as the matrix is stored) and ``dl/db_k`` beside it.
    Every entry is a square cell of the same size, and all heatmaps share ONE symmetric diverging
    colour scale, ``[-m, m]`` with ``m`` the largest absolute derivative anywhere, so colours
    compare across layers (white is 0, red positive, blue negative) and one colorbar serves
    them all. The bottom panel is a bar chart of the Frobenius norm of ``dl/dW_k`` and the
    Euclidean norm of ``dl/db_k`` per layer.

    Parameters
    ----------
    all_weights : list of array_like, K + 1 entries
        ``all_weights[k]`` of shape (D_{k+1}, D_k), as in :func:`backprop_core.forward`.
    all_biases : list of array_like, K + 1 entries
        ``all_biases[k]`` of shape (D_{k+1}, 1) or (D_{k+1},).
    net_input : array_like, shape (D_0, N)
        N samples as columns.
    y : float or array_like
        Targets, broadcastable to the output's shape (D_{K+1}, N).

    Returns
    -------
    matplotlib.figure.Figure
        A new figure, sized to the network.

    Raises
    ------
    ImportError
        matplotlib is not installed; install the extra ``backprop_core[plot]``.
    ValueError
        Anything :func:`backprop_core.gradients` rejects (shapes that do not chain, ...).

    Examples
    --------
    >>> from backprop_core.examples import mlp_example
    >>> from backprop_core.plot import mlp_gradients
    >>> e = mlp_example()
    >>> fig = mlp_gradients(e.all_weights, e.all_biases, e.net_input, e.y)
    >>> fig.savefig("mlp_gradients.png")  # doctest: +SKIP
    """
    loss, dW, db = _api.gradients(net_input, y, all_weights, all_biases)
    dW = [np.asarray(d, dtype=np.float64) for d in dW]
    db = [_as_matrix(np.asarray(d, dtype=np.float64)) for d in db]

    # Cell size: the whole row of matrices about 12 inches wide at most, the tallest 4 inches.
    cols = sum(d.shape[1] + GAP_WB + 1 + GAP_LAYERS for d in dW)
    rows = max(1, *(d.shape[0] for d in dW))  # 1: a network of width-0 outputs still has a row
    cell = float(min(0.4, 12.0 / cols, 4.0 / rows))
    slots = [max(d.shape[1] + GAP_WB + 1 + GAP_LAYERS, MIN_SLOT_INCHES / cell) for d in dW]
    heat_w, heat_h = sum(slots) * cell, rows * cell + LABEL_INCHES
    fig = _new_figure(max(7.0, heat_w + 1.6), heat_h + 3.4, layout="constrained")
    heat_ax, norm_ax = fig.subplots(2, 1, height_ratios=[heat_h, 2.3])

    image = _heatmaps(heat_ax, dW, db, slots, cell)
    bar = fig.colorbar(image, ax=heat_ax, location="right", shrink=0.9, aspect=15, pad=0.01)
    bar.set_label("derivative", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    heat_ax.set_title(
        r"$\partial\ell/\partial W_k$ and $\partial\ell/\partial b_k$ of each layer, "
        "on one shared colour scale",
        fontsize=10,
    )
    _norm_panel(norm_ax, dW, db)
    fig.suptitle(
        rf"ReLU MLP, {len(dW)} weight layers:   "
        rf"$\ell = \sum\, \frac{{1}}{{2}}(f_{{{len(dW) - 1}}} - y)^2$ = {_fmt(loss)}",
        fontsize=11,
    )
    return fig


def _heatmaps(
    ax: Axes, dW: list[np.ndarray], db: list[np.ndarray], slots: list[float], cell: float
) -> Any:
    """Every matrix in one axes, top-aligned, one data unit per entry: equal cells by construction,
    which separate axes under a layout engine do not give."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    largest = max(float(np.abs(d).max(initial=0.0)) for d in [*dW, *db])
    # Symmetric, so 0 sits at the diverging colormap's white centre; all-zero still needs a range.
    bound = largest if np.isfinite(largest) and largest > 0 else 1.0
    norm = Normalize(vmin=-bound, vmax=bound)

    rows = max(1, *(d.shape[0] for d in dW))
    label_units = LABEL_INCHES / cell
    image: Any = ScalarMappable(norm=norm, cmap="RdBu_r")  # the colour bar's, if all are empty
    left = 0.0
    for k, (w, b) in enumerate(zip(dW, db)):
        block_w = w.shape[1] + GAP_WB + 1
        x0 = left + (slots[k] - GAP_LAYERS - block_w) / 2  # centred in a slot widened for labels
        narrow = w.shape[1] * cell < 0.3  # inches: about the width of a label "W_k"
        for x, m, name in [(x0, w, "W"), (x0 + w.shape[1] + GAP_WB, b, "b")]:
            r, c = m.shape
            if m.size:  # an empty matrix (a width-0 layer) is only its frame
                image = ax.imshow(m, cmap="RdBu_r", norm=norm, interpolation="nearest",
                                  extent=(x, x + c, r, 0))  # fmt: skip
            if max(r, c) <= 16:  # cell borders while they stay visible; a frame always
                for i in range(1, r):
                    ax.plot([x, x + c], [i, i], color="#d0d0d0", linewidth=0.5)
                for j in range(1, c):
                    ax.plot([x + j, x + j], [0, r], color="#d0d0d0", linewidth=0.5)
            ax.add_patch(Rectangle((x, 0), c, r, fill=False, edgecolor="#555555", linewidth=0.8))
            if not narrow:
                ax.text(x + c / 2, -0.12 * label_units, f"${name}_{{{k}}}$", ha="center",
                        va="bottom", fontsize=9)  # fmt: skip
        if narrow:  # W_k and b_k side by side would overlap: one label over both
            ax.text(x0 + block_w / 2, -0.12 * label_units, f"$W_{{{k}}}, b_{{{k}}}$", ha="center",
                    va="bottom", fontsize=9)  # fmt: skip
        ax.text(x0 + block_w / 2, -0.55 * label_units, f"layer {k}", ha="center", va="bottom",
                fontsize=9, color="#333333")  # fmt: skip
        left += slots[k]
    ax.set_xlim(-0.2, left - GAP_LAYERS + 0.2)
    ax.set_ylim(rows + 0.2, -label_units)  # inverted: row 0 on top, as a matrix is read
    ax.set_aspect("equal")
    ax.set_axis_off()
    return image


def _norm_panel(ax: Axes, dW: list[np.ndarray], db: list[np.ndarray]) -> None:
    layers = np.arange(len(dW))
    w_norms = [float(np.linalg.norm(d)) for d in dW]  # Frobenius for a matrix
    b_norms = [float(np.linalg.norm(d)) for d in db]
    half = 0.38
    w_bars = ax.bar(layers - half / 2, w_norms, half, label=r"$\|\partial\ell/\partial W_k\|_F$",
                    color="#4C72B0")  # fmt: skip
    b_bars = ax.bar(layers + half / 2, b_norms, half, label=r"$\|\partial\ell/\partial b_k\|_2$",
                    color="#DD8452")  # fmt: skip
    for bars in (w_bars, b_bars):
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(layers, [f"layer {k}" for k in layers])
    ax.set_ylabel("gradient norm", fontsize=9)
    ax.set_title("gradient norm per layer", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.margins(y=0.15)  # room for the bar labels
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
