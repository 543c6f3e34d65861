"""``python -m backprop_core fit --out DIR``: the native fit of y = sin(3x) is good, and the
picture of it is written (skipped without matplotlib)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from backprop_core import __main__ as cli
from backprop_core import _fit_demo


def test_the_fit_is_good() -> None:
    x, y, model, history = _fit_demo.sine_fit()
    assert x.shape == y.shape == (1, 200) and history.epochs == 400
    grid = np.linspace(-1, 1, 101).reshape(1, -1)
    rmse = np.sqrt(np.mean((model.predict(grid) - np.sin(3 * grid)) ** 2))
    assert rmse < 0.05, rmse  # the noise has sd 0.1; the fit finds the curve under it
    assert history.loss[-1] < 0.05 * history.loss[0]  # down to the noise floor
    # the loss is the data's: 0.5 mean (f - y)^2 at the end is about the noise's 0.5 * 0.1^2
    assert 0.5 * 0.01 * 0.5 < history.loss[-1] < 0.5 * 0.01 * 2


def test_fit_writes_the_picture(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib", reason="the picture needs matplotlib (the plot extra)")
    out = tmp_path / "new" / "dir"
    assert cli.main(["fit", "--out", str(out)]) == 0
    png, svg = out / "fit.png", out / "fit.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "sin(3x)" in text and "loss per epoch" in text
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [str(png), str(svg)] and printed[2].startswith("final loss ")


def test_fit_without_matplotlib_exits_2(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now fails
    assert cli.main(["fit", "--out", str(tmp_path / "d")]) == 2
    assert "backprop_core[plot]" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
