"""backprop_core.Chain: the chain object against toy_backward's bits, the reference and finite
differences; its fast and general entries agree; out= is written in place; the boundary."""

from __future__ import annotations

import copy
import pickle

import backprop_core as bc
import numpy as np
import pytest
from _helpers import RTOL, assert_close, central_difference
from backprop_core import reference
from backprop_core._chain import Chain

BETA = [1.0, 2.0, -3.0, 0.4]
OMEGA = [0.1, -0.4, 2.0, 3.0]
ACTIVATIONS = ("identity", "sin", "cos", "exp", "tanh", "sigmoid", "relu")
CHAINS = [
    ("sin", "exp", "cos"),
    ACTIVATIONS,
    ("relu", "relu"),
    (),
    ("tanh", "sigmoid", "sin", "cos", "exp", "identity") * 5,  # L = 30: still one sample's path
    ("sin", "cos") * 20,  # L = 40: past the one-sample path's stack, the general pass
]


def params(L: int, dtype: type, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-0.5, 0.5, L + 1).astype(dtype),
        rng.uniform(-0.9, 0.9, L + 1).astype(dtype),
    )


def bits(a: object) -> bytes:
    return np.asarray(a).tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("acts", CHAINS, ids=lambda a: "-".join(a) or "none")
@pytest.mark.parametrize("relu0", [1.0, 0.0])
def test_one_sample_is_toy_backward_bit_for_bit(dtype, acts, relu0):
    beta, omega = params(len(acts), dtype)
    beta[0] = 0  # so that x = 0 puts f_0 (relu's input, first) at exactly 0
    c = Chain(beta, omega, activations=acts)
    for x, y in [(0.3, -0.2), (0.0, 0.0), (-1.7, 2.5)]:  # x = 0: relu at exactly 0
        want = bc.toy_backward(
            dtype(x), dtype(y), beta, omega, activations=acts, relu_grad_at_zero=relu0
        )
        out = (np.full(len(acts) + 1, np.nan, dtype), np.full(len(acts) + 1, np.nan, dtype))
        for got in (
            c.gradients(x, y, relu_grad_at_zero=relu0),  # Python floats: the fast entry
            c.gradients(x, y, relu_grad_at_zero=relu0, out=out),
            c.gradients(dtype(x), np.array(y, dtype), relu_grad_at_zero=relu0),  # general
            bc.toy_gradients(
                dtype(x), dtype(y), beta, omega, activations=acts, relu_grad_at_zero=relu0
            ),
        ):
            assert type(got) is bc.ToyGradients
            assert type(got.loss) is np.dtype(dtype).type
            for name in ("loss", "dl_dbeta", "dl_domega"):
                assert bits(getattr(got, name)) == bits(getattr(want, name)), (x, name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [1, 7, 300, 70_000])
def test_batches_equal_toy_gradients_and_the_reference(dtype, N):
    acts = ("sin", "exp", "cos", "tanh")
    beta, omega = params(len(acts), dtype, seed=N)
    rng = np.random.default_rng(N)
    x = rng.uniform(-1, 1, N).astype(dtype)
    y = rng.standard_normal(N).astype(dtype)
    c = Chain(beta, omega, activations=acts)
    got = c.gradients(x, y)
    want = bc.toy_gradients(x, y, beta, omega, activations=acts)
    for a, b in zip(got, want):
        assert bits(a) == bits(b)
    ref = reference.toy_backward(x, y, beta, omega, activations=acts)
    scale = np.abs(ref.dl_df).sum(axis=-1) if N > 1 else np.abs(ref.dl_df)
    assert_close(got.dl_dbeta, ref.dl_dbeta, "dl_dbeta", RTOL[np.dtype(dtype)], scale)
    fw = c.forward(x)
    want_fw = bc.toy_forward(x, beta, omega, activations=acts)
    assert type(fw) is bc.ToyForward
    assert bits(fw.f) == bits(want_fw.f) and bits(fw.h) == bits(want_fw.h)


def test_notebook_numbers_and_finite_differences():
    c = Chain(BETA, OMEGA)
    loss, dl_dbeta, dl_domega = c.gradients(2.3, 2.0)
    assert float(loss) == pytest.approx(0.139, abs=5e-4)
    assert dl_domega[0] == pytest.approx(5.246, abs=5e-4)  # notebook 7.1's dl/domega0
    theta = np.concatenate([BETA, OMEGA])

    def loss_of(p: np.ndarray) -> float:
        return float(reference.toy_backward(2.3, 2.0, p[:4], p[4:]).loss)

    fd = central_difference(loss_of, theta, 1e-6)
    np.testing.assert_allclose(np.concatenate([dl_dbeta, dl_domega]), fd, rtol=1e-6, atol=1e-7)


def test_out_is_written_in_place_and_returned():
    c = Chain(BETA, OMEGA)
    out = (np.zeros(4), np.zeros(4))
    r = c.gradients(2.3, 2.0, out=out)
    assert r.dl_dbeta is out[0] and r.dl_domega is out[1]
    want = c.gradients(2.3, 2.0)
    assert bits(out[0]) == bits(want.dl_dbeta) and bits(out[1]) == bits(want.dl_domega)
    # a batch through the general entry writes into out too
    r = c.gradients(np.array([2.3, 1.0]), np.array([2.0, 0.5]), out=out)
    assert r.dl_dbeta is out[0]
    assert bits(out[1]) == bits(bc.toy_gradients([2.3, 1.0], [2.0, 0.5], BETA, OMEGA).dl_domega)


def test_parameters_are_writeable_views():
    c = Chain(BETA, OMEGA)
    before = c.gradients(2.3, 2.0)
    beta = c.beta
    beta[0] += 0.5  # a step changes the chain
    after = c.gradients(2.3, 2.0)
    want = bc.toy_gradients(2.3, 2.0, np.array(BETA) + [0.5, 0, 0, 0], OMEGA)
    assert bits(after.dl_dbeta) == bits(want.dl_dbeta)
    assert bits(after.dl_dbeta) != bits(before.dl_dbeta)
    del c
    assert beta[0] == 1.5  # the view keeps the memory alive


def test_float32_chain_and_python_floats():
    c = Chain(np.float32(BETA), np.float32(OMEGA))
    assert c.dtype == np.float32
    r = c.gradients(2.3, 2.0)
    assert r.dl_dbeta.dtype == np.float32 and type(r.loss) is np.float32
    with pytest.raises(TypeError, match="float32"):
        c.gradients(np.array([2.3]), np.array([2.0]))  # float64 data: refused, not cast
    out = (np.empty(4, np.float32), np.empty(4, np.float32))
    assert c.gradients(2.3, 2.0, out=out).dl_domega is out[1]


def test_repr_pickle_copy_and_reinit():
    c = Chain(BETA, OMEGA, activations=["sin", "exp", "cos"])
    assert repr(c) == "Chain(activations=('sin', 'exp', 'cos'), dtype=float64)"
    assert c.activations == ("sin", "exp", "cos")
    for other in (pickle.loads(pickle.dumps(c)), copy.copy(c), copy.deepcopy(c)):
        assert other.activations == c.activations
        assert bits(other.gradients(2.3, 2.0).dl_domega) == bits(c.gradients(2.3, 2.0).dl_domega)
        other.beta[0] = 9.0
        assert c.beta[0] == 1.0  # copies, not views
    c.__init__([0.0, 1.0], [1.0, 1.0], activations=("relu",))
    assert c.activations == ("relu",) and c.beta.tolist() == [0.0, 1.0]


def test_not_initialised():
    c = Chain.__new__(Chain)
    assert repr(c) == "Chain(<not initialised>)"
    for call in (
        lambda: c.gradients(1.0, 2.0),
        lambda: c.forward(1.0),
        lambda: c.beta,
        lambda: c.activations,
        lambda: pickle.dumps(c),
    ):
        with pytest.raises(RuntimeError, match="Chain: not initialised"):
            call()


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda c, o: c.gradients(2.3), TypeError, "missing required argument 'y'"),
        (lambda c, o: c.gradients(2.3, 2.0, 1.0), TypeError, "2 positional arguments"),
        (lambda c, o: c.gradients(2.3, 2.0, foo=1), TypeError, "unexpected keyword argument 'foo'"),
        (lambda c, o: c.gradients(2.3, 2.0, x=1.0), TypeError, "multiple values for argument 'x'"),
        (
            lambda c, o: c.gradients(2.3, 2.0, relu_grad_at_zero=True),
            TypeError,
            "relu_grad_at_zero",
        ),
        (
            lambda c, o: c.gradients(2.3, 2.0, relu_grad_at_zero=1.5),
            ValueError,
            "relu_grad_at_zero",
        ),
        (lambda c, o: c.gradients(2.3, 2.0, out=o[:1]), TypeError, "out: expected a pair"),
        (lambda c, o: c.gradients(2.3, 2.0, out=[o[0], o[1]]), TypeError, "out: expected a pair"),
        (
            lambda c, o: c.gradients(2.3, 2.0, out=(o[0], o[0])),
            ValueError,
            "out.1. overlaps out.0.",
        ),
        (lambda c, o: c.gradients(2.3, 2.0, out=(c.beta, o[1])), ValueError, "parameters"),
        (lambda c, o: c.gradients(2.3, 2.0, out=(np.empty(3), o[1])), ValueError, r"shape \(4,\)"),
        (lambda c, o: c.gradients(2.3, 2.0, out=(np.empty(8)[::2], o[1])), TypeError, "C-contig"),
        (
            lambda c, o: c.gradients(2.3, 2.0, out=(np.empty(4, np.float32), o[1])),
            TypeError,
            "float64",
        ),
        (lambda c, o: c.gradients(np.zeros((2, 2)), 2.0), ValueError, "x: expected a scalar"),
        (lambda c, o: c.gradients(np.zeros(3), np.zeros(2)), ValueError, "y: expected"),
        (lambda c, o: c.gradients("a", 2.0), TypeError, "x"),
        (lambda c, o: Chain(BETA, OMEGA[:3]), ValueError, r"omega: expected shape \(4,\)"),
        (lambda c, o: Chain(BETA, OMEGA, activations="sin"), TypeError, "activations"),
        (lambda c, o: Chain(BETA[:2], OMEGA[:2], activations=("soft",)), ValueError, "soft"),
    ],
)
def test_bad_arguments(call, exc, words):
    c = Chain(BETA, OMEGA)
    out = (np.full(4, 7.0), np.full(4, 7.0))
    with pytest.raises(exc, match=words):
        call(c, out)
    assert (out[0] == 7.0).all() and (out[1] == 7.0).all()  # nothing written


def test_read_only_out_and_out_over_x():
    c = Chain(BETA, OMEGA)
    ro = np.empty(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        c.gradients(2.3, 2.0, out=(ro, np.empty(4)))
    x = np.linspace(0, 1, 8)
    with pytest.raises(ValueError, match="out.0. overlaps x"):
        c.gradients(x, 0.0, out=(x[:4], np.empty(4)))


def test_threads_share_a_chain():
    # The one-sample calls keep the GIL; a large batch releases it while the chain is held by the
    # call: every thread's results are the single-threaded bits.
    import threading

    c = Chain(BETA, OMEGA)
    x = np.linspace(-1, 1, 100_000)
    want_one = c.gradients(0.3, 0.1)
    want_many = c.gradients(x, 0.5)
    bad: list[str] = []

    def work() -> None:
        out = (np.empty(4), np.empty(4))
        for _ in range(200):
            r = c.gradients(0.3, 0.1, out=out)
            if bits(r.dl_domega) != bits(want_one.dl_domega):
                bad.append("one")
        r = c.gradients(x, 0.5)
        if bits(r.dl_dbeta) != bits(want_many.dl_dbeta) or bits(r.loss) != bits(want_many.loss):
            bad.append("many")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
