"""Every ```python block of docs/tutorial.md and README.md runs as written.

The blocks of one file run in order in one shared namespace, as a reader pasting them into one
session would run them. A failure names the file, the block and the line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["docs/tutorial.md", "README.md"]

# A fence opening with ```python at the start of a line, up to the next closing ``` line.
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line of the block's first code line, code)`` for each ```python block, in order."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_python_blocks_are_found() -> None:
    text = "intro\n```python\na = 1\n```\n```sh\nls\n```\n```python\nb = a\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (9, "b = a\n")]


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_run(doc: str) -> None:
    path = ROOT / doc
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert blocks, f"{doc}: no ```python blocks found"
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, (line, code) in enumerate(blocks, start=1):
        # Pad with blank lines so the traceback's line numbers are the file's own.
        compiled = compile("\n" * (line - 1) + code, str(path), "exec")
        try:
            exec(compiled, namespace)
        except Exception as e:
            pytest.fail(f"{doc}: python block {number} (line {line}) raised {e!r}")
