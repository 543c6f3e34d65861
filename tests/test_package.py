"""The installed package's shape: no benchmark code in it (the benchmark lives in the repository's
benchmarks/), and no two modules importing each other, directly or through others."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import backprop_core
import pytest

PACKAGE = "backprop_core"
ROOT = Path(backprop_core.__file__).resolve().parent
MODULES = {  # module name (relative to the package; "__init__" for the package) -> source
    str(p.relative_to(ROOT).with_suffix("")).replace("/", "."): p for p in ROOT.rglob("*.py")
}


def _target(name: str) -> str | None:
    """The package's module that importing ``name`` (relative to the package) loads, if any."""
    if name in MODULES:
        return name
    if not name:
        return "__init__"
    return None


def imports_of(module: str) -> set[str]:
    """The package's modules that ``module`` imports anywhere (top level or inside a function:
    a lazy import closes a cycle as surely, only later)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    here = module.split(".")[:-1]  # the subpackage holding the module
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.add(_target(alias.name[len(PACKAGE) + 1 :]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(
                    here[: len(here) - node.level + 1] + ([node.module] if node.module else [])
                )
            elif node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
                base = (node.module or "")[len(PACKAGE) + 1 :]
            else:
                continue
            for alias in node.names:  # "from . import x" imports the module x when there is one
                sub = f"{base}.{alias.name}" if base else alias.name
                found.add(_target(sub) or _target(base))
    found.discard(None)
    found.discard(module)
    return found  # type: ignore[return-value]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_modules_are_found() -> None:
    # The graph below is only as good as this list: the package's own modules, read from disk.
    assert {
        "__init__",
        "__main__",
        "_walkthrough",
        "_api",
        "gradcheck",
        "reference",
    } <= MODULES.keys()


def test_no_module_imports_another_that_imports_it_back() -> None:
    # "__init__" is left out: Python imports a package before any of its modules, so every
    # module "imports" it; a cycle through it would show as one between the modules it imports.
    graph = {m: imports_of(m) - {"__init__"} for m in MODULES if m != "__init__"}
    assert "_walkthrough" in graph["__main__"]  # the command line runs the walkthrough ...
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_find_cycle_finds_cycles(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_imports_of_reads_lazy_and_relative_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walker sees the import that used to close the cycle: a lazy ``from .__main__ import``."""
    src = tmp_path / "m.py"
    src.write_text(
        "from . import _api, reference\n"
        "from .examples import mlp_example\n"
        "import backprop_core.gradcheck\n"
        "import numpy\n"
        "def main():\n"
        "    from .__main__ import main as cli\n"
    )
    monkeypatch.setitem(MODULES, "m", src)
    assert imports_of("m") == {"_api", "reference", "examples", "gradcheck", "__main__"}


def test_the_package_holds_no_benchmark() -> None:
    installed = [str(f) for f in importlib.metadata.files(PACKAGE) or []]
    assert any(f.endswith(f"{PACKAGE}/_walkthrough.py") for f in installed), installed
    bench = [f for f in installed if "bench" in f.lower()]
    assert bench == [], f"benchmark files installed with the package: {bench}"
    assert not [m for m in MODULES if "bench" in m.lower()]
    # Nor does any module carry the benchmark's machinery: its timers and its contestants.
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
        }
        imported |= {
            (n.module or "").split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and not n.level
        }
        assert not imported & {"timeit", "torch", "jax"}, (module, imported)
