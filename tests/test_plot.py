"""backprop_core.plot: the toy chain's graph carries the notebook's numbers where they belong, the
MLP's heatmaps share one colour scale, and ``python -m backprop_core plot`` writes real images."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import backprop_core as bc  # noqa: E402
from backprop_core import plot  # noqa: E402
from backprop_core._walkthrough import TOY_NOTEBOOK  # noqa: E402
from backprop_core.examples import mlp_example, toy_example  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage, imread  # noqa: E402
from matplotlib.text import Text  # noqa: E402

ACTIVATIONS = ["identity", "sin", "cos", "exp", "tanh", "sigmoid", "relu"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text()]


def node_lines(fig: Figure, label: str) -> list[str]:
    """The strings drawn in the node named ``label`` (mathtext, as "$f_{3}$"): the texts in the
    node's column, within the node's height, in order from the top."""
    (ax,) = fig.axes
    (name,) = [t for t in ax.texts if t.get_text() == label]
    x, y = name.get_position()  # data coordinates, as every text the graph places
    column = [t for t in ax.texts if t.get_position()[0] == x and abs(t.get_position()[1] - y) < 0.8]
    return [t.get_text() for t in sorted(column, key=lambda t: -t.get_position()[1])]


# ----------------------------------------------------------------------------- toy_graph


def test_toy_graph_nodes_carry_the_notebooks_values() -> None:
    e = toy_example()
    fig = plot.toy_graph(e.x, e.y, e.beta, e.omega, e.activations)
    assert isinstance(fig, Figure)
    shown = {t.get_text() for t in texts(fig)}
    assert "2.372" in shown and "0.745" in shown
    # Every value notebook 7.1 prints, as it prints it.
    for name, value in TOY_NOTEBOOK.items():
        assert f"{value:.3f}" in shown, name

    # ... and in the right node: name, forward value, dl/d(node), top to bottom.
    assert node_lines(fig, "$f_{3}$") == ["$f_{3}$", "2.372", "0.745"]
    assert node_lines(fig, "$f_{1}$") == ["$f_{1}$", "1.623", "-17.060"]
    assert node_lines(fig, "$h_{2}$") == ["$h_{2}$", "5.068", "-3.366"]
    assert node_lines(fig, r"$\omega_{0}$") == [r"$\omega_{0}$", "0.100", "5.246"]
    assert node_lines(fig, r"$\ell$") == [r"$\ell$", "0.139", "1.000"]
    assert node_lines(fig, "$x$") == ["$x$", "2.300", f"{0.1 * 2.28090062217:.3f}"]  # omega0 dl/df0


def test_toy_graph_edges_carry_local_derivatives() -> None:
    e = toy_example()
    shown = {t.get_text() for t in texts(plot.toy_graph(e.x, e.y, e.beta, e.omega))}
    f = bc.toy_forward(e.x, e.beta, e.omega).f
    assert {r"$\cos f_{0}$", f"{np.cos(f[0]):.3f}"} <= shown  # dh1/df0
    assert {r"$e^{f_{1}}$", f"{np.exp(f[1]):.3f}"} <= shown  # dh2/df1
    assert {r"$-\sin f_{2}$", f"{-np.sin(f[2]):.3f}"} <= shown  # dh3/df2
    assert {r"$\omega_{2}$", "2.000"} <= shown  # df2/dh2
    assert "$h_{1}$\n0.942" in shown  # df1/domega1
    assert "$1$\n1.000" in shown  # dfk/dbetak
    assert {"$2(f_{3}-y)$", "0.745"} <= shown  # dl/df3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toy_graph_random_chain(seed: int) -> None:
    rng = np.random.default_rng(seed)
    L = int(rng.integers(1, 7))
    activations = tuple(rng.choice(ACTIVATIONS, size=L))
    beta, omega = rng.normal(size=L + 1), rng.normal(size=L + 1)
    x, y = float(rng.normal()), float(rng.normal())
    fig = plot.toy_graph(x, y, beta, omega, activations)

    r = bc.toy_backward(x, y, beta, omega, activations=activations)
    shown = {t.get_text() for t in texts(fig)}
    values = [*r.f, *r.h, *r.dl_df, *r.dl_dh, *r.dl_dbeta, *r.dl_domega, r.loss]
    for v in values:
        assert plot._fmt(v) in shown
    names = {t.get_text() for t in texts(fig) if t.get_text().startswith("$")}
    for k in range(L + 1):
        assert {f"$f_{{{k}}}$", rf"$\beta_{{{k}}}$", rf"$\omega_{{{k}}}$"} <= names
    for k in range(1, L + 1):
        assert f"$h_{{{k}}}$" in names


def test_toy_graph_without_activations() -> None:
    fig = plot.toy_graph(0.5, 1.0, [0.3], [2.0], ())
    assert node_lines(fig, "$f_{0}$") == ["$f_{0}$", "1.300", "0.600"]


def test_toy_graph_draws_into_a_given_axes() -> None:
    fig = Figure(figsize=(14, 5))
    ax = fig.add_subplot()
    e = toy_example()
    assert plot.toy_graph(e.x, e.y, e.beta, e.omega, ax=ax) is fig
    assert "2.372" in {t.get_text() for t in ax.texts}


def test_toy_graph_draws_one_sample() -> None:
    e = toy_example()
    with pytest.raises(ValueError, match="one sample"):
        plot.toy_graph(np.array([1.0, 2.0]), e.y, e.beta, e.omega)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta"):
        plot.toy_graph(e.x, e.y, e.beta[:2], e.omega)


# ----------------------------------------------------------------------------- mlp_gradients


def check_mlp_figure(fig: Figure, dW: list[np.ndarray], db: list[np.ndarray]) -> None:
    images = fig.findobj(AxesImage)
    assert len(images) == 2 * len(dW)
    # W_0, b_0, W_1, b_1, ...: each heatmap shows its derivative.
    for k in range(len(dW)):
        np.testing.assert_array_equal(images[2 * k].get_array(), dW[k])
        np.testing.assert_array_equal(images[2 * k + 1].get_array(), db[k].reshape(-1, 1))
    # One symmetric scale for all, and one colorbar.
    largest = max(float(np.abs(d).max()) for d in [*dW, *db])
    for im in images:
        assert (im.norm.vmin, im.norm.vmax) == (-largest, largest)
        assert im.get_cmap().name == "RdBu_r"
    assert sum(im.colorbar is not None for im in images) == 1

    (bars,) = [ax for ax in fig.axes if ax.get_title() == "gradient norm per layer"]
    w_heights = [p.get_height() for p in bars.containers[0]]
    b_heights = [p.get_height() for p in bars.containers[1]]
    np.testing.assert_allclose(w_heights, [np.linalg.norm(d, "fro") for d in dW])
    np.testing.assert_allclose(b_heights, [np.linalg.norm(d) for d in db])


def test_mlp_gradients_notebook() -> None:
    e = mlp_example()
    fig = plot.mlp_gradients(e.all_weights, e.all_biases, e.net_input, e.y)
    _, dW, db = bc.gradients(e.net_input, e.y, e.all_weights, e.all_biases)
    check_mlp_figure(fig, dW, db)
    assert any("478.118" in t.get_text() for t in texts(fig))


@pytest.mark.parametrize("seed", [0, 1])
def test_mlp_gradients_random_network(seed: int) -> None:
    rng = np.random.default_rng(seed)
    widths = [int(w) for w in rng.integers(1, 9, size=int(rng.integers(2, 6)))]
    weights = [rng.normal(size=(widths[k + 1], widths[k])) for k in range(len(widths) - 1)]
    biases = [rng.normal(size=(widths[k + 1],)) for k in range(len(widths) - 1)]  # (D,) biases
    net_input = rng.normal(size=(widths[0], 4))
    y = rng.normal(size=(widths[-1], 4))
    fig = plot.mlp_gradients(weights, biases, net_input, y)
    _, dW, db = bc.gradients(net_input, y, weights, biases)
    check_mlp_figure(fig, dW, db)


def test_mlp_gradients_all_zero() -> None:
    # A dead network (every pre-activation negative) has zero gradients: still a valid picture.
    weights = [np.zeros((3, 2)), np.zeros((1, 3))]
    biases = [-np.ones((3, 1)), np.zeros((1, 1))]
    fig = plot.mlp_gradients(weights, biases, np.ones((2, 1)), 0.0)
    fig.canvas.draw()
    assert all(im.get_clim()[1] > 0 for im in fig.findobj(AxesImage))


def test_mlp_gradients_rejects_bad_shapes() -> None:
    e = mlp_example()
    with pytest.raises(ValueError):
        plot.mlp_gradients(e.all_weights[:-1], e.all_biases, e.net_input, e.y)


# ----------------------------------------------------------------------------- without matplotlib


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    e, m = toy_example(), mlp_example()
    with pytest.raises(ImportError, match=r'pip install "backprop_core\[plot\]"'):
        plot.toy_graph(e.x, e.y, e.beta, e.omega)
    with pytest.raises(ImportError, match=r'pip install "backprop_core\[plot\]"'):
        plot.mlp_gradients(m.all_weights, m.all_biases, m.net_input, m.y)


# ----------------------------------------------------------------------------- the plot command


def test_plot_command_writes_valid_png_and_svg(tmp_path: Path) -> None:
    out = tmp_path / "new" / "pictures"  # does not exist yet: the command creates it
    r = subprocess.run(
        [sys.executable, "-m", "backprop_core", "plot", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    # No warnings either (a first run may still log that matplotlib builds its font cache).
    assert "Warning" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    names = ["toy_graph.png", "toy_graph.svg", "mlp_gradients.png", "mlp_gradients.svg"]
    assert r.stdout.split() == [str(out / n) for n in names]

    for name in names:
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_SIGNATURE
            pixels = imread(path)
            height, width, channels = pixels.shape
            assert channels in (3, 4)
            assert width > 1000 and height > 400, (name, pixels.shape)
            assert width < 5000 and height < 5000, (name, pixels.shape)
            assert pixels.std() > 0.01  # not a blank image
        else:
            root = ET.parse(path).getroot()
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
