"""Probes that may crash or hang the interpreter, run in child processes.

``_adversarial_cases.run_probes`` starts ``python -c "...; _adversarial_child.main()"`` and
sends a JSON list of probes (a function of this module and its keyword arguments) on stdin. Each
probe returns a JSON-able value or raises; ``main`` prints one line before and one line after
each probe, so the parent can tell which probe crashed (a signal) or hung (the faulthandler
watchdog ends the process and writes "Timeout"). A probe judges its own results: it raises
``AssertionError`` for a wrong answer, an exception of the wrong type or a wrong message.

backprop_core is imported lazily (``bc()``): the thread-setting probes import it themselves,
under the environment the parent chose.
"""

from __future__ import annotations

import copy
import faulthandler
import gc
import hashlib
import inspect
import io
import json
import os
import pickle
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from typing import Any

import numpy as np

# A call may refuse its arguments with one of these; anything else (SystemError above all) is not
# a clean refusal.
CLEAN = (TypeError, ValueError, RuntimeError, MemoryError)


def bc() -> Any:
    import backprop_core

    return backprop_core


class Boom(Exception):
    """Raised by array-likes; a call may let it through."""


# ----------------------------------------------------------------------------- networks


DIMS = (3, 4, 4, 2)  # the two hidden layers have the same shapes (for aliasing out= entries)
BIG = (32, 128, 128, 4)  # with N = 2000: a few ms per call, large enough for the pool and blocks


def net(dims=DIMS, N=6, dtype=np.float64, seed=4):
    rng = np.random.default_rng(seed)
    W = [rng.normal(size=(dims[k + 1], dims[k])).astype(dtype) for k in range(len(dims) - 1)]
    b = [rng.normal(size=(d, 1)).astype(dtype) for d in dims[1:]]
    x = rng.normal(size=(dims[0], N)).astype(dtype)
    y = rng.normal(size=(dims[-1], N)).astype(dtype)
    return x, y, W, b


def big_net(seed=5, dims=BIG, N=2000):
    return net(dims, N, np.float64, seed)


def copies(arrays):
    return [np.array(a, copy=True) for a in arrays]


def describe(a: Any) -> str:
    a = np.asarray(a)
    flat = a.ravel()[:4]
    return f"array(shape={a.shape}, dtype={a.dtype}, first={flat.tolist()})"


def same(a: Any, b: Any, name: str = "result") -> None:
    """Bit-for-bit equality of (nested) results, with shapes and dtypes."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
            raise AssertionError(f"{name}: {type(a).__name__} vs {type(b).__name__}")
        a, b = list(a), list(b)  # by iteration: a list subclass's len() may lie
        if len(a) != len(b):
            raise AssertionError(f"{name}: {len(a)} entries vs {len(b)}")
        for k, (u, v) in enumerate(zip(a, b)):
            same(u, v, f"{name}[{k}]")
        return
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
        raise AssertionError(f"{name}: {describe(a)} != expected {describe(b)}")


def is_same(a: Any, b: Any) -> bool:
    try:
        same(a, b)
    except AssertionError:
        return False
    return True


def one_of(result: Any, candidates: list, what: str) -> int:
    for k, c in enumerate(candidates):
        if is_same(result, c):
            return k
    raise AssertionError(
        f"{what}: a result equal to none of the {len(candidates)} correct answers "
        f"(silent wrong result); first difference from the first: {first_difference(result, candidates[0])}"
    )


def first_difference(a: Any, b: Any) -> str:
    try:
        same(a, b)
    except AssertionError as e:
        return str(e)
    return "none"


def digest(result: Any) -> str:
    h = hashlib.sha256()

    def walk(r):
        if isinstance(r, (list, tuple)):
            for v in r:
                walk(v)
        else:
            a = np.asarray(r)
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).tobytes())

    walk(result)
    return h.hexdigest()


def clean_exception(e: BaseException, extra: tuple = ()) -> None:
    """Raise AssertionError unless ``e`` is a clean refusal."""
    if isinstance(e, AssertionError):
        raise e
    if isinstance(e, SystemError) or not isinstance(e, CLEAN + extra):
        raise AssertionError(f"not a clean exception: {type(e).__name__}: {e}") from e


def raises(types: Any, pattern: str | None, fn: Any, *args: Any, **kwargs: Any) -> str:
    """``fn(*args, **kwargs)`` must raise one of ``types`` with a message matching ``pattern``."""
    types = types if isinstance(types, tuple) else (types,)
    names = "/".join(t.__name__ for t in types)
    try:
        r = fn(*args, **kwargs)
    except types as e:
        if pattern is not None and not re.search(pattern, str(e)):
            raise AssertionError(
                f"{type(e).__name__} raised, but its message {str(e)!r} does not match {pattern!r}"
            ) from e
        return f"{type(e).__name__}: {e}"
    except Exception as e:
        raise AssertionError(f"expected {names} matching {pattern!r}, got {type(e).__name__}: {e}") from e
    raise AssertionError(f"expected {names} matching {pattern!r}, got a result: {summary(r)}")


def summary(r: Any) -> str:
    if isinstance(r, (list, tuple)):
        return "(" + ", ".join(summary(v) for v in r[:4]) + (", ..." if len(r) > 4 else "") + ")"
    if isinstance(r, np.ndarray) or np.isscalar(r):
        return describe(r)
    return repr(r)[:80]


def correct_or_clean(fn: Any, candidates: list, what: str, extra: tuple = ()) -> str:
    """``fn()`` returns one of the correct answers or raises a clean exception."""
    try:
        r = fn()
    except Exception as e:
        clean_exception(e, extra)
        return f"refused: {type(e).__name__}: {e}"
    k = one_of(r, candidates, what)
    return f"answer {k}"


def outcome(fn: Any) -> tuple:
    try:
        return ("ok", fn())
    except Exception as e:
        return ("raised", e)


# ----------------------------------------------------------------------------- lying sequences


class LenLiar(list):
    """A list whose ``len()`` is not its length."""

    lie = 10_000

    def __len__(self):
        return self.lie


class TupleLenLiar(tuple):
    lie = 10_000

    def __len__(self):
        return self.lie


class GetitemMutates(list):
    """Indexing it empties it (and frees the arrays it held)."""

    def __getitem__(self, i):
        item = list.__getitem__(self, i)
        self.clear()
        gc.collect()
        return item


class IterOther(list):
    """Iterating yields other arrays (twice the stored ones) than indexing."""

    def __iter__(self):
        for i in range(list.__len__(self)):
            yield list.__getitem__(self, i) * 2


class IterRaises(list):
    def __iter__(self):
        yield list.__getitem__(self, 0)
        raise Boom("__iter__ refused")


class IterFewer(list):
    def __iter__(self):
        for i in range(list.__len__(self) - 1):
            yield list.__getitem__(self, i)


class MutatingRows(list):
    """Rows of numbers (a nested list) whose len() appends to the outer list being converted."""

    def __init__(self, rows, owner):
        super().__init__(rows)
        self.owner = owner

    def __len__(self):
        if len(self.owner) < 50:
            self.owner.append(np.ones((1, 1)))
        return list.__len__(self)


class ArrayLike:
    """An array-like item whose ``__array__`` misbehaves as ``how`` says."""

    def __init__(self, arr: np.ndarray, how: str, owner: list | None = None):
        self.arr, self.how, self.owner, self.calls, self.given = arr, how, owner, 0, []

    def __array__(self, dtype=None, copy=None):
        self.calls += 1
        a = self.arr
        if self.how == "appends":
            self.owner.append(np.ones((1, 1)))
        elif self.how == "clears":
            self.owner.clear()
            gc.collect()
        elif self.how == "deletes_other":
            if len(self.owner) > 1:
                del self.owner[0 if self.owner[0] is not self else -1]
            gc.collect()
        elif self.how == "raises":
            raise Boom("__array__ refused")
        elif self.how == "wrong_dtype":
            a = a.astype(np.complex128)
        elif self.how == "str_dtype":
            a = np.full(a.shape, "a")
        elif self.how == "wrong_shape":
            a = np.ones((a.shape[0] + 2, a.shape[1] + 3), a.dtype)
        elif self.how == "changes":
            a = a * self.calls
        elif self.how == "shape_changes":
            a = a.copy() if self.calls == 1 else np.ones((9, 9), a.dtype)
        elif self.how == "shape_changes_1d":
            a = a.copy() if self.calls == 1 else np.ones(9, a.dtype)
        elif self.how == "non_array":
            return [[1.0]]
        elif self.how == "callback":
            self.callback()
            a = a.copy()
        else:
            raise AssertionError(self.how)
        self.given.append(np.array(a, copy=True) if isinstance(a, np.ndarray) else a)
        if dtype is not None and isinstance(a, np.ndarray) and a.dtype.kind in "fiu":
            a = a.astype(dtype)
        return a


SEQ_KINDS = (
    "len_big", "len_zero", "len_less", "tuple_len_big", "getitem_mutates", "iter_other",
    "iter_fewer", "iter_raises", "self_reference", "rows_mutate", "cross_appends", "cross_clears", "appends", "clears", "deletes_other", "raises", "wrong_dtype", "str_dtype",
    "wrong_shape", "changes", "shape_changes", "non_array",
)  # fmt: skip
ITEM_KINDS = {"appends", "clears", "deletes_other", "raises", "wrong_dtype", "str_dtype",
              "wrong_shape", "changes", "shape_changes", "non_array"}  # fmt: skip


def mlp_call(fname: str, x, y, lists: dict) -> Any:
    W, b = lists["all_weights"], lists["all_biases"]
    if fname == "forward":
        return bc().forward(x, W, b)
    if fname == "gradients":
        return bc().gradients(x, y, W, b)
    if fname == "backward":
        return bc().backward(W, b, lists["all_f"], lists["all_h"], y)
    if fname == "MLP":
        m = bc().MLP(W, b)
        return (m.gradients(x, y), m.forward(x))
    raise AssertionError(fname)


def seq_probe(fname: str, target: str, kind: str) -> str:
    """``target`` (a list argument of ``fname``) replaced by a lying or mutating sequence."""
    x, y, W, b = net()
    lists = {"all_weights": W, "all_biases": b}
    if fname == "backward":
        _, f, h = bc().forward(x, W, b)
        lists.update(all_f=list(f), all_h=list(h))
    clean = {k: copies(v) for k, v in lists.items()}

    def with_target(seq):
        return {**{k: copies(v) for k, v in clean.items()}, target: seq}

    def plain(items):
        return outcome(lambda: mlp_call(fname, x.copy(), y.copy(), with_target(list(items))))

    expected = plain(clean[target])
    assert expected[0] == "ok", f"the clean call failed: {expected[1]!r}"
    items = copies(clean[target])  # the adversarial sequence is the only owner of its arrays
    what = f"{fname} with {target} = {kind}"
    if kind in ("len_big", "len_zero", "len_less", "tuple_len_big"):
        base = TupleLenLiar if kind == "tuple_len_big" else LenLiar
        lie = {"len_zero": 0, "len_less": len(items) - 1}.get(kind, 10_000)
        seq = type(base.__name__, (base,), {"lie": lie})(items)
        got = mlp_call(fname, x, y, with_target(seq))  # read by iteration: the same answer
        same(got, expected[1], what)
        return "same answer"
    if kind == "getitem_mutates":
        return correct_or_clean(
            lambda: mlp_call(fname, x, y, with_target(GetitemMutates(items))), [expected[1]], what,
            (IndexError,),
        )
    if kind in ("iter_other", "iter_fewer"):
        seq = (IterOther if kind == "iter_other" else IterFewer)(items)
        want = plain(list(iter(seq)))  # what iteration gives is what the call must use
        got = outcome(lambda: mlp_call(fname, x, y, with_target(seq)))
        if want[0] == "ok":
            if got[0] != "ok":
                raise AssertionError(f"{what}: raised {got[1]!r}, the iterated items give a result")
            same(got[1], want[1], what)
            return "the iterated items' answer"
        if got[0] == "ok":
            raise AssertionError(f"{what}: a result where the iterated items raise {want[1]!r}")
        if type(got[1]) is not type(want[1]):
            raise AssertionError(f"{what}: {got[1]!r} where the iterated items raise {want[1]!r}")
        return f"same refusal: {got[1]!r}"
    if kind == "iter_raises":
        try:
            mlp_call(fname, x, y, with_target(IterRaises(items)))
        except Boom:
            return "Boom passed through"
        except Exception as e:
            clean_exception(e)
            return f"refused: {e!r}"
        raise AssertionError(f"{what}: a result although iterating raised")
    if kind == "self_reference":  # item 1 is the list itself
        seq = list(items)
        seq[1] = seq
        r = outcome(lambda: mlp_call(fname, x, y, with_target(seq)))
        if r[0] == "ok":
            raise AssertionError(f"{what}: a result from a list that contains itself")
        clean_exception(r[1], (RecursionError,))
        return f"refused: {type(r[1]).__name__}"
    if kind in ("cross_appends", "cross_clears"):
        # The target is a tuple whose item 1 mutates *another* list argument while converted.
        other = "all_biases" if target == "all_weights" else "all_weights"
        args = with_target(None)
        seq = list(items)
        seq[1] = ArrayLike(seq[1], kind.split("_")[1], args[other])
        args[target] = tuple(seq)
        return correct_or_clean(lambda: mlp_call(fname, x, y, args), [expected[1]], what)
    if kind == "rows_mutate":  # item 1 a nested list whose rows append to the outer list
        seq = list(items)
        seq[1] = MutatingRows([list(r) for r in items[1]], seq)
        return correct_or_clean(lambda: mlp_call(fname, x, y, with_target(seq)), [expected[1]], what)
    # An array-like at item 1 of the target list.
    seq = list(items)
    al = ArrayLike(seq[1], kind, seq)
    seq[1] = al
    name = re.escape(f"{target}[1]")
    call = lambda: mlp_call(fname, x, y, with_target(seq))  # noqa: E731
    if kind == "raises":
        try:
            call()
        except Boom:
            return "Boom passed through"
        except Exception as e:
            clean_exception(e)
            return f"refused: {e!r}"
        raise AssertionError(f"{what}: a result although __array__ raised")
    if kind in ("wrong_dtype", "str_dtype"):
        return raises(TypeError, name, call)
    if kind == "wrong_shape":
        return raises(ValueError, name, call)
    if kind == "non_array":
        return correct_or_clean(call, [], what)
    if kind in ("appends", "clears", "deletes_other"):
        return correct_or_clean(call, [expected[1]], what)
    if kind in ("changes", "shape_changes"):
        r = outcome(call)
        if r[0] == "raised":
            clean_exception(r[1])
            return f"refused: {r[1]!r}"
        cands = []
        for a in al.given:
            alt = copies(clean[target])
            alt[1] = a
            p = plain(alt)
            if p[0] == "ok":
                cands.append(p[1])
        one_of(r[1], cands, what)
        return f"an answer of one of {al.calls} conversions"
    raise AssertionError(kind)


def out_seq_probe(which: int, kind: str) -> str:
    """MLP.gradients(out=...) where one of the two out lists lies or mutates."""
    x, y, W, b = net()
    m = bc().MLP(W, b)
    want = bc().gradients(x, y, copies(W), copies(b))
    out = [[np.full_like(w, np.nan) for w in W], [np.full_like(v, np.nan) for v in b]]
    arrays = list(out[which])
    if kind == "len_big":
        out[which] = LenLiar(out[which])
    elif kind == "len_zero":
        out[which] = type("LenLiar", (LenLiar,), {"lie": 0})(out[which])
    elif kind == "tuple_len_big":
        out[which] = TupleLenLiar(out[which])
    elif kind == "getitem_mutates":
        out[which] = GetitemMutates(out[which])
    try:
        r = m.gradients(x, y, out=tuple(out))
    except Exception as e:
        if kind != "getitem_mutates":
            raise AssertionError(f"out[{which}] = {kind}: refused ({e!r}); iteration reads it fine") from e
        clean_exception(e, (IndexError,))
        return f"refused: {e!r}"
    same(r[0], want[0], "loss")
    same(r[1 + which], want[1 + which], f"returned out[{which}]")
    same(arrays, want[1 + which], f"the arrays of out[{which}]")
    return "filled"


ARG_KINDS = ("raises", "wrong_dtype", "str_dtype", "changes", "shape_changes", "non_array", "reenters",
             "reinit_model")
ARRAY_ARGS = {"toy_backward": ("x", "y", "beta", "omega"), "toy_gradients": ("x", "omega"),
              "forward": ("net_input",), "gradients": ("net_input", "y"),
              "MLP.gradients": ("net_input", "y"), "MLP.forward": ("net_input",)}  # fmt: skip


def arg_arraylike_probe(fn: str, arg: str, kind: str) -> str:
    """An array argument given as an array-like whose ``__array__`` misbehaves."""
    B = bc()
    if fn.startswith("toy"):
        args = {"x": np.array([[1.0, -2.0, 0.5, 3.0]]), "y": np.array([[0.5, 1.0, -1.0, 2.0]]),
                "beta": np.array([[-1.0, 0.5, -0.25, 0.75]]), "omega": np.array([[1.0, -2.0, 1.5, 0.5]])}
        args = {k: v[0] for k, v in args.items()}  # 1-D, the shapes ArrayLike's kinds distort

        def run(a):
            if fn == "toy_gradients":
                return B.toy_gradients(a["x"], 0.5, a["beta"], a["omega"])
            return B.toy_backward(a["x"], a["y"], a["beta"], a["omega"])
    else:
        x, y, W, b = net()
        args = {"net_input": x, "y": y}
        m = B.MLP(W, b)

        def run(a):
            if fn == "forward":
                return B.forward(a["net_input"], W, b)
            if fn == "gradients":
                return B.gradients(a["net_input"], a["y"], W, b)
            if fn == "MLP.forward":
                return m.forward(a["net_input"])
            return m.gradients(a["net_input"], a["y"])

    clean = {k: v.copy() for k, v in args.items()}
    al = ArrayLike(clean[arg].copy(), kind)
    if kind in ("reenters", "reinit_model"):
        if kind == "reinit_model" and not fn.startswith("MLP"):
            kind = "reenters"  # no model to re-initialise: re-enter instead
        al.how = "callback"
        first = outcome(lambda: run(clean))
        if kind == "reenters":  # converting the argument runs the same call, on clean arguments
            al.callback = lambda: same(run(clean), first[1], "the re-entrant call")
            cands = [first[1]]
        else:  # converting net_input re-initialises the model (other widths, other dtype)
            x2, y2, W2, b2 = net((3, 5, 2), 6, np.float32, 11)
            al.callback = lambda: m.__init__(W2, b2)
            cands = [first[1]]
            m2 = B.MLP(W2, b2)
            second = outcome(lambda: (m2.forward if fn == "MLP.forward" else m2.gradients)(
                *([clean["net_input"].astype(np.float32)] + ([] if fn == "MLP.forward" else [clean["y"].astype(np.float32)]))))
            if second[0] == "ok":
                cands.append(second[1])
        return correct_or_clean(lambda: run({**clean, arg: al}), cands, f"{fn} with {arg} {kind}")
    if kind == "shape_changes" and al.arr.ndim == 1:
        al.how = "shape_changes_1d"
    call = lambda: run({**clean, arg: al})  # noqa: E731
    what = f"{fn} with {arg} an array-like that {kind}"
    if kind == "raises":
        try:
            call()
        except Boom:
            return "Boom passed through"
        except Exception as e:
            clean_exception(e)
            return f"refused: {e!r}"
        raise AssertionError(f"{what}: a result although __array__ raised")
    if kind in ("wrong_dtype", "str_dtype"):
        return raises(TypeError, re.escape(arg), call)
    if kind == "non_array":
        return correct_or_clean(call, [], what)
    r = outcome(call)
    if r[0] == "raised":
        clean_exception(r[1])
        return f"refused: {r[1]!r}"
    cands = [run({**clean, arg: a}) for a in al.given if outcome(lambda a=a: run({**clean, arg: a}))[0] == "ok"]
    one_of(r[1], cands, what)
    return f"an answer of one of {al.calls} conversions"


ACT_KINDS = ("len_big", "len_zero", "tuple_len_big", "getitem_mutates", "iter_other", "iter_fewer")


def activation_seq_probe(fn: str, kind: str) -> str:
    """``activations`` a list or tuple subclass that lies: the names iteration gives are used."""
    B = bc()
    x = np.array([1.0, -2.0, 0.5, 3.0])
    beta, omega = np.array([-1.0, 0.5, -0.25, 0.75]), np.array([1.0, -2.0, 1.5, 0.5])
    args = (x, beta, omega) if fn == "toy_forward" else (x, 0.25, beta, omega)

    def run(acts):
        return getattr(B, fn)(*args, activations=acts)

    stored = ["relu", "sin", "tanh"]
    if kind in ("len_big", "len_zero", "tuple_len_big"):
        base = TupleLenLiar if kind == "tuple_len_big" else LenLiar
        acts = type(base.__name__, (base,), {"lie": 0 if kind == "len_zero" else 10_000})(stored)
        same(run(acts), run(tuple(stored)), f"{fn} with activations {kind}")
        return "same answer"
    if kind == "getitem_mutates":
        return correct_or_clean(lambda: run(GetitemMutates(stored)), [run(tuple(stored))], kind, (IndexError,))
    if kind == "iter_other":
        class Other(list):
            def __iter__(self):
                return iter(["sin", "exp", "cos"])

        same(run(Other(stored)), run(("sin", "exp", "cos")), f"{fn} with activations iterating to others")
        return "the iterated names"
    if kind == "iter_fewer":  # two names for three layers: iteration says the chain is too short
        return raises(ValueError, None, run, IterFewer(stored))
    raise AssertionError(kind)


GRADCHECK_TARGETS = ("all_weights", "all_biases", "grads[0]", "grads[1]", "activations")


def gradcheck_seq_probe(target: str, kind: str) -> str:
    """gradcheck's list arguments lie too: its report is that of the items iteration gives."""
    B = bc()
    if target == "activations":
        x, y = np.array([1.0, -2.0, 0.5]), np.array([0.5, 0.0, 1.0])
        kw = {"beta": np.array([-1.0, 0.5, -0.25, 0.75]), "omega": np.array([1.0, -2.0, 1.5, 0.5]),
              "activations": ["relu", "sin", "tanh"]}  # fmt: skip
    else:
        x, y, W, b = net()
        g = B.gradients(x, y, W, b)
        kw = {"all_weights": W, "all_biases": b, "grads": (list(g[1]), list(g[2]))}

    def report(args):
        r = outcome(lambda: B.gradcheck(x, y, **args))
        if r[0] == "raised":
            return ("raised", type(r[1]).__name__)
        return ("report", bool(r[1].ok), list(r[1].failures), len(r[1].rows))

    def put(args, seq):
        args = dict(args)
        if target.startswith("grads"):
            i = int(target[6])
            args["grads"] = tuple(seq if j == i else args["grads"][j] for j in range(2))
        else:
            args[target] = seq
        return args

    items = list(kw["grads"][int(target[6])] if target.startswith("grads") else kw[target])
    if kind == "iter_other":
        seq = IterOther(items) if target != "activations" else type("Other", (list,), {
            "__iter__": lambda self: iter(["sin", "exp", "cos"])})(items)
    else:
        lie = 0 if kind == "len_zero" else 10_000
        seq = type("LenLiar", (LenLiar,), {"lie": lie})(items)
    want = report(put(kw, list(iter(seq))))
    got = report(put(kw, seq))
    if got != want:
        raise AssertionError(f"gradcheck with {target} = {kind}: {got} where the iterated items give {want}")
    return str(got)


# ----------------------------------------------------------------------------- threads


def _race(duration: float, main_call, mutate, check) -> dict:
    """``main_call`` in a loop for ``duration`` seconds while a thread runs ``mutate`` in a loop."""
    stop = threading.Event()
    errors: list = []

    def mutator():
        i = 0
        try:
            while not stop.is_set():
                mutate(i)
                i += 1
        except Exception as e:  # the mutator's own errors are the test's bugs: report them
            errors.append(e)

    t = threading.Thread(target=mutator)
    sys.setswitchinterval(1e-5)  # the GIL changes hands often: more interleavings per second
    t.start()
    calls = refused = 0
    answers: dict = {}
    try:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            r = outcome(main_call)
            calls += 1
            if r[0] == "raised":
                clean_exception(r[1])
                refused += 1
            else:
                k = check(r[1])
                answers[k] = answers.get(k, 0) + 1
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(0.005)
    if errors:
        raise AssertionError(f"the mutating thread failed: {errors[0]!r}")
    if calls == refused:
        raise AssertionError(f"all {calls} calls refused: the race never ran a call to its end")
    return {"calls": calls, "refused": refused, "answers": {str(k): v for k, v in answers.items()}}


def race_probe(kind: str, duration: float = 0.6) -> dict:
    B = bc()
    x, y, W, b = big_net()
    W2 = [w * 0.5 for w in W]
    b2 = [v - 1.0 for v in b]
    if kind in ("replace_weight", "replace_bias"):
        lst, k, alt = (W, 1, W2[1]) if kind == "replace_weight" else (b, 0, b2[0])
        orig = lst[k].copy()
        cands = []
        for v in (orig, alt):
            a, c = copies(W), copies(b)
            (a if kind == "replace_weight" else c)[k] = v.copy()
            cands.append(B.gradients(x, y, a, c))

        def mutate(i):
            lst[k] = (alt if i % 2 else orig).copy()  # the previous array is freed here
            if i % 8 == 0:
                gc.collect()

        return _race(duration, lambda: B.gradients(x, y, W, b), mutate,
                     lambda r: one_of(r, cands, kind))
    if kind == "replace_backward_f":
        _, f, h = B.forward(x, W, b)
        f, h = list(f), list(h)
        want = B.backward(copies(W), copies(b), copies(f), copies(h), y)
        orig = f[1]

        def mutate(i):
            f[1] = orig.copy()
            h[1] = h[1].copy()
            if i % 8 == 0:
                gc.collect()

        return _race(duration, lambda: B.backward(W, b, f, h, y), mutate,
                     lambda r: one_of(r, [want], kind))
    m = B.MLP(W, b)
    want = B.gradients(x, y, copies(W), copies(b))
    if kind in ("out_items", "out_lists"):
        out = ([np.empty_like(w) for w in W], [np.empty_like(v) for v in b])

        def mutate(i):
            if kind == "out_items":
                out[i % 2][i % 3] = np.empty_like(out[i % 2][i % 3])  # the old buffer is freed
            elif i % 4:
                out[0][:] = [np.empty_like(a) for a in out[0]]  # every buffer freed at once
            else:  # emptied for a moment: a call starting now may refuse (a clean ValueError)
                saved = list(out[0])
                out[0].clear()
                out[0].extend(np.empty_like(a) for a in saved)
                del saved
            if i % 8 == 0:
                gc.collect()

        res = _race(duration, lambda: m.gradients(x, y, out=out)[0], mutate,
                    lambda loss: one_of(loss, [want[0]], "loss"))
        r = m.gradients(x, y, out=out)  # quiet again: the buffers now in the lists get the answer
        same(r, want, "gradients after the race")
        same(list(out), [want[1], want[2]], "out after the race")
        return res
    if kind in ("reinit", "reinit_dims"):
        Wn, bn = (W2, b2) if kind == "reinit" else net((32, 64, 16, 4), 1, np.float64, 9)[2:]
        new = B.gradients(x, y, copies(Wn), copies(bn))

        def mutate(i):
            m.__init__(*((Wn, bn) if i % 2 else (W, b)))

        return _race(duration, lambda: m.gradients(x, y), mutate,
                     lambda r: one_of(r, [want, new], kind))
    if kind == "concurrent_different_inputs":
        # Several threads share one model and the free functions, each with its own batch size
        # (other block plans and scratch sizes): each gets its own answer.
        batches = [(x[:, :n].copy(), y[:, :n].copy()) for n in (1, 7, 300, 2000, 1500)]
        wants = [B.gradients(xb, yb, W, b) for xb, yb in batches]
        errors: list = []

        def worker(i):
            try:
                for rep in range(6):
                    xb, yb = batches[(i + rep) % len(batches)]
                    want = wants[(i + rep) % len(batches)]
                    same(m.gradients(xb, yb), want, f"thread {i} model")
                    same(B.gradients(xb, yb, W, b), want, f"thread {i} free")
            except Exception as e:
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise errors[0]
        return {"threads": len(ts)}
    if kind == "write_same_weights":
        def mutate(i):
            for v in m.weights + m.biases:
                v[...] = v.copy()  # writes the values it holds: the answer cannot change

        return _race(duration, lambda: m.gradients(x, y), mutate,
                     lambda r: one_of(r, [want], kind))
    if kind == "write_same_input":
        xs = x.copy()

        def mutate(i):
            x[...] = xs

        return _race(duration, lambda: B.gradients(x, y, W, b), mutate,
                     lambda r: one_of(r, [want], kind))
    if kind == "assign_weights_attr":
        def mutate(i):
            for name in ("weights", "biases"):
                try:
                    setattr(m, name, [np.zeros((1, 1))])
                except (AttributeError, TypeError):
                    pass
            gc.collect()

        return _race(duration, lambda: m.gradients(x, y), mutate,
                     lambda r: one_of(r, [want], kind))
    raise AssertionError(kind)


class NoisyStr(str):
    """An activation name whose destruction runs Python code (a cache must not care)."""

    def __del__(self):
        gc.collect(0)
        time.sleep(0)


def activation_race_probe(fn: str, duration: float = 0.6) -> dict:
    """Two threads asking for different chains with str subclasses must each get their own."""
    B = bc()
    beta = np.array([0.3, -0.2, 0.5, 0.1])
    omega = np.array([1.1, 0.7, -0.9, 1.3])
    x = np.linspace(-2, 2, 301)
    chains = [("relu", "sin", "tanh"), ("sin", "relu", "exp")]
    call = {
        "toy_forward": lambda a: B.toy_forward(x, beta, omega, activations=a),
        "toy_backward": lambda a: B.toy_backward(x, 0.5, beta, omega, activations=a),
        "toy_gradients": lambda a: B.toy_gradients(x, 0.5, beta, omega, activations=a),
    }[fn]
    wants = [call(c) for c in chains]
    stop = threading.Event()
    bad: list = []

    def other():
        while not stop.is_set():
            r = call([NoisyStr(s) for s in chains[1]])
            if not is_same(r, wants[1]):
                bad.append(first_difference(r, wants[1]))

    t = threading.Thread(target=other)
    t.start()
    n = 0
    try:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            same(call([NoisyStr(s) for s in chains[0]]), wants[0], f"{fn} {chains[0]}")
            n += 1
    finally:
        stop.set()
        t.join()
    if bad:
        raise AssertionError(f"the other thread got another chain's answer: {bad[0]}")
    return {"calls": n}


# ----------------------------------------------------------------------------- models half-made


def mlp_class():
    return bc().MLP


NOT_INIT = r"not initiali[sz]ed"


def uses(obj: Any, x: np.ndarray, y: np.ndarray, dims=DIMS) -> dict:
    """Every method, property and protocol of ``obj``: name -> a callable that uses it."""
    out = {}
    for name in sorted(set(dir(type(obj)))):
        if name.startswith("_"):
            continue
        attr = getattr(type(obj), name, None)
        if isinstance(inspect.getattr_static(type(obj), name, None), classmethod):
            continue  # a constructor (MLP.from_widths, MLP.load, ...): it uses no instance
        if isinstance(attr, property) or not callable(attr):
            out[name] = lambda name=name: getattr(obj, name)
        elif name == "forward":
            out[name] = lambda: obj.forward(x)
        elif name == "predict":
            out[name] = lambda: obj.predict(x)
        elif name == "fit":
            out[name] = lambda: obj.fit(x, y, epochs=1)
        elif name == "save":
            out[name] = lambda: obj.save(io.BytesIO())
        elif name == "gradients":
            out[name] = lambda: obj.gradients(x, y)
            out["gradients_out"] = lambda: obj.gradients(
                x, y, out=([np.empty((dims[k + 1], dims[k])) for k in range(len(dims) - 1)],
                           [np.empty((d, 1)) for d in dims[1:]]))
        else:
            out[name] = lambda name=name: getattr(obj, name)()
    out["repr"] = lambda: repr(obj)
    out["str"] = lambda: str(obj)
    out["format"] = lambda: f"{obj}"
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        out[f"pickle{proto}"] = lambda proto=proto: pickle.dumps(obj, proto)
    out["copy"] = lambda: copy.copy(obj)
    out["deepcopy"] = lambda: copy.deepcopy(obj)
    out["reduce_ex"] = lambda: obj.__reduce_ex__(2)
    out["sizeof"] = lambda: sys.getsizeof(obj)
    return out


def use_all(obj: Any, strict_mlp: bool) -> dict:
    """Run every use of ``obj``. Uninitialised models (``strict_mlp``) must refuse each with
    RuntimeError('... not initialised ...'); repr/str may describe the state instead."""
    x, y, _, _ = net()
    report = {}
    for name, use in uses(obj, x, y).items():
        r = outcome(use)
        if r[0] == "ok":
            if strict_mlp and name not in ("repr", "str", "format", "sizeof"):
                raise AssertionError(f"{name}: returned {summary(r[1])} on a model never initialised")
            if strict_mlp and name in ("repr", "str", "format") and not re.search(NOT_INIT, r[1]):
                raise AssertionError(f"{name}: {r[1]!r} does not say the model is not initialised")
            report[name] = "ok"
        else:
            e = r[1]
            if isinstance(e, (SystemError, AssertionError)):
                raise AssertionError(f"{name}: {type(e).__name__}: {e}")
            if isinstance(e, TypeError) and re.search(r"missing \d+ required|takes \d+ positional", str(e)):
                report[name] = "needs arguments"  # a method this probe cannot call bare
                continue
            if strict_mlp and not (isinstance(e, RuntimeError) and re.search(NOT_INIT, str(e))):
                raise AssertionError(
                    f"{name}: {type(e).__name__}: {e!s:.200} (expected RuntimeError 'MLP: not initialised')"
                )
            report[name] = type(e).__name__
    return report


def ours(obj: Any) -> bool:
    """An instance of a backprop_core class (the objects whose every use is tried)."""
    return type(obj).__module__.startswith("backprop_core")


def is_public_mlp(obj: Any) -> bool:
    return isinstance(obj, mlp_class())


def uninit_probe(how: str, use: str) -> str:
    """An MLP that never ran __init__ (or whose __init__ failed): ``use`` raises RuntimeError."""
    MLP = mlp_class()
    if how == "new":
        m = MLP.__new__(MLP)
    elif how == "subclass":
        class Sub(MLP):
            def __init__(self):
                pass

        made = outcome(Sub)
        if made[0] == "raised":  # refusing to make it at all is as good
            return raises(TypeError, "__init__", Sub)
        m = made[1]
    elif how == "deleted_handle":  # a live model whose private state a user deleted
        m = MLP(*net()[2:])
        state = [n for n in getattr(MLP, "__slots__", ()) if n != "__weakref__"] or list(vars(m))
        for n in state:
            try:
                delattr(m, n)
            except (AttributeError, TypeError):
                return "its state cannot be deleted"
    elif how == "failed_init":
        m = MLP.__new__(MLP)
        try:
            m.__init__([], [])
        except ValueError:
            pass
        else:
            raise AssertionError("MLP([], []) did not raise ValueError")
    else:
        raise AssertionError(how)
    x, y, _, _ = net()
    fn = uses(m, x, y)[use]
    if use == "sizeof":
        return str(fn())
    if use in ("repr", "str", "format"):
        r = outcome(fn)
        if r[0] == "ok":
            if not re.search(NOT_INIT, r[1]):
                raise AssertionError(f"{use}: {r[1]!r} does not say the model is not initialised")
            return r[1]
        return raises(RuntimeError, NOT_INIT, fn)
    return raises(RuntimeError, NOT_INIT, fn)


def uninit_uses() -> list:
    """The uses ``uninit_probe`` may be asked for (read in the parent from the public class)."""
    MLP = mlp_class()
    m = MLP.__new__(MLP)
    x, y, _, _ = net()
    return sorted(uses(m, x, y))


def reinit_probe(kind: str) -> str:
    B = bc()
    x, y, W, b = net()
    m = B.MLP(W, b)
    if kind == "same_dims":
        _, _, W2, b2 = net(seed=8)
        m.__init__(W2, b2)
        same(m.gradients(x, y), B.gradients(x, y, W2, b2), "gradients after __init__")
        same(m.weights, W2, "weights after __init__")
        return "rebuilt"
    if kind == "other_dims":
        x2, y2, W2, b2 = net((5, 2, 3), seed=8)
        held = m.weights[0]
        m.__init__(W2, b2)
        assert m.dims == [5, 2, 3], f"dims {m.dims}"
        same(m.gradients(x2, y2), B.gradients(x2, y2, W2, b2), "gradients after __init__")
        held[...] = 7.0  # a view of the old parameters stays valid memory
        gc.collect()
        assert float(held.sum()) == 7.0 * held.size
        same(m.gradients(x2, y2), B.gradients(x2, y2, W2, b2), "gradients after writing an old view")
        return "rebuilt"
    if kind == "other_dtype":
        W2 = [w.astype(np.float32) for w in W]
        b2 = [v.astype(np.float32) for v in b]
        m.__init__(W2, b2)
        assert m.dtype == np.float32, f"dtype {m.dtype}"
        x2, y2 = x.astype(np.float32), y.astype(np.float32)
        same(m.gradients(x2, y2), B.gradients(x2, y2, W2, b2), "gradients after __init__")
        return "rebuilt"
    if kind in ("bad_shapes", "bad_type", "bad_dtype", "empty"):
        args = {
            "bad_shapes": (W, [b[0], np.ones((9, 1)), b[2]]),
            "bad_type": (None, None),
            "bad_dtype": ([w.astype(complex) for w in W], b),
            "empty": ([], []),
        }[kind]
        before = m.gradients(x, y)
        raises((TypeError, ValueError), None, m.__init__, *args)
        # Either the old model still works, or every use says it is not initialised.
        r = outcome(lambda: m.gradients(x, y))
        if r[0] == "ok":
            same(r[1], before, "gradients after a failed __init__")
            return "kept the old model"
        return raises(RuntimeError, NOT_INIT, m.gradients, x, y)
    if kind == "new_then_init":
        m = B.MLP.__new__(B.MLP)
        m.__init__(W, b)
        same(m.gradients(x, y), B.gradients(x, y, W, b), "gradients of MLP.__new__ then __init__")
        return "made"
    if kind in ("copy", "deepcopy"):
        m2 = (copy.copy if kind == "copy" else copy.deepcopy)(m)
        same(m2.gradients(x, y), m.gradients(x, y), "the copy's gradients")
        for v in m2.weights + m2.biases:
            v[...] = 0.0
        same(m.gradients(x, y), B.gradients(x, y, W, b), "the original after zeroing the copy")
        return "independent copy"
    if kind == "view_outlives_model":
        v = m.weights[1]
        bview = m.biases[2]
        del m
        gc.collect()
        v[...] = 1.5
        bview[...] = -1.0
        assert float(v.sum()) == 1.5 * v.size and float(bview.sum()) == -bview.size
        return "views stayed valid"
    if kind == "init_twice_same_object":
        m.__init__(m.weights, m.biases)  # its own views as the new parameters
        same(m.gradients(x, y), B.gradients(x, y, W, b), "gradients after __init__(own views)")
        return "rebuilt"
    raise AssertionError(kind)


# ----------------------------------------------------------------------------- pickles


def crafted_pickles(module: str, name: str) -> dict:
    c = f"c{module}\n{name}\n".encode()
    return {
        "newobj": b"\x80\x02" + c + b")\x81.",
        "newobj_build_empty_dict": b"\x80\x02" + c + b")\x81}b.",
        "newobj_build_none": b"\x80\x02" + c + b")\x81Nb.",
        "newobj_build_tuple": b"\x80\x02" + c + b")\x81(N}tb.",
        "newobj_build_junk": b"\x80\x02" + c + b")\x81(K\x05X\x01\x00\x00\x00at.",
        "newobj_ex": b"\x80\x04" + c + b")}\x92.",
        "reconstructor": b"ccopyreg\n_reconstructor\n(" + c + b"c__builtin__\nobject\nNtR.",
        "reduce_noargs": c + b")R.",
    }


def crafted_pickle_probe(module: str, name: str, variant: str) -> dict:
    data = crafted_pickles(module, name)[variant]
    r = outcome(lambda: pickle.loads(data))
    if r[0] == "raised":
        e = r[1]
        if isinstance(e, SystemError):
            raise AssertionError(f"loads: SystemError: {e}")
        return {"loads": f"{type(e).__name__}: {e}"[:200]}
    obj = r[1]
    return {"loads": type(obj).__name__, "uses": use_all(obj, strict_mlp=uninit_model(obj))}


def uninit_model(obj: Any) -> bool:
    """A public MLP object that was never given parameters."""
    if not is_public_mlp(obj):
        return False
    return outcome(lambda: object.__getattribute__(obj, "dims"))[0] == "raised"


def check_loaded(obj: Any, W, b) -> str:
    """An object unpickled from a (damaged) MLP pickle: a model with the right parameters, or one
    that refuses every use; never a model with other parameters."""
    if is_public_mlp(obj):
        r = outcome(lambda: obj.weights)
        if r[0] == "ok":
            same(r[1], W, "weights of an unpickled model")
            same(obj.biases, b, "biases of an unpickled model")
            x, y, _, _ = net((W[0].shape[1], W[0].shape[0], W[1].shape[0]), dtype=W[0].dtype)
            same(obj.gradients(x, y), bc().gradients(x, y, W, b), "gradients of an unpickled model")
            return "model"
        use_all(obj, strict_mlp=True)
        return "uninitialised model"
    if ours(obj):
        use_all(obj, strict_mlp=False)
    return type(obj).__name__


def truncated_pickle_probe(protocol: int, dtype: str, mode: str) -> dict:
    """Every prefix of a pickled MLP (``mode`` 'stop': with a STOP opcode appended) loads into
    an exception or an object that is safe to use."""
    _, _, W, b = net((2, 3, 1), dtype=np.dtype(dtype))
    data = pickle.dumps(bc().MLP(W, b), protocol)
    seen: dict = {}
    for n in range(len(data)):
        chunk = data[:n] + (b"." if mode == "stop" else b"")
        r = outcome(lambda: pickle.loads(chunk))
        if r[0] == "raised":
            if isinstance(r[1], SystemError):
                raise AssertionError(f"prefix {n}: SystemError: {r[1]}")
            key = type(r[1]).__name__
        else:
            try:
                key = "loaded " + check_loaded(r[1], W, b)
            except AssertionError as e:
                raise AssertionError(f"prefix {n} of {len(data)}: {e}") from e
        seen[key] = seen.get(key, 0) + 1
    return {"bytes": len(data), "outcomes": seen}


class _Reduce:
    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return self.value


def bad_state_probe(variant: str) -> str:
    """Pickles that call the model's constructor or __setstate__ with damaged state."""
    MLP = mlp_class()
    _, _, W, b = net()
    good = pickle.dumps(MLP(*net((2, 3, 1))[2:]), 2)
    if variant.startswith("args_"):
        args = {
            "args_empty": ([], []),
            "args_none": (None, None),
            "args_count": ([W[0]], [b[0], b[1]]),
            "args_rank3": ([np.ones((2, 2, 2))], [np.ones(2)]),
            "args_strings": (("x",), ("y",)),
            "args_complex": ([w.astype(complex) for w in W], b),
            "args_one": (W,),
        }[variant]
        data = pickle.dumps(_Reduce((MLP, args)), 2)
    elif variant.startswith("state_"):
        state = {
            "state_none": None,
            "state_int": 5,
            "state_str": "weights",
            "state_lists": (W, b),
            "state_mismatch": ([W[0]], [b[1]]),
            "state_dict": {"weights": W, "biases": b},
            "state_junk_dict": {"_handle": 12345, "_impl": "x"},
        }[variant]
        # NEWOBJ of the class, then BUILD with the state (the state's own pickle, unframed).
        cls = f"c{MLP.__module__}\n{MLP.__qualname__}\n".encode()
        data = b"\x80\x02" + cls + b")\x81" + pickle.dumps(state, 2)[2:-1] + b"b."
    elif variant == "flip_each_byte":
        results = {}
        for i in range(len(good)):
            damaged = bytearray(good)
            damaged[i] ^= 0x5A
            r = outcome(lambda: pickle.loads(bytes(damaged)))
            if r[0] == "raised":
                if isinstance(r[1], SystemError):
                    raise AssertionError(f"byte {i}: SystemError {r[1]}")
                key = type(r[1]).__name__
            else:
                key = "loaded " + safe_use(r[1])
            results[key] = results.get(key, 0) + 1
        return json.dumps(results)
    else:
        raise AssertionError(variant)
    r = outcome(lambda: pickle.loads(data))
    if r[0] == "raised":
        clean_exception(r[1], (pickle.UnpicklingError, AttributeError, EOFError))
        return f"refused: {type(r[1]).__name__}: {r[1]}"
    obj = r[1]
    if variant in ("args_none", "args_count", "args_rank3", "args_strings", "args_complex",
                   "args_empty", "args_one"):
        raise AssertionError(f"loads built a model from bad arguments {variant}")
    return "loaded " + safe_use(obj)


def safe_use(obj: Any) -> str:
    """Use an object loaded from damaged data: a working model (any parameters: the bytes of the
    arrays may have been damaged) or clean refusals; never a crash."""
    if is_public_mlp(obj):
        r = outcome(lambda: obj.dims)
        if r[0] == "ok":
            dims = r[1]
            x, y, _, _ = net(tuple(dims), dtype=obj.dtype)
            g = outcome(lambda: obj.gradients(x, y))
            if g[0] == "ok":
                same(g[1], bc().gradients(x, y, obj.weights, obj.biases), "damaged model's gradients")
            else:
                clean_exception(g[1])
            return "model"
        use_all(obj, strict_mlp=True)
        return "uninitialised model"
    if ours(obj):
        use_all(obj, strict_mlp=False)
    return type(obj).__name__


def core_handle_probe(cls_name: str) -> dict:
    """A native class of ``backprop_core._core`` made without its constructor (``__new__``, or a
    crafted pickle) and handed to every native function, also by a pickle that calls them: clean
    exceptions, never a crash. (A pickle can call any importable function, so the private core
    is reachable from a crafted pickle.)"""
    core = bc()._core
    cls = getattr(core, cls_name)
    made = outcome(lambda: cls.__new__(cls))
    if made[0] == "raised":
        clean_exception(made[1])
        return {"__new__": f"refused: {type(made[1]).__name__}"}
    h = made[1]
    x, y, W, b = net()
    out = ([np.empty_like(w) for w in W], [np.empty_like(v) for v in b])
    tried = {}
    arg_sets = [(), (True,), (False,), (x,), (x, y), (x, y, 1.0), (x, y, 1.0, None), (x, y, 1.0, out),
                (W, b), (x, W, b)]  # fmt: skip
    for fname in sorted(dir(core)):
        f = getattr(core, fname)
        if fname.startswith("_") or isinstance(f, type) or not callable(f):
            continue
        for extra in arg_sets:
            r = outcome(lambda f=f, extra=extra: f(h, *extra))
            if r[0] == "raised":
                if isinstance(r[1], SystemError):
                    raise AssertionError(f"{fname}(<{cls_name} made by __new__>, ...): SystemError: {r[1]}")
                tried[f"{fname}/{len(extra)}"] = type(r[1]).__name__
            else:
                tried[f"{fname}/{len(extra)}"] = "returned"
        data = (f"\x80\x02cbackprop_core._core\n{fname}\ncbackprop_core._core\n{cls_name}\n)\x81\x85R."
                .encode("latin1"))
        r = outcome(lambda data=data: pickle.loads(data))
        if r[0] == "raised" and isinstance(r[1], SystemError):
            raise AssertionError(f"a pickle calling {fname} on a bare {cls_name}: SystemError {r[1]}")
        tried[f"pickle:{fname}"] = "returned" if r[0] == "ok" else type(r[1]).__name__
    MLP = mlp_class()
    if MLP is not cls:  # the public model holding the bare handle: every use refuses cleanly
        m = MLP.__new__(MLP)
        if outcome(lambda: setattr(m, "_handle", h))[0] == "ok":
            tried["MLP holding it"] = use_all(m, strict_mlp=False)
    for name, use in uses(h, x, y).items():
        r = outcome(use)
        if r[0] == "raised" and isinstance(r[1], (SystemError, AssertionError)):
            raise AssertionError(f"{name} of a bare {cls_name}: {type(r[1]).__name__}: {r[1]}")
    return tried


# ----------------------------------------------------------------------------- fork


def fork_probe(busy: str, timeout: float = 20.0) -> dict:
    """os.fork() while another thread is inside a large call; the child uses the same model and
    the free functions (small and large calls) and must exit 0 within ``timeout``."""
    B = bc()
    x, y, W, b = big_net()
    m = B.MLP(W, b)
    xs, ys = x[:, :5].copy(), y[:, :5].copy()
    want_small = B.gradients(xs, ys, W, b)
    want_big = B.gradients(x, y, W, b)
    want_model = m.gradients(xs, ys)
    tx = np.linspace(-3, 3, 200_000)
    beta, omega = np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, -0.5, 0.25, 2.0])
    want_toy = B.toy_gradients(tx, 0.3, beta, omega)
    calls = {
        "model_gradients": lambda: m.gradients(x, y),
        "model_forward": lambda: m.forward(x),
        "gradients": lambda: B.gradients(x, y, W, b),
        "toy_gradients": lambda: B.toy_gradients(tx, 0.3, beta, omega),
        "model_reinit": lambda: m.__init__(W, b),
    }
    stop = threading.Event()
    inside = threading.Event()

    def busy_loop():
        while not stop.is_set():
            inside.set()
            calls[busy]()

    t = threading.Thread(target=busy_loop)
    t.start()
    inside.wait()
    time.sleep(0.003)
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists
        code = 0
        # Stuck? On SIGUSR1 (from the parent, before it gives up) print the stack, even from
        # inside native code. (Not dump_traceback_later: its watchdog thread did not survive the
        # fork, and re-arming it waits for that thread forever.)
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        t0 = time.monotonic()
        try:
            for step, fn, want in (
                ("model.gradients (small)", lambda: m.gradients(xs, ys), want_model),
                ("gradients (small)", lambda: B.gradients(xs, ys, W, b), want_small),
                ("gradients (large, the pool)", lambda: B.gradients(x, y, W, b), want_big),
                ("toy_gradients (large)", lambda: B.toy_gradients(tx, 0.3, beta, omega), want_toy),
                ("model.gradients (large)", lambda: m.gradients(x, y), want_big),
            ):
                print(f"fork child: {step} at {time.monotonic() - t0:.2f} s", file=sys.stderr, flush=True)
                same(fn(), want, "child: " + step)
        except BaseException:
            traceback.print_exc()
            code = 3
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        time.sleep(0.02)
    stop.set()
    t.join()
    if status is None:
        os.kill(pid, signal.SIGUSR1)
        time.sleep(1.0)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError(f"the forked child hung (killed after {timeout} s)")
    if os.WIFSIGNALED(status):
        raise AssertionError(f"the forked child crashed with signal {os.WTERMSIG(status)}")
    if os.WEXITSTATUS(status) != 0:
        raise AssertionError(f"the forked child failed (exit {os.WEXITSTATUS(status)}; see stderr)")
    same(B.gradients(x, y, W, b), want_big, "parent after the fork")
    return {"child": "exit 0"}


# ----------------------------------------------------------------------------- unaligned memory


def unaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous, writeable copy of ``a`` one byte past an aligned address."""
    buf = bytearray(a.nbytes + 1)
    u = np.frombuffer(buf, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned and u.flags.c_contiguous and u.flags.writeable
    return u


UNALIGNED_FNS = ("toy_forward", "toy_backward", "toy_gradients", "forward", "backward", "gradients",
                 "MLP", "MLP.forward", "MLP.gradients", "MLP.gradients(out)")  # fmt: skip


def unaligned_probe(fn: str, dtype: str) -> str:
    """Misaligned (but C-contiguous, native) arrays, large enough for the vector and BLAS paths:
    the same bits as aligned copies, never a fault."""
    B = bc()
    dt = np.dtype(dtype)
    if fn.startswith("toy"):
        x = np.linspace(-3, 3, 20_001).astype(dt)
        y = np.cos(x).astype(dt)
        beta, omega = np.array([0.1, 0.2, 0.3, 0.4], dt), np.array([1.0, -0.5, 0.25, 2.0], dt)
        run = {"toy_forward": lambda x, y, bt, om: B.toy_forward(x, bt, om),
               "toy_backward": lambda x, y, bt, om: B.toy_backward(x, y, bt, om),
               "toy_gradients": lambda x, y, bt, om: B.toy_gradients(x, y, bt, om)}[fn]
        args = (x, y, beta, omega)
        same(run(*[unaligned(a) for a in args]), run(*args), f"{fn} on unaligned arrays")
        return "same bits"
    x, y, W, b = net(BIG, 1500, dt, 6)
    if fn == "forward":
        got, want = B.forward(unaligned(x), [unaligned(w) for w in W], [unaligned(v) for v in b]), B.forward(x, W, b)
    elif fn == "gradients":
        got = B.gradients(unaligned(x), unaligned(y), [unaligned(w) for w in W], [unaligned(v) for v in b])
        want = B.gradients(x, y, W, b)
    elif fn == "backward":
        _, f, h = B.forward(x, W, b)
        got = B.backward([unaligned(w) for w in W], [unaligned(v) for v in b], [unaligned(a) for a in f],
                         [unaligned(a) for a in h], unaligned(y))
        want = B.backward(W, b, f, h, y)
    elif fn == "MLP":
        m = B.MLP([unaligned(w) for w in W], [unaligned(v) for v in b])
        got, want = m.gradients(x, y), B.gradients(x, y, W, b)
    elif fn == "MLP.forward":
        got, want = B.MLP(W, b).forward(unaligned(x)), B.forward(x, W, b)
    elif fn == "MLP.gradients":
        got, want = B.MLP(W, b).gradients(unaligned(x), unaligned(y)), B.gradients(x, y, W, b)
    else:  # the core writes only aligned memory: misaligned out= arrays are refused, by name
        out = ([unaligned(np.zeros_like(w)) for w in W], [unaligned(np.zeros_like(v)) for v in b])
        try:
            B.MLP(W, b).gradients(x, y, out=out)
        except TypeError as e:
            if "out[0][0]" in str(e) and "aligned" in str(e):
                return "refused"
            raise
        raise AssertionError("misaligned out= arrays were written")
    same(got, want, f"{fn} on unaligned arrays")
    return "same bits"


# ----------------------------------------------------------------------------- thread settings


def threads_fn(B: Any) -> Any:
    for owner, name in ((B, "threads"), (B._core, "threads"), (B._core, "num_threads")):
        fn = getattr(owner, name, None)
        if callable(fn):
            return fn
    return None


def env_probe() -> dict:
    """Import under the environment the parent set; report warnings, threads and digests."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import backprop_core as B
    fn = threads_fn(B)
    x, y, W, b = big_net(N=3000)
    tx = np.linspace(-3, 3, 100_001)
    beta, omega = np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, -0.5, 0.25, 2.0])
    results = [
        B.gradients(x, y, W, b),
        B.forward(x, W, b),
        B.backward(W, b, *B.forward(x, W, b)[1:], y),
        B.MLP(W, b).gradients(x, y),
        B.toy_gradients(tx, 0.3, beta, omega),
        B.toy_backward(tx, 0.3, beta, omega),
    ]
    return {
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "threads": fn() if fn else None,
        "digest": digest(results),
    }


# ----------------------------------------------------------------------------- huge shapes


def many_layers_probe(layers: int) -> str:
    """A deep, narrow network (no recursion may follow the depth): the reference's exact bits."""
    B = bc()
    W = [np.ones((1, 1)) for _ in range(layers)]
    b = [np.zeros((1, 1)) for _ in range(layers)]
    x, y = np.array([[1.0, 2.0, -1.0]]), np.array([[0.0, 1.0, 0.0]])
    from backprop_core import reference as ref

    same(B.gradients(x, y, W, b), ref.gradients(x, y, W, b), "gradients")
    same(B.forward(x, W, b), ref.forward(x, W, b), "forward")
    same(B.MLP(W, b).gradients(x, y), ref.gradients(x, y, W, b), "model")
    return "reference bits"


def huge_probe(kind: str) -> str:
    """Shapes whose results cannot be allocated: MemoryError or ValueError, never a crash or hang.
    Cases whose answer is empty may also just return it (checked)."""
    B = bc()
    bt = np.broadcast_to
    beta, omega = np.ones(4), np.ones(4)
    huge_x = bt(np.float64(0.5), (2**59,))
    small_W = [np.ones((4, 3)), np.ones((2, 4))]
    small_b = [np.ones((4, 1)), np.ones((2, 1))]
    wide = bt(np.ones((3, 1)), (3, 2**58))
    cases = {
        "forward_broadcast_input": lambda: B.forward(wide, small_W, small_b),
        "gradients_broadcast_input": lambda: B.gradients(wide, 0.0, small_W, small_b),
        "model_broadcast_input": lambda: B.MLP(small_W, small_b).gradients(wide, 0.0),
        "model_forward_broadcast_input": lambda: B.MLP(small_W, small_b).forward(wide),
        "toy_forward_broadcast_x": lambda: B.toy_forward(huge_x, beta, omega),
        "toy_backward_broadcast_x": lambda: B.toy_backward(huge_x, 0.0, beta, omega),
        "toy_gradients_broadcast_x": lambda: B.toy_gradients(huge_x, 0.0, beta, omega),
        "toy_forward_no_activations": lambda: B.toy_forward(huge_x, beta[:1], omega[:1], activations=()),
        "forward_zero_rows_huge_N": lambda: B.forward(
            np.empty((0, 2**59)), [np.ones((5, 0)), np.ones((2, 5))], [np.ones((5, 1)), np.ones((2, 1))]),
        "gradients_zero_rows_huge_N": lambda: B.gradients(
            np.empty((0, 2**59)), 0.0, [np.ones((5, 0)), np.ones((2, 5))], [np.ones((5, 1)), np.ones((2, 1))]),
        # f_0 would have 2**22 * 2**41 = 2**63 entries: the count itself overflows int64.
        "overflowing_output_size": lambda: B.forward(
            np.empty((0, 2**41)), [np.empty((2**22, 0)), bt(np.ones((1, 1)), (2, 2**22))],
            [bt(np.zeros((1, 1)), (2**22, 1)), np.ones((2, 1))]),
        "overflowing_gradients_size": lambda: B.gradients(
            np.empty((0, 2**41)), 0.0, [np.empty((2**22, 0)), bt(np.ones((1, 1)), (2, 2**22))],
            [bt(np.zeros((1, 1)), (2**22, 1)), np.ones((2, 1))]),
        "weights_broadcast_huge": lambda: B.forward(
            bt(np.ones((1, 1)), (2**36, 1)), [bt(np.ones((1, 1)), (2**20, 2**36)), np.ones((1, 2**20))],
            [np.zeros((2**20, 1)), np.ones((1, 1))]),
        "model_weights_broadcast_huge": lambda: B.MLP(
            [bt(np.ones((1, 1)), (2**20, 2**36))], [bt(np.zeros((1, 1)), (2**20, 1))]),
        "bias_broadcast_huge": lambda: B.gradients(
            np.ones((1, 2)), 0.0, [bt(np.ones((1, 1)), (2**59, 1)), bt(np.ones((1, 1)), (1, 2**59))],
            [bt(np.zeros((1, 1)), (2**59, 1)), np.ones((1, 1))]),
        "y_broadcast_mismatch": lambda: B.gradients(
            np.ones((3, 6)), bt(np.float64(0.0), (2, 2**59)), small_W, small_b),
        "backward_huge_f": lambda: B.backward(
            small_W, small_b, [bt(np.ones((4, 1)), (4, 2**57)), bt(np.ones((2, 1)), (2, 2**57))],
            [bt(np.ones((3, 1)), (3, 2**57)), bt(np.ones((4, 1)), (4, 2**57))], 0.0),
    }
    empty_ok = {
        "huge_D0_zero_width_forward": lambda: B.forward(
            np.empty((2**59, 0)), [np.empty((0, 2**59)), np.ones((2, 0))], [np.ones((0, 1)), np.ones((2, 1))]),
        "huge_D0_zero_width_gradients": lambda: B.gradients(
            np.empty((2**59, 0)), 0.0, [np.empty((0, 2**59)), np.ones((2, 0))], [np.ones((0, 1)), np.ones((2, 1))]),
        "huge_D0_zero_width_model": lambda: B.MLP(
            [np.empty((0, 2**59)), np.ones((2, 0))], [np.ones((0, 1)), np.ones((2, 1))]).gradients(
            np.empty((2**59, 0)), 0.0),
    }
    if kind in cases:
        return raises((MemoryError, ValueError), None, cases[kind])
    r = outcome(empty_ok[kind])
    if r[0] == "raised":
        clean_exception(r[1])
        if not isinstance(r[1], (MemoryError, ValueError)):
            raise AssertionError(f"{type(r[1]).__name__}: {r[1]}")
        return f"refused: {r[1]!r}"
    res = r[1]
    if "forward" in kind:
        assert res[0].shape == (2, 0) and res[1][0].shape == (0, 0), summary(res)
    else:
        assert float(res[0]) == 0.0 and res[1][0].shape == (0, 2**59) and res[1][1].shape == (2, 0), summary(res)
    return "empty answer"


HUGE_KINDS = (
    "forward_broadcast_input", "gradients_broadcast_input", "model_broadcast_input",
    "model_forward_broadcast_input", "toy_forward_broadcast_x", "toy_backward_broadcast_x",
    "toy_gradients_broadcast_x", "toy_forward_no_activations", "forward_zero_rows_huge_N",
    "gradients_zero_rows_huge_N", "overflowing_output_size", "overflowing_gradients_size",
    "weights_broadcast_huge", "model_weights_broadcast_huge", "bias_broadcast_huge",
    "y_broadcast_mismatch", "backward_huge_f", "huge_D0_zero_width_forward",
    "huge_D0_zero_width_gradients", "huge_D0_zero_width_model",
)  # fmt: skip


# ----------------------------------------------------------------------------- the driver


def main() -> None:
    faulthandler.enable()
    probes = json.loads(sys.stdin.read())
    mod = sys.modules[__name__]
    for pid, func, kwargs, timeout in probes:
        print("START " + json.dumps(pid), flush=True)
        faulthandler.dump_traceback_later(timeout, exit=True)
        try:
            value = getattr(mod, func)(**kwargs)
            res = {"status": "ok", "value": value}
        except BaseException as e:
            res = {
                "status": "raised",
                "type": type(e).__name__,
                "message": str(e)[:3000],
                "traceback": traceback.format_exc()[-4000:],
            }
        faulthandler.cancel_dump_traceback_later()
        try:
            line = json.dumps(res, default=repr)
        except (TypeError, ValueError):
            line = json.dumps({"status": "ok", "value": repr(res.get("value"))})
        print("DONE " + json.dumps(pid) + " " + line, flush=True)
