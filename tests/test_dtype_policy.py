"""The dtype policy's refusals (backprop_core._dtype), alike in the native functions (whose intake
sends every ndarray subclass to the policy), the reference and gradcheck: masked arrays raise
TypeError naming the argument (the mask is refused, not dropped), and a conversion whose result could not exist raises MemoryError naming the argument
(numpy itself says ValueError("array is too big"))."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import backprop_core as bc
import numpy as np
import pytest
from backprop_core import reference
from numpy.lib.stride_tricks import as_strided


def _toy_args() -> dict[str, Any]:
    return {"x": np.array([0.5, -1.0, 2.0]), "y": np.array([1.0, 0.0, -1.0]),
            "beta": np.array([0.1, 0.2, 0.3]), "omega": np.array([1.0, -2.0, 0.5])}  # fmt: skip


def _mlp_args() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    W = [rng.normal(size=(4, 2)), rng.normal(size=(1, 4))]
    b = [rng.normal(size=(4, 1)), rng.normal(size=1)]
    x, y = rng.normal(size=(2, 5)), rng.normal(size=(1, 5))
    _, f, h = reference.forward(x, W, b)
    return {"net_input": x, "y": y, "all_weights": W, "all_biases": b, "all_f": f, "all_h": h}


TOY = {"toy_forward": ["x", "beta", "omega"], "toy_backward": ["x", "y", "beta", "omega"],
       "toy_gradients": ["x", "y", "beta", "omega"]}  # fmt: skip
MLP = {"forward": ["net_input", "all_weights", "all_biases"],
       "backward": ["all_weights", "all_biases", "all_f", "all_h", "y"],
       "gradients": ["net_input", "y", "all_weights", "all_biases"]}  # fmt: skip


def _call(module: Any, fn: str, args: dict[str, Any]) -> Callable[[], object]:
    positional = [args[n] for n in {**TOY, **MLP}[fn]]
    if fn in TOY:
        return lambda: getattr(module, fn)(*positional, activations=("tanh", "sin"))
    return lambda: getattr(module, fn)(*positional)


def _cases() -> list[Any]:
    """(implementation, function, argument, item or None) for every array argument of every
    function, and each list argument's items."""
    cases = []
    for impl in ("native", "reference"):
        for fns, make in ((TOY, _toy_args), (MLP, _mlp_args)):
            for fn, names in fns.items():
                for name in names:
                    items = range(len(make()[name])) if name.startswith("all_") else [None]
                    cases += [pytest.param(impl, fn, name, k, id=f"{impl}-{fn}-{name}{'' if k is None else f'[{k}]'}") for k in items]
    return cases


def _run(impl: str, fn: str, name: str, k: int | None, change: Callable[[np.ndarray], Any]):
    args = (_toy_args if fn in TOY else _mlp_args)()
    if k is None:
        args[name] = change(args[name])
        label = name
    else:
        args[name] = list(args[name])
        args[name][k] = change(args[name][k])
        label = f"{name}[{k}]"
    return _call(bc if impl == "native" else reference, fn, args), label


# ----------------------------------------------------------------------------- masked arrays


def _masked(a: np.ndarray) -> np.ma.MaskedArray:
    mask = np.zeros(a.shape, bool)
    mask.flat[0] = a.size > 0
    return np.ma.array(a, mask=mask)


@pytest.mark.parametrize(("impl", "fn", "name", "k"), _cases())
def test_a_masked_array_is_refused_naming_the_argument(impl, fn, name, k):
    call, label = _run(impl, fn, name, k, _masked)
    with pytest.raises(TypeError, match=rf"^{re.escape(label)}: masked arrays are not accepted"):
        call()


_MASKED_KINDS = {
    "no mask": np.ma.array([1.0, 2.0, 3.0]),
    "int masked": np.ma.array([1, 2, 3], mask=[0, 1, 0]),
    "masked constant": np.ma.masked,  # a float64 0-d masked array
    "0-d float32": np.ma.array(np.float32(2.0)),
    "transposed": np.ma.array([1.0, 2.0, 3.0]).T,
}


@pytest.mark.parametrize(
    ("impl", "masked"),
    [pytest.param(impl, m, id=f"{impl}-{kind}")
     for impl in ("native", "reference") for kind, m in _MASKED_KINDS.items()],
)  # fmt: skip
def test_every_kind_of_masked_array_is_refused(impl, masked):
    """Even one with nothing masked: whether a mask matters is not the policy's to guess."""
    args = _toy_args()
    module = bc if impl == "native" else reference
    with pytest.raises(TypeError, match=r"^y: masked arrays are not accepted"):
        module.toy_backward(args["x"], masked, args["beta"], args["omega"], activations=("tanh", "sin"))


def test_gradcheck_refuses_masked_arrays_naming_them():
    t, m = _toy_args(), _mlp_args()
    with pytest.raises(TypeError, match=r"^omega: masked arrays"):
        bc.gradcheck(t["x"], t["y"], beta=t["beta"], omega=_masked(t["omega"]), activations=("tanh", "sin"))
    W = [m["all_weights"][0], _masked(m["all_weights"][1])]
    with pytest.raises(TypeError, match=r"^all_weights\[1\]: masked arrays"):
        bc.gradcheck(m["net_input"], m["y"], all_weights=W, all_biases=m["all_biases"])


def test_the_data_under_the_mask_gives_the_plain_arrays_result():
    """What the message suggests works, and gives the plain array's result."""
    args = _toy_args()
    masked = _masked(args["x"])
    got = bc.toy_backward(np.ma.getdata(masked), args["y"], args["beta"], args["omega"], activations=("tanh", "sin"))
    want = reference.toy_backward(args["x"], args["y"], args["beta"], args["omega"], activations=("tanh", "sin"))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13)


# ----------------------------------------------------------------------------- impossible sizes


def _huge(a: np.ndarray) -> np.ndarray:
    """A read-only int8 view of 2^62 elements (stride 0: no memory), which numpy can hold but not
    convert to float64 (2^65 bytes). Its shape cannot match anything: the conversion comes first."""
    return as_strided(np.zeros(1, np.int8), shape=(2**31, 2**31), strides=(0, 0), writeable=False)


@pytest.mark.parametrize(("impl", "fn", "name", "k"), _cases())
def test_a_conversion_too_big_to_exist_raises_memory_error_naming_the_argument(impl, fn, name, k):
    call, label = _run(impl, fn, name, k, _huge)
    with pytest.raises(MemoryError, match=rf"^{re.escape(label)}: cannot convert an array of shape "
                       r"\(2147483648, 2147483648\) and dtype int8 to float64: "
                       rf"{2**65} bytes is more than an array can hold$"):  # fmt: skip
        call()


@pytest.mark.parametrize("impl", ["native", "reference"])
def test_float16_too_big_for_float32_raises_memory_error(impl):
    """float16 computes in float32: 2^61 float16 entries exist in a view, their float32 copy
    (2^63 bytes) cannot."""
    x = as_strided(np.zeros(1, np.float16), shape=(2**61,), strides=(0,))
    beta = omega = np.ones(3, np.float16)
    module = bc if impl == "native" else reference
    with pytest.raises(MemoryError, match=r"^x: cannot convert .* to float32: 9223372036854775808 bytes"):
        module.toy_forward(x, beta, omega, activations=("tanh", "sin"))


def test_the_largest_conversion_that_can_exist_is_not_refused_by_the_size_check():
    """The check refuses only sizes over numpy's limit: a float64 result just under it is left to
    the allocator (a MemoryError of its own here, not ours)."""
    from backprop_core import _dtype

    n = np.iinfo(np.intp).max // 8  # float64 entries just under the limit
    x = as_strided(np.zeros(1, np.int8), shape=(n,), strides=(0,))
    with pytest.raises(MemoryError) as info:
        _dtype.as_array(x, np.dtype(np.float64), "x")
    assert "more than an array can hold" not in str(info.value)


# ----------------------------------------------------------------------------- the model


def _model_calls(change: Callable[[np.ndarray], Any]) -> list[Any]:
    """(label, call) for every array a bc.MLP takes, that array replaced by ``change`` of it."""
    a = _mlp_args()
    W, b, x, y = a["all_weights"], a["all_biases"], a["net_input"], a["y"]
    model = bc.MLP(W, b)
    calls = []
    for k in range(len(W)):
        calls.append((f"all_weights[{k}]", lambda k=k: bc.MLP([change(w) if i == k else w for i, w in enumerate(W)], b)))
        calls.append((f"all_biases[{k}]", lambda k=k: bc.MLP(W, [change(c) if i == k else c for i, c in enumerate(b)])))
    calls.append(("net_input", lambda: model.forward(change(x))))
    calls.append(("net_input", lambda: model.gradients(change(x), y)))
    calls.append(("y", lambda: model.gradients(x, change(y))))
    return calls


@pytest.mark.parametrize("case", range(len(_model_calls(_masked))))
def test_the_model_refuses_masked_arrays_and_impossible_conversions(case):
    label, call = _model_calls(_masked)[case]
    with pytest.raises(TypeError, match=rf"^{re.escape(label)}: masked arrays are not accepted"):
        call()
    label, call = _model_calls(_huge)[case]
    with pytest.raises(MemoryError, match=rf"^{re.escape(label)}: cannot convert an array of shape "):
        call()
