"""backprop_core.gradcheck: passes true gradients, pins exactly the wrong ones."""

from __future__ import annotations

from fractions import Fraction

import backprop_core as bc
import numpy as np
import pytest
from backprop_core.examples import mlp_example, toy_example


def test_native_toy_gradients_pass():
    e = toy_example()
    report = bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega)
    assert report.ok and bool(report) and report.failures == []
    assert [r.name for r in report.rows] == [f"beta[{k}]" for k in range(4)] + [f"omega[{k}]" for k in range(4)]
    omega0 = report.rows[4]
    assert round(omega0.value, 3) == 5.246 and abs(omega0.value - omega0.finite_difference) < 1e-8
    assert "all ok" in str(report) and "finite diff" in str(report)


def test_learner_mistake_in_toy_chain_is_pinned():
    """dl/dbeta1 set to dl/df2 instead of dl/df1: exactly beta[1] fails."""
    e = toy_example()
    r = bc.toy_backward(e.x, e.y, e.beta, e.omega)
    dl_dbeta = r.dl_df.copy()
    dl_dbeta[1] = r.dl_df[2]
    report = bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, grads=(dl_dbeta, r.dl_domega))
    assert not report.ok and report.failures == ["beta[1]"]
    assert "FAIL" in str(report) and "1 of 8 FAIL" in str(report)
    # dl/domega_k with h_{k+1} in place of h_k: omega[1] and omega[2] fail, the ends do not move.
    wrong = r.dl_domega.copy()
    wrong[1:3] = r.dl_df[1:3] * r.h[1:3]
    report = bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, grads=(r.dl_dbeta, wrong))
    assert report.failures == ["omega[1]", "omega[2]"]


def test_native_mlp_gradients_pass():
    e = mlp_example()
    report = bc.gradcheck(e.net_input, e.y, all_weights=e.all_weights, all_biases=e.all_biases)
    n_params = sum(w.size for w in e.all_weights) + sum(b.size for b in e.all_biases)
    assert report.ok and len(report.rows) == n_params and not report.warnings


def test_transposed_weight_gradient_is_pinned_exactly():
    e = mlp_example()
    _, dW, db = bc.gradients(e.net_input, e.y, e.all_weights, e.all_biases)
    wrong = [w.copy() for w in dW]
    wrong[2] = dW[2].T.copy()  # a learner's h @ dl_df.T
    report = bc.gradcheck(e.net_input, e.y, all_weights=e.all_weights, all_biases=e.all_biases, grads=(wrong, db))
    atol = report.atol
    expected = {
        f"all_weights[2][{i}, {j}]"
        for i in range(6)
        for j in range(6)
        if abs(dW[2][j, i] - dW[2][i, j]) > atol + report.rtol * abs(dW[2][i, j])
    }
    assert expected and set(report.failures) == expected
    assert len(expected) < 36  # the zero rows and columns and the diagonal still pass


def test_float32_gradients_use_float32_tolerances():
    e = mlp_example()
    W = [w.astype(np.float32) for w in e.all_weights]
    b = [v.astype(np.float32) for v in e.all_biases]
    report = bc.gradcheck(e.net_input.astype(np.float32), 30.0, all_weights=W, all_biases=b)
    assert report.ok and report.rtol == 1e-3


def test_warns_near_a_relu_kink():
    report = bc.gradcheck(0.0, 1.0, beta=[0.0, 0.5], omega=[1.0, 2.0], activations=("relu",))
    assert report.warnings and "kink" in report.warnings[0]


def test_bad_arguments():
    e = toy_example()
    with pytest.raises(TypeError, match="either"):
        bc.gradcheck(e.x, e.y)
    with pytest.raises(TypeError, match="either"):
        bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, all_weights=[np.ones((1, 1))], all_biases=[np.ones((1, 1))])
    with pytest.raises(ValueError, match=r"grads: the gradient of omega must have shape \(4,\)"):
        bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, grads=(np.zeros(4), np.zeros(3)))


# ----------------------------------------------------------------------------- eps, rtol, atol

_SETTINGS_TYPE = [True, False, np.True_, "1e-6", b"1", 1j, np.complex128(1), [1e-6], np.array(1e-6), np.array([1e-6]), object()]  # fmt: skip


@pytest.mark.parametrize("name", ["eps", "rtol", "atol"])
@pytest.mark.parametrize("value", _SETTINGS_TYPE, ids=lambda v: f"{type(v).__name__}:{v!r}"[:30])
def test_settings_that_are_not_real_numbers_raise_type_error(name, value):
    e = toy_example()
    with pytest.raises(TypeError, match=rf"^gradcheck: {name}: expected a real number, got {type(value).__name__}$"):
        bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, **{name: value})


_OUT_OF_RANGE = [
    ("eps", 0.0), ("eps", 0), ("eps", -0.0), ("eps", -1e-6), ("eps", float("nan")), ("eps", float("inf")),
    ("eps", np.float32("nan")), ("eps", 5e-324 * -1),
    ("rtol", -1e-12), ("rtol", -1), ("rtol", float("nan")), ("rtol", float("inf")), ("rtol", -float("inf")),
    ("atol", -1e-300), ("atol", float("nan")), ("atol", float("inf")), ("atol", np.float64("-inf")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), _OUT_OF_RANGE, ids=lambda v: repr(v))
def test_settings_out_of_range_raise_value_error(name, value):
    bound = "> 0" if name == "eps" else ">= 0"
    e = mlp_example()
    with pytest.raises(ValueError, match=rf"^gradcheck: {name}: expected a finite number {bound}, got "):
        bc.gradcheck(e.net_input, e.y, all_weights=e.all_weights, all_biases=e.all_biases, **{name: value})


@pytest.mark.parametrize(
    ("settings", "used"),
    [
        ({"eps": np.float32(2**-20), "rtol": 0, "atol": np.int64(1)}, (2**-20, 0.0, 1.0)),
        ({"eps": Fraction(1, 2**20), "rtol": np.float16(0.5), "atol": 0.0}, (2**-20, 0.5, 0.0)),
        ({"eps": 5e-324, "rtol": 1, "atol": 1e300}, (5e-324, 1.0, 1e300)),
    ],
)
def test_real_numbers_of_any_type_are_used_as_floats(settings, used):
    e = toy_example()
    report = bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, **settings)
    assert (report.eps, report.rtol, report.atol) == used
    assert all(type(v) is float for v in (report.eps, report.rtol, report.atol))
    for row in report.rows:  # the verdicts follow the settings given
        assert row.ok == (row.abs_error <= used[2] + used[1] * abs(row.finite_difference)), row


def test_a_step_too_small_to_move_a_parameter_gives_zero_differences_not_a_division_error():
    """eps = 5e-324 (the smallest subnormal): p + h == p for every p, so every difference is 0.0,
    and the relative error of a nonzero gradient is inf, never a ZeroDivisionError."""
    e = toy_example()
    report = bc.gradcheck(e.x, e.y, beta=e.beta, omega=e.omega, eps=5e-324, rtol=0, atol=0)
    assert [r.finite_difference for r in report.rows] == [0.0] * 8
    assert all(r.rel_error == float("inf") and not r.ok for r in report.rows if r.value != 0)
    assert not report.ok
