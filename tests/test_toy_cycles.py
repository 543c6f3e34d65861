"""benchmarks/toy_cycles.py: it builds its timing program from the core's headers, stops unless
the program's loss and gradients equal the installed package's bit for bit, and reports the
fused toy chain against its transcendentals alone (issue 14)."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "toy_cycles.py"

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX") or "c++", "g++", "clang++"))
    or ctypes.util.find_library("mvec") is None,
    reason="needs a C++ compiler and glibc's libmvec",
)


def test_the_chain_against_its_transcendentals_alone(tmp_path: Path) -> None:
    out = tmp_path / "cycles.md"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--repeat", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert text == r.stdout
    assert "loss and gradients equal the installed package's, bit for bit" in text
    rows = [line.strip("| ").split(" | ") for line in text.splitlines() if line[:3] in ("| 1", "| 2")]
    assert rows and rows[0][0] == "1", text
    for _threads, chain_ns, chain_cycles, alone_ns, alone_cycles, ratio in rows:
        # the chain makes the same five calls a sample and more besides
        assert float(chain_ns) > float(alone_ns) > 0 and float(chain_cycles) > float(alone_cycles)
        assert ratio.endswith("x") and float(ratio[:-1]) > 1, ratio
