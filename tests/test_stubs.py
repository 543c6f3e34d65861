"""The type stubs of the compiled module, backprop_core/_core.pyi, match the module.

Regenerate them with scripts/generate_stubs.sh after changing the bindings. Two checks:

* mypy's stubtest: every name of the module is in the stubs and vice versa, with the right kind
  (the one report it always makes on a pybind11 class, its metaclass, is expected);
* stubtest cannot read the signatures of pybind11 functions (they have no ``__text_signature__``),
  so the parameter names are compared here, stub against the signature lines pybind11 writes into
  each ``__doc__``; and those must carry real names, never pybind11's ``arg0`` placeholders (what
  a binding without ``py::arg`` gets).
"""

from __future__ import annotations

import ast
import os
import pydoc
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import backprop_core._core as core

# Passed to stubtest only if the file exists; none is needed so far.
ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")

_PLACEHOLDER = re.compile(r"\barg\d+\b")


def classes() -> set[str]:
    """The pybind11 classes of the module."""
    return {
        name
        for name, obj in vars(core).items()
        if isinstance(obj, type) and type(obj).__name__ == "pybind11_type"
    }


def test_stubtest_finds_no_mismatch(tmp_path: Path) -> None:
    # From an empty directory with an empty config, so only the installed package (with its
    # py.typed and _core.pyi) is seen, and no project or user mypy configuration applies.
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    cmd = [sys.executable, "-m", "mypy.stubtest", "--concise", core.__name__]
    cmd += ["--mypy-config-file", str(config)]
    if ALLOWLIST.exists():
        cmd += ["--allowlist", str(ALLOWLIST)]
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    errors = set(done.stdout.splitlines())
    # A pybind11 class's metaclass (pybind11_builtins.pybind11_type) cannot be written in a stub:
    # that one report per class is expected; every other report is a mismatch.
    expected = {f"{core.__name__}.{c} is inconsistent, metaclass differs" for c in classes()}
    unexpected = sorted(errors - expected)
    assert not unexpected, "stubtest: " + "\n".join(unexpected)
    assert done.returncode == 0 or errors, f"stubtest failed:\n{done.stdout}\n{done.stderr}"


# ----------------------------------------------------------------------------- signatures


def _split_params(params: str) -> list[str]:
    """Split a signature's parameter list at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(params):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    parts.append(params[start:])
    return [p.strip() for p in parts if p.strip()]


def _param_name(param: str) -> str:
    return param.split(":")[0].split("=")[0].strip().lstrip("*")


def doc_signatures(name: str, doc: str | None) -> list[list[str]]:
    """The parameter names of each ``name(...) -> ...`` line pybind11 wrote into ``doc``.

    One line for a plain function; one numbered line per overload (``1. name(...) -> ...``).
    The ``/`` and ``*`` markers are dropped.
    """
    pattern = re.compile(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) -> ", re.MULTILINE)
    signatures = []
    for m in pattern.finditer(doc or ""):
        names = [_param_name(p) for p in _split_params(m.group(1))]
        signatures.append([n for n in names if n not in ("", "/")])
    return signatures


def runtime_callables() -> Iterator[tuple[str, str, object]]:
    """``(qualified name, name, object)`` for each public function of ``_core``, and for each
    public method (and ``__init__``/``__call__``) of its classes."""
    for name, obj in vars(core).items():
        if name.startswith("_"):
            continue
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                public = not attr.startswith("_") or attr in ("__init__", "__call__")
                if public and callable(member):
                    yield f"{name}.{attr}", attr, member
        elif callable(obj):
            yield name, name, obj


def _stub_params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    names = [p.arg for p in [*a.posonlyargs, *a.args]]
    names += [a.vararg.arg] if a.vararg else []
    names += [p.arg for p in a.kwonlyargs]
    names += [a.kwarg.arg] if a.kwarg else []
    return names


def stub_signatures() -> dict[str, list[list[str]]]:
    """Qualified name -> parameter names of each of its definitions (several when overloaded)."""
    stub = Path(core.__file__).with_name(core.__name__.rpartition(".")[2] + ".pyi")
    assert stub.exists(), f"no stubs installed beside the compiled module: {stub}"
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    found: dict[str, list[list[str]]] = {}

    def collect(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef):
                found.setdefault(prefix + node.name, []).append(_stub_params(node))
            elif isinstance(node, ast.ClassDef) and not prefix:
                collect(node.body, node.name + ".")

    collect(tree.body, "")
    return found


def test_runtime_signatures_use_real_argument_names() -> None:
    checked = 0
    for qualname, name, obj in runtime_callables():
        signatures = doc_signatures(name, obj.__doc__)
        assert signatures, f"_core.{qualname}: no signature line in its __doc__: {obj.__doc__!r}"
        for params in signatures:
            bad = [p for p in params if _PLACEHOLDER.fullmatch(p)]
            assert not bad, f"_core.{qualname}{tuple(params)}: unnamed arguments {bad}; add py::arg"
        checked += 1
    assert checked, "no functions found in backprop_core._core"


def test_help_shows_no_placeholder_names() -> None:
    text = pydoc.plain(pydoc.render_doc(core))
    assert not _PLACEHOLDER.search(text), [
        line for line in text.splitlines() if _PLACEHOLDER.search(line)
    ]


def test_stub_parameter_names_match_the_module() -> None:
    stubs = stub_signatures()
    for qualname, name, obj in runtime_callables():
        runtime = doc_signatures(name, obj.__doc__)
        assert qualname in stubs, f"_core.{qualname}: not in the stubs; regenerate them"
        assert sorted(stubs[qualname]) == sorted(runtime), (
            f"_core.{qualname}: stub parameters {stubs[qualname]} != runtime {runtime}; "
            "run scripts/generate_stubs.sh"
        )


def test_signature_parsing() -> None:
    doc = (
        "f(*args, **kwargs)\nOverloaded function.\n\n"
        "1. f(self: m.C, a: dict[str, int] = {'x,y': 1}, /, *, b: int = 2) -> None\n"
        "2. f(arg0: float) -> tuple[int, int]\n"
    )
    assert doc_signatures("f", doc) == [["self", "a", "b"], ["arg0"]]
