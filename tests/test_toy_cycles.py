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

def _compiles() -> bool:
    """Whether the compiler the script would take builds a program here (a wheel's test run sets
    CXX=/bin/false and keeps compilers off PATH)."""
    name = next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++")
                 if c and shutil.which(c)), None)  # fmt: skip
    if name is None:
        return False
    try:
        return subprocess.run([name, "-x", "c++", "-", "-o", os.devnull], input="int main(){}",
                              capture_output=True, text=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


pytestmark = pytest.mark.skipif(
    ctypes.util.find_library("mvec") is None or not _compiles(),
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
    assert "loss and gradients equal the installed package's" in text
    rows = [line.strip("| ").split(" | ") for line in text.splitlines() if line[:3] in ("| 1", "| 2")]
    assert rows and rows[0][0] == "1", text
    for _threads, chain_ns, chain_cycles, alone_ns, alone_cycles, ratio in rows:
        # the chain makes the same five calls a sample and more besides
        assert float(chain_ns) > float(alone_ns) > 0 and float(chain_cycles) > float(alone_cycles)
        assert ratio.endswith("x") and float(ratio[:-1]) > 1, ratio
