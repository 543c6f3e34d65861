"""The boundary attacked as a hostile user would (issue 12): 0 crashes, 0 hangs, 0 silent wrong
results, and errors that name the argument.

Probes that can crash or hang the interpreter (lying and mutating sequences, threads that replace
or free buffers, crafted and truncated pickles, half-made models, fork while busy, odd thread
settings, impossible sizes) run in child processes (``_adversarial_child``), several to a
process, each reported as its own test (``_adversarial_cases``). The rest run here. Answers are
compared bit for bit with the same call on clean copies of the inputs (results do not depend on
layout or thread count), and with the numpy reference where the call itself is under test.
"""

from __future__ import annotations

import importlib
import re

import _adversarial_cases as cases
import _adversarial_child as child
import backprop_core as bc
import numpy as np
import pytest
from _helpers import assert_close
from backprop_core import reference as ref

# ----------------------------------------------------------------------------- inputs


def toy_args(N=5, dtype=np.float64):
    # Integer-valued inputs put a ReLU input exactly at 0 (x = 1: f_0 = -1 + 1 = 0).
    return dict(
        x=np.array([1.0, -2.0, 0.5, 3.0, -1.0][:N], dtype),
        y=np.array([0.5, -1.0, 2.0, 0.0, 1.5][:N], dtype),
        beta=np.array([-1.0, 0.5, -0.25, 0.75], dtype),
        omega=np.array([1.0, -2.0, 1.5, 0.5], dtype),
    )


ACTS = ("relu", "sin", "tanh")


def mlp_args(dtype=np.float64):
    x, y, W, b = child.net(dtype=dtype)
    x[:, 0] = 0.0  # with b0[0] = 0: a pre-activation exactly 0, where the ReLU convention shows
    b[0][0, 0] = 0.0
    _, f, h = bc.forward(x, W, b)
    return dict(net_input=x, y=y, all_weights=W, all_biases=b, all_f=list(f), all_h=list(h))


def call_toy(fn):
    return {
        "toy_forward": lambda a, **k: bc.toy_forward(a["x"], a["beta"], a["omega"], activations=ACTS, **k),
        "toy_backward": lambda a, **k: bc.toy_backward(a["x"], a["y"], a["beta"], a["omega"], activations=ACTS, **k),
        "toy_gradients": lambda a, **k: bc.toy_gradients(a["x"], a["y"], a["beta"], a["omega"], activations=ACTS, **k),
    }[fn]


def call_mlp(fn):
    return {
        "forward": lambda a, **k: bc.forward(a["net_input"], a["all_weights"], a["all_biases"], **k),
        "backward": lambda a, **k: bc.backward(a["all_weights"], a["all_biases"], a["all_f"], a["all_h"], a["y"], **k),
        "gradients": lambda a, **k: bc.gradients(a["net_input"], a["y"], a["all_weights"], a["all_biases"], **k),
        "MLP": lambda a, **k: bc.MLP(a["all_weights"], a["all_biases"], **k),
        "MLP.forward": lambda a, **k: bc.MLP(*model_params(a)).forward(a["net_input"], **k),
        "MLP.gradients": lambda a, **k: bc.MLP(*model_params(a)).gradients(a["net_input"], a["y"], **k),
    }[fn]


def model_params(a):
    """The model under test is built from copies of the parameters; its call's arguments vary."""
    return child.copies(a["all_weights"]), child.copies(a["all_biases"])


def call(fn):
    return call_toy(fn) if fn.startswith("toy") else call_mlp(fn)


def args_for(fn, dtype=np.float64):
    return toy_args(dtype=dtype) if fn.startswith("toy") else mlp_args(dtype)


ARGS = {  # the array arguments of each entry point (list arguments at their item 1)
    "toy_forward": ["x", "beta", "omega"],
    "toy_backward": ["x", "y", "beta", "omega"],
    "toy_gradients": ["x", "y", "beta", "omega"],
    "forward": ["net_input", "all_weights[1]", "all_biases[1]"],
    "backward": ["all_weights[1]", "all_biases[1]", "all_f[1]", "all_h[1]", "y"],
    "gradients": ["net_input", "y", "all_weights[1]", "all_biases[1]"],
    "MLP": ["all_weights[1]", "all_biases[1]"],
    "MLP.forward": ["net_input"],
    "MLP.gradients": ["net_input", "y"],
}
ARG_CASES = [(fn, arg) for fn, names in ARGS.items() for arg in names]


def replace(a, name, fn):
    """``a`` with argument ``name`` (``'x'`` or ``'all_weights[1]'``) replaced by fn(old)."""
    a = {k: (list(v) if isinstance(v, list) else v) for k, v in a.items()}
    m = re.fullmatch(r"(\w+)\[(\d+)\]", name)
    if m:
        a[m[1]][int(m[2])] = fn(a[m[1]][int(m[2])])
    else:
        a[name] = fn(a[name])
    return a


def pattern(name):
    return re.escape(name)


# ----------------------------------------------------------------------------- bools and numbers

RELU_FUNCS = ["toy_backward", "toy_gradients", "backward", "gradients", "MLP.gradients"]


@pytest.mark.parametrize("fn", RELU_FUNCS)
@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)], ids=["True", "False", "np.True_", "np.False_"])
def test_bool_relu_grad_at_zero_is_a_type_error(fn, value):
    with pytest.raises(TypeError, match="relu_grad_at_zero"):
        call(fn)(args_for(fn), relu_grad_at_zero=value)


@pytest.mark.parametrize("fn", RELU_FUNCS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, -0.5, 1.5, 1 + 2**-52, -1e-300, np.float32("nan"), 10**400, -(10**400)],
                         ids=["nan", "inf", "-inf", "-0.5", "1.5", "1+eps", "-tiny", "f32nan", "10**400", "-10**400"])
def test_relu_grad_at_zero_outside_0_1_is_a_value_error(fn, value):
    with pytest.raises(ValueError, match="relu_grad_at_zero"):
        call(fn)(args_for(fn), relu_grad_at_zero=value)


@pytest.mark.parametrize("fn", RELU_FUNCS)
@pytest.mark.parametrize("value", ["0.5", None, 0.5 + 0j, [0.5]], ids=["str", "None", "complex", "list"])
def test_relu_grad_at_zero_not_a_number_is_a_type_error(fn, value):
    with pytest.raises(TypeError, match="relu_grad_at_zero"):
        call(fn)(args_for(fn), relu_grad_at_zero=value)


@pytest.mark.parametrize("fn", RELU_FUNCS)
@pytest.mark.parametrize("value", [0, 1, -0.0, np.float32(0.5), np.int64(1), np.uint8(0)],
                         ids=["int0", "int1", "-0.0", "f32", "np.int64", "np.uint8"])
def test_relu_grad_at_zero_real_numbers_are_accepted(fn, value):
    a = args_for(fn)
    got = call(fn)(a, relu_grad_at_zero=value)
    child.same(got, call(fn)(args_for(fn), relu_grad_at_zero=float(value)), fn)
    # ... and the value is honoured: the reference agrees at the kink.
    if fn.startswith("toy"):
        r = getattr(ref, fn)(a["x"], a["y"], a["beta"], a["omega"], ACTS, relu_grad_at_zero=float(value))
        assert_close(got[-1], r[-1], "dl_domega", 1e-12, 10.0)
    else:
        r = ref.gradients(a["net_input"], a["y"], a["all_weights"], a["all_biases"], relu_grad_at_zero=float(value))
        assert_close(got[-1][0], r[-1][0], "dl_dbiases[0]", 1e-12, 10.0)


@pytest.mark.parametrize("fn,arg", [("toy_backward", "x"), ("toy_backward", "y"), ("toy_gradients", "y"),
                                    ("toy_forward", "x"), ("gradients", "y"), ("backward", "y"), ("MLP.gradients", "y")])
def test_bool_scalars_where_numbers_are_meant(fn, arg):
    with pytest.raises(TypeError, match=pattern(arg)):
        call(fn)(replace(args_for(fn), arg, lambda _: True))


HUGE_INT_ARGS = [("toy_backward", "x", "scalar"), ("toy_backward", "y", "scalar"), ("toy_gradients", "y", "scalar"),
                 ("toy_forward", "x", "scalar"), ("gradients", "y", "scalar"), ("backward", "y", "scalar"),
                 ("MLP.gradients", "y", "scalar"), ("toy_backward", "x", "list"), ("toy_gradients", "beta", "list"),
                 ("toy_forward", "omega", "list"), ("gradients", "y", "list")]


@pytest.mark.parametrize("fn,arg,form", HUGE_INT_ARGS, ids=[f"{f}-{a}-{k}" for f, a, k in HUGE_INT_ARGS])
def test_python_ints_too_large_for_a_float_name_the_argument(fn, arg, form):
    # float(10**400) raises OverflowError; the call must still say which argument it was.
    def huge(v):
        return 10**400 if form == "scalar" else [10**400] + list(np.asarray(v).ravel()[1:])

    with pytest.raises((TypeError, ValueError, OverflowError), match=pattern(arg)):
        call(fn)(replace(args_for(fn), arg, huge))


KEYWORD_ONLY = {
    "toy_forward(activations)": lambda: bc.toy_forward(1.0, np.ones(2), np.ones(2), ("sin",)),
    "toy_backward(activations)": lambda: bc.toy_backward(1.0, 0.0, np.ones(2), np.ones(2), ("sin",)),
    "toy_gradients(activations)": lambda: bc.toy_gradients(1.0, 0.0, np.ones(2), np.ones(2), ("sin",)),
    "backward(relu)": lambda: bc.backward(*(lambda a: (a["all_weights"], a["all_biases"], a["all_f"], a["all_h"], a["y"], 1.0))(mlp_args())),
    "gradients(relu)": lambda: bc.gradients(*(lambda a: (a["net_input"], a["y"], a["all_weights"], a["all_biases"], 1.0))(mlp_args())),
    "MLP.gradients(relu)": lambda: (lambda a: bc.MLP(a["all_weights"], a["all_biases"]).gradients(a["net_input"], a["y"], 1.0))(mlp_args()),
}


@pytest.mark.parametrize("case", list(KEYWORD_ONLY))
def test_options_are_keyword_only(case):
    with pytest.raises(TypeError):
        KEYWORD_ONLY[case]()


# ----------------------------------------------------------------------------- activations

TOY_FUNCS = ["toy_forward", "toy_backward", "toy_gradients"]


def toy_call(fn, acts):
    a = toy_args()
    if fn == "toy_forward":
        return bc.toy_forward(a["x"], a["beta"], a["omega"], activations=acts)
    return getattr(bc, fn)(a["x"], a["y"], a["beta"], a["omega"], activations=acts)


BAD_ACTIVATIONS = {
    "None": lambda: None, "int": lambda: 5, "float": lambda: 3.0, "set": lambda: {"sin", "exp", "cos"},
    "generator": lambda: (s for s in ("relu", "sin", "tanh")), "bare_str": lambda: "sin",
    "bytes": lambda: b"sin", "dict": lambda: {"relu": 1, "sin": 2, "tanh": 3},
    "ndarray": lambda: np.array(["relu", "sin", "tanh"]), "iterator": lambda: iter(["relu", "sin", "tanh"]),
}


@pytest.mark.parametrize("fn", TOY_FUNCS)
@pytest.mark.parametrize("kind", list(BAD_ACTIVATIONS))
def test_activations_not_a_list_or_tuple_is_a_type_error(fn, kind):
    with pytest.raises(TypeError, match="activations"):
        toy_call(fn, BAD_ACTIVATIONS[kind]())


@pytest.mark.parametrize("fn", TOY_FUNCS)
@pytest.mark.parametrize("acts,exc,match", [
    (("relu", "softmax", "tanh"), ValueError, "softmax"),
    (("relu", "SIN", "tanh"), ValueError, "SIN"),
    (("relu", " sin", "tanh"), ValueError, "' sin'|\" sin\"| sin"),
    (("relu", "sin\x00", "tanh"), ValueError, "sin"),
    (("relu", 5, "tanh"), TypeError, "activations"),
    (("relu", None, "tanh"), TypeError, "activations"),
    (("relu", b"sin", "tanh"), TypeError, "activations"),
    (("relu", "\udcff", "tanh"), ValueError, "activations"),
], ids=["unknown", "case", "space", "nul", "int-item", "None-item", "bytes-item", "lone-surrogate"])
def test_bad_activation_names(fn, acts, exc, match):
    with pytest.raises(exc, match=match):
        toy_call(fn, acts)


class _Name(str):
    pass


class _Names(list):
    pass


@pytest.mark.parametrize("fn", TOY_FUNCS)
@pytest.mark.parametrize("kind", ["str_subclass", "list", "list_subclass"])
def test_activation_sequences_of_str(fn, kind):
    acts = {"str_subclass": tuple(_Name(s) for s in ACTS), "list": list(ACTS), "list_subclass": _Names(ACTS)}[kind]
    child.same(toy_call(fn, acts), toy_call(fn, ACTS), f"{fn} with activations as {kind}")


ACT_SEQ_IDS = [cases.add(f"activations-{fn}-{k}", "activation_seq_probe", fn=fn, kind=k)
               for fn in TOY_FUNCS for k in child.ACT_KINDS]


@pytest.mark.parametrize("pid", ACT_SEQ_IDS)
def test_lying_activation_sequences(pid):
    cases.check(pid)


# ----------------------------------------------------------------------------- dtypes and masks


def _as_dtype(kind):
    def conv(a):
        a = np.asarray(a)
        return {
            "bool": lambda: a != 0,
            "complex": lambda: a.astype(np.complex128),
            "object": lambda: a.astype(object),
            "str": lambda: a.astype(str),
            "bytes": lambda: a.astype("S8"),
            "datetime": lambda: np.zeros(a.shape, "datetime64[s]"),
            "timedelta": lambda: np.zeros(a.shape, "timedelta64[s]"),
            "longdouble": lambda: a.astype(np.longdouble),
            "structured": lambda: np.zeros(a.shape, [("v", "f8")]),
        }[kind]()
    return conv


DTYPE_KINDS = ["bool", "complex", "object", "str", "bytes", "datetime", "timedelta", "structured"]
if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant:  # float128 exists here
    DTYPE_KINDS.append("longdouble")
DTYPE_ARGS = [("toy_forward", "x"), ("toy_backward", "x"), ("toy_backward", "y"), ("toy_backward", "beta"),
              ("toy_gradients", "omega"), ("forward", "net_input"), ("gradients", "net_input"), ("gradients", "y"),
              ("gradients", "all_weights[1]"), ("gradients", "all_biases[1]"), ("backward", "all_f[1]"),
              ("backward", "all_h[1]"), ("MLP", "all_weights[1]"), ("MLP", "all_biases[1]"),
              ("MLP.gradients", "net_input"), ("MLP.gradients", "y")]


@pytest.mark.parametrize("kind", DTYPE_KINDS)
@pytest.mark.parametrize("fn,arg", DTYPE_ARGS, ids=[f"{f}-{a}" for f, a in DTYPE_ARGS])
def test_non_float_dtypes_are_type_errors_naming_the_argument(fn, arg, kind):
    with pytest.raises(TypeError, match=pattern(arg)):
        call(fn)(replace(args_for(fn), arg, _as_dtype(kind)))


MASK_ARGS = ARG_CASES


@pytest.mark.parametrize("fn,arg", MASK_ARGS, ids=[f"{f}-{a}" for f, a in MASK_ARGS])
def test_masked_arrays_are_refused(fn, arg):
    def mask(a):
        a = np.asarray(a)
        return np.ma.masked_array(a, mask=np.zeros(a.shape, bool))

    with pytest.raises(TypeError, match=pattern(arg)):
        call(fn)(replace(args_for(fn), arg, mask))


@pytest.mark.parametrize("which", [0, 1])
def test_masked_out_arrays_are_refused(which):
    a = mlp_args()
    m = bc.MLP(a["all_weights"], a["all_biases"])
    out = ([np.empty_like(w) for w in a["all_weights"]], [np.empty_like(v) for v in a["all_biases"]])
    out[which][1] = np.ma.masked_array(out[which][1])
    with pytest.raises(TypeError, match=pattern(f"out[{which}][1]")):
        m.gradients(a["net_input"], a["y"], out=out)


# ----------------------------------------------------------------------------- list arguments

NOT_LISTS = {
    "None": lambda v: None, "ndarray": lambda v: np.ones((3, 4, 4)), "object_array": lambda v: _obj_array(v),
    "generator": lambda v: (a for a in v), "dict": lambda v: dict(enumerate(v)), "str": lambda v: "all",
    "int": lambda v: 3, "one_array": lambda v: v[0], "map": lambda v: map(np.asarray, v),
}


def _obj_array(v):
    out = np.empty(len(v), object)
    out[:] = v
    return out


LIST_ARGS = [("forward", "all_weights"), ("forward", "all_biases"), ("gradients", "all_weights"),
             ("gradients", "all_biases"), ("backward", "all_weights"), ("backward", "all_biases"),
             ("backward", "all_f"), ("backward", "all_h"), ("MLP", "all_weights"), ("MLP", "all_biases")]


@pytest.mark.parametrize("kind", list(NOT_LISTS))
@pytest.mark.parametrize("fn,arg", LIST_ARGS, ids=[f"{f}-{a}" for f, a in LIST_ARGS])
def test_list_arguments_that_are_not_lists_are_type_errors(fn, arg, kind):
    a = mlp_args()
    a[arg] = NOT_LISTS[kind](a[arg])
    with pytest.raises(TypeError, match=pattern(arg)):
        call(fn)(a)


@pytest.mark.parametrize("kind", ["None_list", "generator", "three_lists", "one_list", "ndarray", "dict"])
def test_out_that_is_not_two_lists(kind):
    a = mlp_args()
    m = bc.MLP(a["all_weights"], a["all_biases"])
    dW = [np.empty_like(w) for w in a["all_weights"]]
    db = [np.empty_like(v) for v in a["all_biases"]]
    out = {"None_list": (None, db), "generator": (x for x in (dW, db)), "three_lists": (dW, db, db),
           "one_list": (dW,), "ndarray": np.empty(2), "dict": {0: dW, 1: db}}[kind]
    with pytest.raises((TypeError, ValueError), match="out"):
        m.gradients(a["net_input"], a["y"], out=out)


# ----------------------------------------------------------------------------- layouts, no writes

LAYOUTS = ["readonly", "strided", "negative_stride", "fortran", "byteswapped", "transposed_copy"]


def relayout(a, layout):
    if not isinstance(a, np.ndarray):
        return a
    if layout == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    if layout == "strided":
        big = np.zeros((*a.shape[:-1], 3 * a.shape[-1]) if a.ndim else (3,), a.dtype)
        if not a.ndim:
            big[0] = a
            return big[0]
        big[..., ::3] = a
        return big[..., ::3]
    if layout == "negative_stride":
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1] if a.ndim else a.copy()
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    if layout == "transposed_copy":
        return np.ascontiguousarray(a.T).T
    raise AssertionError(layout)


def all_arrays(a):
    out = []
    for v in a.values():
        out.extend(v if isinstance(v, list) else [v])
    return [v for v in out if isinstance(v, np.ndarray)]


def results_arrays(r):
    if isinstance(r, (list, tuple)):
        return [x for v in r for x in results_arrays(v)]
    return [r] if isinstance(r, np.ndarray) else []


LAYOUT_FUNCS = ["toy_forward", "toy_backward", "toy_gradients", "forward", "backward", "gradients", "MLP.forward", "MLP.gradients", "MLP"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fn", LAYOUT_FUNCS)
def test_layouts_give_the_same_bits_and_inputs_are_never_written(fn, layout, dtype):
    clean = args_for(fn, dtype)
    a = {k: ([relayout(x, layout) for x in v] if isinstance(v, list) else relayout(v, layout)) for k, v in clean.items()}
    saved = [(x.copy(), x.dtype, x.strides, x.flags.writeable) for x in all_arrays(a)]
    if fn == "MLP":
        m = bc.MLP(a["all_weights"], a["all_biases"])
        got = (m.gradients(clean["net_input"], clean["y"]), m.weights, m.biases)
        m0 = bc.MLP(clean["all_weights"], clean["all_biases"])
        want = (m0.gradients(clean["net_input"], clean["y"]), m0.weights, m0.biases)
    elif fn.startswith("MLP."):
        W, b = model_params(clean)
        W, b = [w.astype(dtype) for w in W], [v.astype(dtype) for v in b]
        m = bc.MLP(W, b)
        meth = getattr(m, fn.split(".")[1])
        got = meth(a["net_input"]) if fn == "MLP.forward" else meth(a["net_input"], a["y"])
        want = meth(clean["net_input"]) if fn == "MLP.forward" else meth(clean["net_input"], clean["y"])
    else:
        got = call(fn)(a)
        want = call(fn)(clean)
    child.same(got, want, f"{fn} on {layout} inputs")
    for (copy, dt, strides, writeable), x in zip(saved, all_arrays(a)):
        assert x.dtype == dt and x.strides == strides and x.flags.writeable == writeable
        assert copy.tobytes() == x.tobytes(), f"{fn} wrote into an input"
    for r in results_arrays(got):  # results are the caller's: never views of the inputs
        for x in all_arrays(a):
            assert not np.shares_memory(r, x), f"{fn}: a result shares memory with an input"


# ----------------------------------------------------------------------------- aliasing out=

PARAMS = r"(weights|biases)\[\d\]|parameters"  # the model's side: one parameter, or all of them
ALIAS_CASES = {
    # name: (build(m, a) -> (x, y, out), patterns of the two names the error must give)
    "out_is_the_models_parameters": (lambda m, a: (a["net_input"], a["y"], (m.weights, m.biases)),
                                     (r"out\[[01]\]\[[012]\]", PARAMS)),
    "one_weight_out_is_the_models": (lambda m, a: (a["net_input"], a["y"], _out(m, {(0, 1): m.weights[1]})), ("out[0][1]", PARAMS)),
    "bias_out_views_the_models": (lambda m, a: (a["net_input"], a["y"], _out(m, {(1, 2): m.biases[2][:, :]})), ("out[1][2]", PARAMS)),
    "bias_out_inside_a_models_weight": (lambda m, a: (a["net_input"], a["y"], _out(m, {(1, 0): m.weights[1].reshape(-1)[4:8].reshape(4, 1)})), ("out[1][0]", PARAMS)),
    "two_out_entries_same_array": (lambda m, a: (a["net_input"], a["y"], _same_twice(m)), ("out[1][0]", "out[1][1]")),
    "two_out_entries_overlap": (lambda m, a: (a["net_input"], a["y"], _overlapping(m)), ("out[0][1]", "out[1][0]")),
    "out_is_net_input": (lambda m, a: _into_input(m, a), ("out[0][0]", "net_input")),
    "out_is_y": (lambda m, a: _into_y(m, a, whole=True), ("out[0][2]", "y")),
    "out_overlaps_y": (lambda m, a: _into_y(m, a, whole=False), ("out[1][2]", "y")),
}


def _out(m, replace=None):
    out = ([np.zeros_like(w) for w in m.weights], [np.zeros_like(v) for v in m.biases])
    for (i, k), arr in (replace or {}).items():
        out[i][k] = arr
    return out


def _same_twice(m):
    out = _out(m)
    out[1][1] = out[1][0]  # both (4, 1)
    return out


def _overlapping(m):
    buf = np.zeros(20)
    return _out(m, {(0, 1): buf[:16].reshape(4, 4), (1, 0): buf[13:17].reshape(4, 1)})


def _into_input(m, a):
    buf = np.array(a["net_input"][:, :4], order="C")  # (3, 4): 12 values, as many as W0 (4, 3)
    return buf, a["y"][:, :4].copy(), _out(m, {(0, 0): buf.reshape(4, 3)})


def _into_y(m, a, whole):
    y = a["y"][:, :4].copy()  # (2, 4), the shape of W2
    alias = y if whole else y.reshape(-1)[3:5].reshape(2, 1)
    return a["net_input"][:, :4].copy(), y, _out(m, {(0, 2) if whole else (1, 2): alias})


@pytest.mark.parametrize("case", list(ALIAS_CASES))
def test_out_aliasing_is_a_value_error_naming_both(case):
    a = mlp_args()
    m = bc.MLP(a["all_weights"], a["all_biases"])
    build, (first, second) = ALIAS_CASES[case]
    x, y, out = build(m, a)
    params = [p.copy() for p in m.weights + m.biases]
    inputs = [x.copy(), np.asarray(y).copy()]
    with pytest.raises(ValueError) as info:
        m.gradients(x, y, out=out)
    msg = str(info.value)
    for name in (first, second):
        found = re.search(name, msg) if "\\" in name else name in msg
        assert found, f"the message does not name {name}: {msg}"
    child.same(m.weights + m.biases, params, "the model's parameters after a refused call")
    child.same([x, y], inputs, "the inputs after a refused call")


def test_disjoint_out_views_of_one_buffer_are_fine():
    a = mlp_args()
    m = bc.MLP(a["all_weights"], a["all_biases"])
    sizes = [w.size for w in m.weights] + [v.size for v in m.biases]
    buf = np.full(sum(sizes), np.nan)
    cuts = np.cumsum([0, *sizes])
    shapes = [w.shape for w in m.weights] + [v.shape for v in m.biases]
    views = [buf[cuts[i]:cuts[i + 1]].reshape(s) for i, s in enumerate(shapes)]
    out = (views[:3], views[3:])
    got = m.gradients(a["net_input"], a["y"], out=out)
    child.same(got, bc.gradients(a["net_input"], a["y"], a["all_weights"], a["all_biases"]), "gradients")


def test_out_may_be_another_models_parameters():
    a = mlp_args()
    m1 = bc.MLP(a["all_weights"], a["all_biases"])
    m2 = bc.MLP(a["all_weights"], a["all_biases"])
    got = m2.gradients(a["net_input"], a["y"], out=(m1.weights, m1.biases))
    child.same(got, bc.gradients(a["net_input"], a["y"], a["all_weights"], a["all_biases"]), "gradients")
    child.same(m1.weights, got[1], "the other model received the gradients")


# ----------------------------------------------------------------------------- NaN and Inf


def nonfinite_pattern(result):
    """Where the NaNs, +infs and -infs are, result by result (the README promises the reference's)."""
    out = []

    def walk(v):
        if isinstance(v, (list, tuple)):
            for u in v:
                walk(u)
        else:
            a = np.asarray(v)
            out.append((a.shape, np.packbits(np.isnan(a)).tobytes(), np.packbits(np.isposinf(a)).tobytes(),
                        np.packbits(np.isneginf(a)).tobytes()))

    walk(result)
    return out


NONFINITE = [(fn, where, val, "small") for fn in ("gradients", "forward", "backward", "MLP.gradients")
             for where in ("x", "W0", "W1", "b1", "y") for val in (np.nan, np.inf, -np.inf)]
NONFINITE += [(fn, where, val, "large") for fn in ("gradients", "MLP.gradients")  # the blocked pass
              for where in ("x", "W1", "y") for val in (np.nan, -np.inf)]


@pytest.mark.parametrize("fn,where,val,size", NONFINITE, ids=[f"{f}-{w}-{v}-{s}" for f, w, v, s in NONFINITE])
def test_nan_and_inf_land_where_the_reference_puts_them(fn, where, val, size):
    dims, N = ((3, 6, 5, 2), 5) if size == "small" else ((32, 128, 128, 4), 3000)
    x, y, W, b = child.net(dims, N, seed=3)
    {"x": x, "W0": W[0], "W1": W[1], "b1": b[1], "y": y}[where].flat[1] = val
    with np.errstate(all="ignore"):
        if fn == "backward":
            _, f, h = ref.forward(x, W, b)
            got, want = bc.backward(W, b, f, h, y), ref.backward(W, b, f, h, y)
        elif fn == "forward":
            got, want = bc.forward(x, W, b), ref.forward(x, W, b)
        else:
            got = bc.gradients(x, y, W, b) if fn == "gradients" else bc.MLP(W, b).gradients(x, y)
            want = ref.gradients(x, y, W, b)
    assert nonfinite_pattern(got) == nonfinite_pattern(want)


TOY_CHAINS = [("sin", "exp", "cos"), ("relu", "tanh", "sigmoid"), ("exp", "exp", "identity"), ("relu", "relu", "relu")]


@pytest.mark.parametrize("fn", TOY_FUNCS)
@pytest.mark.parametrize("acts", TOY_CHAINS, ids="-".join)
def test_toy_nan_and_inf_land_where_the_reference_puts_them(fn, acts):
    x = np.array([2.3, np.nan, np.inf, -np.inf, 400.0, -800.0, 0.0])
    beta, omega = np.array([1.0, 2, -3, 0.4]), np.array([0.1, -0.4, 2.0, 3.0])
    args = (x, beta, omega) if fn == "toy_forward" else (x, 2.0, beta, omega)
    with np.errstate(all="ignore"):
        got, want = getattr(bc, fn)(*args, activations=acts), getattr(ref, fn)(*args, activations=acts)
    assert nonfinite_pattern(got) == nonfinite_pattern(want)


# ----------------------------------------------------------------------------- gradcheck's options

GRADCHECK_BAD = [("eps", 0.0, ValueError), ("eps", -1e-6, ValueError), ("eps", np.nan, ValueError),
                 ("eps", np.inf, ValueError), ("eps", True, TypeError), ("eps", "1e-6", TypeError),
                 ("rtol", -1e-5, ValueError), ("rtol", np.nan, ValueError), ("rtol", True, TypeError),
                 ("rtol", "1e-5", TypeError), ("atol", -1e-7, ValueError), ("atol", np.nan, ValueError),
                 ("atol", False, TypeError), ("atol", [1e-7], TypeError)]


@pytest.mark.parametrize("model", ["toy", "mlp"])
@pytest.mark.parametrize("name,value,exc", GRADCHECK_BAD, ids=[f"{n}={v!r}" for n, v, _ in GRADCHECK_BAD])
def test_gradcheck_options_are_validated(model, name, value, exc):
    if model == "toy":
        a = toy_args()
        kw = dict(beta=a["beta"], omega=a["omega"], activations=ACTS)
        x, y = a["x"], a["y"]
    else:
        a = mlp_args()
        kw = dict(all_weights=a["all_weights"], all_biases=a["all_biases"])
        x, y = a["net_input"], a["y"]
    with pytest.raises(exc, match=pattern(name)):
        bc.gradcheck(x, y, **kw, **{name: value})


# ----------------------------------------------------------------------------- in child processes


@pytest.fixture(scope="module", autouse=True)
def _run_only_the_selected_probes(request):
    """Child processes run the probes of the tests pytest selected (``-k``), not all of them."""
    wanted = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if isinstance(value, str) and value in cases.RUNNER.probes:
                wanted.add(value)
            if isinstance(value, str) and value in ENV_IDS:
                wanted.update({ENV_IDS[value], ENV_IDS["unset"], ENV_IDS["1"]})
    cases.RUNNER.select(wanted)

SEQ_FUNCS = {"forward": ["all_weights", "all_biases"], "gradients": ["all_weights", "all_biases"],
             "MLP": ["all_weights", "all_biases"], "backward": ["all_weights", "all_biases", "all_f", "all_h"]}
SEQ_IDS = [cases.add(f"seq-{fn}-{t}-{k}", "seq_probe", fname=fn, target=t, kind=k)
           for fn, ts in SEQ_FUNCS.items() for t in ts for k in child.SEQ_KINDS]
ARG_LIKE_IDS = [cases.add(f"arraylike-{fn}-{arg}-{k}", "arg_arraylike_probe", fn=fn, arg=arg, kind=k)
                for fn, names in child.ARRAY_ARGS.items() for arg in names for k in child.ARG_KINDS]
GRADCHECK_SEQ_IDS = [cases.add(f"gradcheck-{t}-{k}", "gradcheck_seq_probe", target=t, kind=k)
                     for t in child.GRADCHECK_TARGETS for k in ("len_big", "len_zero", "iter_other")]
OUT_SEQ_IDS = [cases.add(f"outseq-{w}-{k}", "out_seq_probe", which=w, kind=k)
               for w in (0, 1) for k in ("len_big", "len_zero", "tuple_len_big", "getitem_mutates")]


@pytest.mark.parametrize("pid", SEQ_IDS + OUT_SEQ_IDS + ARG_LIKE_IDS + GRADCHECK_SEQ_IDS)
def test_lying_and_mutating_sequences(pid):
    cases.check(pid)


RACE_KINDS = ["replace_weight", "replace_bias", "replace_backward_f", "out_items", "out_lists", "reinit",
              "reinit_dims", "write_same_weights", "write_same_input", "assign_weights_attr",
              "concurrent_different_inputs"]
RACE_IDS = [cases.add(f"race-{k}", "race_probe", group=f"races{i % 2}", timeout=30, kind=k)
            for i, k in enumerate(RACE_KINDS)]
RACE_IDS += [cases.add(f"race-activations-{fn}", "activation_race_probe", group="races1", timeout=30, fn=fn)
             for fn in TOY_FUNCS]


@pytest.mark.parametrize("pid", RACE_IDS)
def test_threads_that_replace_or_free_buffers(pid):
    cases.check(pid)


UNINIT_IDS = [cases.add(f"uninit-{how}-{use}", "uninit_probe", how=how, use=use)
              for how in ("new", "subclass", "failed_init", "deleted_handle") for use in child.uninit_uses()]
REINIT_IDS = [cases.add(f"reinit-{k}", "reinit_probe", kind=k)
              for k in ("same_dims", "other_dims", "other_dtype", "bad_shapes", "bad_type", "bad_dtype",
                        "empty", "view_outlives_model", "init_twice_same_object", "new_then_init", "copy", "deepcopy")]


@pytest.mark.parametrize("pid", UNINIT_IDS)
def test_models_never_initialised_raise_on_every_use(pid):
    cases.check(pid)


@pytest.mark.parametrize("pid", REINIT_IDS)
def test_reinitialising_a_model_rebuilds_it_or_raises(pid):
    cases.check(pid)


def _classes():
    """Every class backprop_core and its native core expose, as pickle would name them."""
    found = {("backprop_core._core", "MLP"): None}  # the issue's 20-byte pickle, whatever exists now
    for modname in ("backprop_core._core", "backprop_core"):
        mod = importlib.import_module(modname)
        for name, obj in sorted(vars(mod).items()):
            if isinstance(obj, type) and getattr(obj, "__module__", "").startswith("backprop_core"):
                found[(modname, name)] = None
                found[(obj.__module__, obj.__qualname__)] = None
    return list(found)


PICKLE_VARIANTS = list(child.crafted_pickles("m", "n"))
CRAFTED_IDS = [cases.add(f"pickle-{mod}.{name}-{v}", "crafted_pickle_probe", module=mod, name=name, variant=v)
               for mod, name in _classes() for v in PICKLE_VARIANTS]
TRUNCATED_IDS = [cases.add(f"truncated-p{p}-{dt}-{mode}", "truncated_pickle_probe", protocol=p, dtype=dt, mode=mode)
                 for p in (0, 2, 5) for dt in ("float32", "float64") for mode in ("cut", "stop")]
BAD_STATE_IDS = [cases.add(f"badstate-{v}", "bad_state_probe", group="flip" if v.startswith("flip") else "shared",
                           variant=v) for v in (
    "args_empty", "args_none", "args_count", "args_rank3", "args_strings", "args_complex", "args_one",
    "state_none", "state_int", "state_str", "state_lists", "state_mismatch", "state_dict", "state_junk_dict",
    "flip_each_byte")]


CORE_CLASSES = sorted(n for n, o in vars(importlib.import_module("backprop_core._core")).items() if isinstance(o, type))
CORE_HANDLE_IDS = [cases.add(f"core-handle-{n}", "core_handle_probe", cls_name=n) for n in CORE_CLASSES]


def test_the_issues_twenty_byte_pickle_is_among_the_cases():
    assert "pickle-backprop_core._core.MLP-newobj" in CRAFTED_IDS
    assert child.crafted_pickles("backprop_core._core", "MLP")["newobj"] == b"\x80\x02cbackprop_core._core\nMLP\n)\x81."


@pytest.mark.parametrize("pid", CRAFTED_IDS + TRUNCATED_IDS + BAD_STATE_IDS + CORE_HANDLE_IDS)
def test_crafted_and_truncated_pickles(pid):
    cases.check(pid)


FORK_IDS = [cases.add(f"fork-while-{busy}", "fork_probe", group="", timeout=60, busy=busy)
            for busy in ("model_gradients", "model_forward", "gradients", "toy_gradients", "model_reinit")]


@pytest.mark.parametrize("pid", FORK_IDS)
def test_fork_while_busy(pid):
    cases.check(pid)


ENV_VALUES = {
    "unset": None, "1": "1", "4": "4", "2": "2", "zero": "0", "minus_one": "-1", "1e3": "1e3", "empty": "",
    "space_3": " 3", "3_space": "3 ", "plus_3": "+3", "arabic_indic_3": "\u0663", "superscript_3": "\u00b3",
    "fullwidth_3": "\uff13", "huge": "9" * 30, "2_pow_31": "2147483648", "2_pow_64_plus_1": str(2**64 + 1),
    "3.0": "3.0", "hex": "0x3", "word": "four", "non_utf8": "\udcff3", "leading_zero": "03",
}
CLEARLY_INVALID = {"zero", "minus_one", "1e3", "empty", "superscript_3", "3.0", "hex", "word", "non_utf8"}
VALID = {"1", "2", "4"}
HUGE = {"huge", "2_pow_31", "2_pow_64_plus_1"}
ENV_IDS = {k: cases.add(f"env-{k}", "env_probe", group="", timeout=90,
                        env=(("BACKPROP_CORE_NUM_THREADS", v),)) for k, v in ENV_VALUES.items()}


@pytest.mark.parametrize("key", list(ENV_VALUES))
def test_odd_thread_settings(key):
    value = ENV_VALUES[key]
    r = cases.check(ENV_IDS[key])
    default = cases.check(ENV_IDS["unset"])
    one = cases.check(ENV_IDS["1"])
    assert r["threads"] is not None, "no function reports the thread count the core read"
    warned = [w for w in r["warnings"] if w.startswith("RuntimeWarning")]
    others = [w for w in r["warnings"] if not w.startswith("RuntimeWarning")]
    assert not others, f"unexpected warnings at import: {others}"
    assert r["digest"] == one["digest"], f"results differ from BACKPROP_CORE_NUM_THREADS=1 with {value!r}"
    if key == "unset":
        assert not warned and r["threads"] >= 1
        return
    if warned:
        assert "BACKPROP_CORE_NUM_THREADS" in warned[0] and len(warned) == 1, warned
    if key in CLEARLY_INVALID:
        assert warned, f"{value!r}: no RuntimeWarning"
    if key in VALID:
        assert not warned and r["threads"] == int(value), (warned, r["threads"])
    elif key in HUGE and warned and r["threads"] != default["threads"]:  # capped, as Python said
        assert 1 <= r["threads"] <= 4096 and f"uses {r['threads']} threads" in warned[0], (warned, r["threads"])
    elif warned:  # ignored: the core uses its default, as Python said
        assert r["threads"] == default["threads"], f"Python warned {value!r} is ignored, the core uses {r['threads']} threads"
    elif key in HUGE:
        assert 1 <= r["threads"] <= 4096, f"{value!r} accepted as {r['threads']} threads"
    else:  # accepted without a warning: the core must have read the same number as Python
        assert r["threads"] == int(value), f"{value!r}: Python accepted it, the core uses {r['threads']} threads"


UNALIGNED_IDS = [cases.add(f"unaligned-{fn}-{dt}", "unaligned_probe", fn=fn, dtype=dt)
                 for fn in child.UNALIGNED_FNS for dt in ("float32", "float64")]
DEEP_IDS = [cases.add(f"deep-{n}-layers", "many_layers_probe", layers=n) for n in (1000, 20000)]
HUGE_IDS = [cases.add(f"huge-{k}", "huge_probe", group="huge", timeout=20, kind=k) for k in child.HUGE_KINDS]


@pytest.mark.parametrize("pid", HUGE_IDS + DEEP_IDS)
def test_impossible_sizes_raise_memory_or_value_error(pid):
    cases.check(pid)


@pytest.mark.parametrize("pid", UNALIGNED_IDS)
def test_unaligned_arrays_give_the_same_bits(pid):
    cases.check(pid)
