"""Degenerate sizes through the Python layer (gradcheck, the pictures): every division there
has a nonzero divisor, so empty networks, empty batches and width-0 layers never raise a bare
ZeroDivisionError."""

from __future__ import annotations

import backprop_core as bc
import numpy as np
import pytest

# (all_weights, all_biases, net_input, y): a width-0 output, a width-0 hidden layer, no samples.
_NETS = {
    "width-0 output": ([np.ones((0, 2))], [np.ones(0)], np.ones((2, 3)), np.ones((0, 3))),
    "width-0 hidden": (
        [np.ones((0, 2)), np.full((1, 0), 2.0)], [np.ones(0), np.full((1, 1), 0.5)],
        np.ones((2, 3)), np.zeros((1, 3)),
    ),
    "no samples": ([np.ones((2, 2)), np.ones((1, 2))], [np.ones(2), np.ones(1)], np.ones((2, 0)), np.ones((1, 0))),
}  # fmt: skip


@pytest.mark.parametrize("net", list(_NETS))
def test_gradcheck_of_degenerate_networks(net):
    W, b, x, y = _NETS[net]
    report = bc.gradcheck(x, y, all_weights=W, all_biases=b)
    loss, dW, db = bc.reference.gradients(x, y, W, b)
    assert report.loss == loss
    assert len(report.rows) == sum(a.size for a in W + b)
    for row, want in zip(report.rows, np.concatenate([a.ravel() for a in dW + db])):
        assert row.value == pytest.approx(want) and row.ok, row
    assert report.ok


def test_gradcheck_of_an_empty_chain_batch():
    report = bc.gradcheck(np.ones(0), np.ones(0), beta=[1.0, 2.0], omega=[3.0, 4.0], activations=["sin"])
    assert report.loss == 0.0 and report.ok
    assert [(r.value, r.finite_difference, r.rel_error) for r in report.rows] == [(0.0, 0.0, 0.0)] * 4


@pytest.mark.parametrize("net", list(_NETS))
def test_mlp_gradients_picture_of_degenerate_networks(net):
    pytest.importorskip("matplotlib")
    from backprop_core.plot import mlp_gradients

    W, b, x, y = _NETS[net]
    fig = mlp_gradients(W, b, x, y)
    heat = fig.axes[0]
    _, dW, db = bc.reference.gradients(x, y, W, b)
    nonempty = [np.reshape(d, (d.shape[0], -1)) for pair in zip(dW, db) for d in pair if d.size]
    assert len(heat.images) == len(nonempty)  # empty matrices are drawn as frames only
    for image, d in zip(heat.images, nonempty):
        np.testing.assert_array_equal(image.get_array(), d)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_samples_through_enormous_widths_in_a_child(dtype):
    """N = 0 lets the widths reach 2^60 with empty arrays; sizing the blocked pass's blocks from
    them once divided by a byte count that wrapped to 0 (SIGFPE). In a child: a crash fails."""
    import subprocess
    import sys

    code = (
        "import numpy as np, backprop_core as bc\n"
        f"d, n = np.{np.dtype(dtype).name}, 2**60 - 1\n"
        "x = np.empty((n, 0), d); y = np.empty((2, 0), d)\n"
        "W = [np.empty((0, n), d), np.empty((2, 0), d)]; b = [np.empty((0,), d), np.empty((2,), d)]\n"
        "loss, dW, db = bc.gradients(x, y, W, b)\n"
        "assert loss == 0 and [a.shape for a in dW] == [(0, n), (2, 0)], (loss, dW)\n"
        "assert np.array_equal(db[1], np.zeros((2, 1), d).reshape(db[1].shape))\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (run.returncode, run.stderr)
