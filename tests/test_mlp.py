"""The ReLU MLP of notebook 7.2: notebook numbers, native against reference, finite differences."""

from __future__ import annotations

import backprop_core as bc
import numpy as np
import pytest
from _helpers import RTOL, assert_all_close, assert_close, central_difference
from backprop_core import reference as ref
from backprop_core.examples import mlp_example

IMPLS = [pytest.param(bc, id="native"), pytest.param(ref, id="reference")]

# Printed by the notebook (3 decimals): output, loss, and the bias derivatives it shows.
NOTEBOOK_OUTPUT = -0.923
NOTEBOOK_LOSS = 478.118
NOTEBOOK_DL_DBIASES = {
    0: [0.0, 46.618, 8.447, 0.0, 0.0, 0.0],
    1: [0.0, 0.0, 12.372, 0.0, 70.185, 10.208],
    2: [-34.754, 0.0, 0.0, 0.0, 0.0, 24.769],
    3: [0.0, -24.858, 27.016, 0.0, 10.873, 0.0],
}
# The same at full precision, from the reference in float64.
FULL_OUTPUT = -0.92306074732048
FULL_LOSS = 478.11784299123644
FULL_DL_DBIASES_0 = [0.0, 46.617793652928604, 8.446881682954118, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("impl", IMPLS)
def test_notebook_seed_44_network(impl):
    e = mlp_example()
    net_output, all_f, all_h = impl.forward(e.net_input, e.all_weights, e.all_biases)
    assert net_output.shape == (1, 1)
    assert round(float(net_output[0, 0]), 3) == NOTEBOOK_OUTPUT
    assert net_output[0, 0] == pytest.approx(FULL_OUTPUT, rel=1e-13)
    assert len(all_f) == len(all_h) == 6
    np.testing.assert_array_equal(all_h[0], e.net_input)
    np.testing.assert_array_equal(all_f[5], net_output)
    loss = 0.5 * (net_output - e.y) ** 2  # the notebook's least_squares_loss
    assert round(float(loss[0, 0]), 3) == NOTEBOOK_LOSS

    all_dl_dweights, all_dl_dbiases = impl.backward(e.all_weights, e.all_biases, all_f, all_h, e.y)
    for k, printed in NOTEBOOK_DL_DBIASES.items():
        assert all_dl_dbiases[k].shape == (6, 1)
        np.testing.assert_array_equal(np.round(all_dl_dbiases[k][:, 0], 3) + 0.0, printed, err_msg=f"layer {k}")
    np.testing.assert_allclose(all_dl_dbiases[0][:, 0], FULL_DL_DBIASES_0, rtol=1e-13)
    for k, (W, dW) in enumerate(zip(e.all_weights, all_dl_dweights)):
        assert dW.shape == W.shape, k

    g_loss, g_dW, g_db = impl.gradients(e.net_input, e.y, e.all_weights, e.all_biases)
    assert g_loss == pytest.approx(FULL_LOSS, rel=1e-13)
    assert_all_close(g_dW, all_dl_dweights, "gradients dW", 1e-15)
    assert_all_close(g_db, all_dl_dbiases, "gradients db", 1e-15)


def test_notebook_finite_differences_every_parameter():
    """The notebook's own check, with central differences, on every weight and bias."""
    e = mlp_example()
    _, dW, db = bc.gradients(e.net_input, e.y, e.all_weights, e.all_biases)
    _, all_f, _ = ref.forward(e.net_input, e.all_weights, e.all_biases)
    assert min(np.abs(f).min() for f in all_f[:-1]) > 1e-3  # no kink within the step
    for k in range(6):
        def loss_w(W, k=k):
            ws = list(e.all_weights)
            ws[k] = W
            return float(bc.gradients(e.net_input, e.y, ws, e.all_biases)[0])

        def loss_b(b, k=k):
            bs = list(e.all_biases)
            bs[k] = b
            return float(bc.gradients(e.net_input, e.y, e.all_weights, bs)[0])

        np.testing.assert_allclose(dW[k], central_difference(loss_w, e.all_weights[k], 1e-6), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(db[k], central_difference(loss_b, e.all_biases[k], 1e-6), rtol=1e-6, atol=1e-6)


def random_net(rng, dims, N, dtype, flat_bias=False, y_shape=None):
    weights = [rng.normal(size=(dims[k + 1], dims[k])).astype(dtype) / np.sqrt(max(dims[k], 1)) for k in range(len(dims) - 1)]
    biases = [rng.normal(size=(d,) if flat_bias else (d, 1)).astype(dtype) for d in dims[1:]]
    x = rng.normal(size=(dims[0], N)).astype(dtype)
    y_shape = (dims[-1], N) if y_shape is None else y_shape
    y = rng.normal(size=y_shape).astype(dtype) if y_shape != () else dtype(rng.normal())
    return x, y, weights, biases


def _scales(x, weights, biases, y, relu_grad_at_zero=1.0):
    """Per output, the magnitude its rounding error is relative to (see assert_close): the
    reference run on absolute values, so every sum and product counts |terms|."""
    absw = [np.abs(w).astype(np.float64) for w in weights]
    absb = [np.abs(b).astype(np.float64) for b in biases]
    out, f, h = ref.forward(np.abs(x).astype(np.float64), absw, absb)
    # |dl/df_K| <= |f_K| + |y|; every later product and sum adds magnitudes.
    K = len(weights) - 1
    g = [None] * (K + 1)
    g[K] = f[K] + np.abs(np.broadcast_to(y, f[K].shape))
    dW, db = [None] * (K + 1), [None] * (K + 1)
    for k in range(K, -1, -1):
        db[k] = g[k].sum(axis=1, keepdims=True).reshape(biases[k].shape)
        dW[k] = g[k] @ h[k].T
        if k:
            g[k - 1] = absw[k].T @ g[k]
    loss = 0.5 * np.sum(g[K] ** 2)
    return f, h, loss, dW, db


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "dims, N",
    [
        ([1, 1], 1),  # K = 0: one affine layer
        ([3, 2], 5),
        ([1, 6, 6, 6, 6, 6, 1], 1),  # the notebook's shape
        ([4, 7, 3, 9, 2], 1),
        ([4, 7, 3, 9, 2], 17),
        ([10, 32, 32, 5], 64),
        ([2, 1, 1, 1, 3], 8),  # width-1 bottleneck
        ([64, 128, 128, 10], 33),
        ([16, 600, 300, 3], 1000),  # wide layers and a large batch: every product through BLAS
        # products cut into uneven tiles and weight gradients into uneven sample ranges
        ([33, 1000, 70, 3], 1500),
        # gradients() in blocks of samples, several blocks a group, the last one shorter
        ([40, 300, 20], 20_003),
        # ... small blocks (about 512 KiB of scratch) through the register-blocked kernels:
        # widths that are no multiple of a tile's 4 rows, a last block narrower than a vector
        ([5, 37, 29, 3], 3001),
        ([1, 32, 32, 32, 1], 4100),
        ([64, 256, 256, 10], 37),
    ],
)
def test_native_equals_reference(dtype, dims, N):
    rng = np.random.default_rng(len(dims) * 100 + N)
    rtol = RTOL[np.dtype(dtype)]
    for trial in range(4):
        x, y, W, b = random_net(rng, dims, N, dtype, flat_bias=trial % 2 == 1)
        f_s, h_s, loss_s, dW_s, db_s = _scales(x, W, b, y)
        out, all_f, all_h = bc.forward(x, W, b)
        r_out, r_f, r_h = ref.forward(x, W, b)
        assert_all_close(all_f, r_f, "all_f", rtol, f_s)
        assert_all_close(all_h[1:], r_h[1:], "all_h", rtol, h_s[1:])
        np.testing.assert_array_equal(all_h[0], x)
        dW, db = bc.backward(W, b, all_f, all_h, y)
        r_dW, r_db = ref.backward(W, b, r_f, r_h, y)
        assert_all_close(dW, r_dW, "dW", rtol, dW_s)
        assert_all_close(db, r_db, "db", rtol, db_s)
        loss, g_dW, g_db = bc.gradients(x, y, W, b)
        r_loss, _, _ = ref.gradients(x, y, W, b)
        assert_close(loss, r_loss, "loss", rtol, loss_s)
        # The one-call pass (in blocks of samples when large) agrees with the reference as
        # closely; its sums over samples may be grouped otherwise than backward's.
        assert_all_close(g_dW, r_dW, "gradients dW", rtol, dW_s)
        assert_all_close(g_db, r_db, "gradients db", rtol, db_s)


_SMALL, _BLOCKED = ([2, 4, 3], 6), ([30, 200, 20], 5000)  # the second in blocks of samples


@pytest.mark.parametrize(
    "net, y_shape",
    [(_SMALL, s) for s in [(), (1, 1), (3, 1), (1, 6), (6,), (3, 6)]]
    + [(_BLOCKED, s) for s in [(), (20, 1), (1, 5000), (5000,), (20, 5000)]],
)
def test_y_broadcasts_like_numpy(net, y_shape):
    rng = np.random.default_rng(5)
    x, y, W, b = random_net(rng, *net, np.float64, y_shape=y_shape)
    loss, dW, db = bc.gradients(x, y, W, b)
    r_loss, r_dW, r_db = ref.gradients(x, y, W, b)
    f_s, h_s, loss_s, dW_s, db_s = _scales(x, W, b, y)
    assert_close(loss, r_loss, "loss", 1e-12, loss_s)
    assert_all_close(dW, r_dW, "dW", 1e-12, dW_s)
    assert_all_close(db, r_db, "db", 1e-12, db_s)


def _away_from_kinks(x, W, b, margin=1e-3):
    _, f, _ = ref.forward(x, W, b)
    return all(np.all(np.abs(fk) > margin) for fk in f[:-1])


@pytest.mark.parametrize("dims, N", [([1, 1], 1), ([3, 5, 2], 4), ([2, 4, 4, 4, 3], 3), ([5, 3, 8, 1], 1)])
def test_finite_differences(dims, N):
    rng = np.random.default_rng(sum(dims) + N)
    checked = 0
    while checked < 2:
        x, y, W, b = random_net(rng, dims, N, np.float64)
        if not _away_from_kinks(x, W, b):
            continue
        checked += 1
        _, dW, db = bc.gradients(x, y, W, b)
        for k in range(len(W)):
            def loss_w(Wk, k=k):
                ws = list(W)
                ws[k] = Wk
                return float(bc.gradients(x, y, ws, b)[0])

            def loss_b(bk, k=k):
                bs = list(b)
                bs[k] = bk
                return float(bc.gradients(x, y, W, bs)[0])

            np.testing.assert_allclose(dW[k], central_difference(loss_w, W[k], 1e-6), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(db[k], central_difference(loss_b, b[k], 1e-6), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
def test_relu_derivative_at_exactly_zero(impl):
    # One hidden unit whose pre-activation is exactly 0: f_0 = 1*1 + (-1) = 0.
    W = [np.array([[1.0]]), np.array([[2.0]])]
    b = [np.array([[-1.0]]), np.array([[0.5]])]
    x, y = np.array([[1.0]]), 1.5
    _, f, h = impl.forward(x, W, b)
    assert f[0][0, 0] == 0.0 and h[1][0, 0] == 0.0
    # dl/df_1 = 0.5 - 1.5 = -1; dl/dh_1 = 2 * -1 = -2; dl/df_0 = ReLU'(0) * -2
    dW, db = impl.backward(W, b, f, h, y)
    assert db[0][0, 0] == -2.0 and dW[0][0, 0] == -2.0  # notebook: ReLU'(0) = 1
    dW, db = impl.backward(W, b, f, h, y, relu_grad_at_zero=0.0)
    assert db[0][0, 0] == 0.0 and dW[0][0, 0] == 0.0  # PyTorch: ReLU'(0) = 0
    loss, dW, db = impl.gradients(x, y, W, b, relu_grad_at_zero=0.0)
    assert loss == 0.5 and db[0][0, 0] == 0.0 and db[1][0, 0] == -1.0


def _integer_net(dtype, dims=(16, 48, 48, 3), N=4000):
    """A network whose every value is a small integer, so every sum is exact in both dtypes and
    many hidden pre-activations are exactly 0; y puts dl/df_K in {-1, 0, 1}."""
    rng = np.random.default_rng(11)
    W = [(rng.integers(-1, 2, size=(dims[k + 1], dims[k])) * (rng.random((dims[k + 1], dims[k])) < 0.25)).astype(dtype) for k in range(len(dims) - 1)]
    b = [rng.integers(-1, 2, size=(d, 1)).astype(dtype) for d in dims[1:]]
    x = rng.integers(-1, 2, size=(dims[0], N)).astype(dtype)
    out, f, _ = ref.forward(x, W, b)
    y = out + rng.integers(-1, 2, size=out.shape).astype(dtype)
    assert sum(int(np.count_nonzero(fk == 0)) for fk in f[:-1]) > 10_000
    return x, y, W, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_derivative_at_exactly_zero_in_blocks(dtype):
    # gradients() in blocks of samples keeps h alone, its zeros signed by the side f was on;
    # on exact data it must give the reference's bits for either ReLU'(0), zeros' signs included
    # (the -0 marks must not leak into the gradients).
    x, y, W, b = _integer_net(dtype)
    results = []
    for c in (0.0, 1.0):
        r_loss, r_dW, r_db = ref.gradients(x, y, W, b, relu_grad_at_zero=c)
        loss, dW, db = bc.gradients(x, y, W, b, relu_grad_at_zero=c)
        assert loss == r_loss
        for a, e in zip(dW + db, r_dW + r_db):
            np.testing.assert_array_equal(a, e)
            np.testing.assert_array_equal(np.signbit(a), np.signbit(e))
        results.append(dW)
    assert not np.array_equal(results[0][0], results[1][0])  # the convention matters here


def test_nan_propagates_in_blocks():
    x, y, W, b = _integer_net(np.float64)
    x[3, 1234] = np.nan  # one sample's input
    r_loss, r_dW, r_db = ref.gradients(x, y, W, b)
    loss, dW, db = bc.gradients(x, y, W, b)
    assert np.isnan(loss) and np.isnan(r_loss)
    for a, e in zip(dW + db, r_dW + r_db):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(a[~np.isnan(a)], e[~np.isnan(e)])


def test_relu_at_zero_matches_pytorch_when_asked():
    torch = pytest.importorskip("torch")
    W = [np.array([[1.0], [2.0]]), np.array([[2.0, -1.0]])]
    b = [np.array([[-1.0], [0.5]]), np.array([[0.5]])]
    x = np.array([[1.0]])
    _, dW, db = bc.gradients(x, 3.0, W, b, relu_grad_at_zero=0.0)
    tW = [torch.tensor(w, requires_grad=True) for w in W]
    tb = [torch.tensor(v, requires_grad=True) for v in b]
    h = torch.relu(tW[0] @ torch.tensor(x) + tb[0])
    out = tW[1] @ h + tb[1]
    (0.5 * (out - 3.0) ** 2).sum().backward()
    for k in range(2):
        np.testing.assert_array_equal(dW[k], tW[k].grad.numpy())
        np.testing.assert_array_equal(db[k], tb[k].grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(dtype):
    e = mlp_example()
    W = [w.astype(dtype) for w in e.all_weights]
    b = [v.astype(dtype) for v in e.all_biases]
    x = e.net_input.astype(dtype)
    out, f, h = bc.forward(x, W, b)
    assert all(a.dtype == dtype for a in [out, *f, *h])
    loss, dW, db = bc.gradients(x, e.y, W, b)
    assert np.asarray(loss).dtype == dtype and all(a.dtype == dtype for a in dW + db)
    assert round(float(out[0, 0]), 3) == NOTEBOOK_OUTPUT


def _net():
    rng = np.random.default_rng(0)
    return random_net(rng, [3, 4, 2], 5, np.float64)


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda x, y, W, b: (x, y, W, b[:1]), ["all_biases", "2", "1"]),
        (lambda x, y, W, b: (x, y, [], []), ["all_weights", "at least one"]),
        (lambda x, y, W, b: (x, y, [W[0], np.ones((2, 5))], b), ["all_weights[1]", "(2, 5)", "(D_out, 4)"]),
        (lambda x, y, W, b: (x, y, W, [b[0], np.ones((3, 1))]), ["all_biases[1]", "(2, 1)", "(3, 1)"]),
        (lambda x, y, W, b: (x, y, [np.ones(3), W[1]], b), ["all_weights[0]", "2-D", "(3,)"]),
        (lambda x, y, W, b: (np.ones((2, 5)), y, W, b), ["net_input", "(3, N)", "(2, 5)"]),
        (lambda x, y, W, b: (np.ones(3), y, W, b), ["net_input", "(3, N)", "(3,)"]),
        (lambda x, y, W, b: (x, np.ones((2, 4)), W, b), ["y", "(2, 5)", "(2, 4)"]),
        (lambda x, y, W, b: (x, np.ones((1, 2, 5)), W, b), ["y", "(1, 2, 5)"]),
    ],
)
def test_bad_shapes_raise_naming_layer_and_shapes(mutate, words):
    x, y, W, b = mutate(*_net())
    with pytest.raises(ValueError) as info:
        bc.gradients(x, y, W, b)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_backward_checks_all_f_and_all_h():
    x, y, W, b = _net()
    _, f, h = bc.forward(x, W, b)
    cases = [
        ((W, b, f[:1], h, y), ["all_f", "2", "1"]),
        ((W, b, f, h + [h[0]], y), ["all_h", "2", "3"]),
        ((W, b, [f[0], np.ones((3, 5))], h, y), ["all_f[1]", "(2, 5)", "(3, 5)"]),
        ((W, b, f, [h[0], np.ones((4, 4))], y), ["all_h[1]", "(4, 5)", "(4, 4)"]),
        ((W, b, f, [np.ones((3, 4)), h[1]], y), ["all_f[0]", "(4, 4)", "(4, 5)"]),  # N is read from all_h[0]
        ((W, b, f, h, np.ones(4)), ["y", "(2, 5)", "(4,)"]),
        ((W, b, f, h, y), None),
    ]
    for args, words in cases:
        if words is None:
            bc.backward(*args)
            continue
        with pytest.raises(ValueError) as info:
            bc.backward(*args)
        for w in words:
            assert w in str(info.value), (w, str(info.value))
