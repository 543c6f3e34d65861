"""The command line: the walkthrough as a table and as JSON, the help of every command, and the
exit codes of plot and bench when a part is missing."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from backprop_core import _walkthrough
from backprop_core.__main__ import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backprop_core", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


# The row names of the walkthrough, in order: notebook 7.1's values and derivatives, notebook
# 7.2's output and loss, then each layer's weights and biases.
TOY_ROWS = [
    "f0", "h1", "f1", "h2", "f2", "h3", "f3", "loss",
    "dl/df3", "dl/dh3", "dl/df2", "dl/dh2", "dl/df1", "dl/dh1", "dl/df0",
    "dl/dbeta3", "dl/domega3", "dl/dbeta2", "dl/domega2",
    "dl/dbeta1", "dl/domega1", "dl/dbeta0", "dl/domega0",
]  # fmt: skip
MLP_ROWS = ["output", "loss"]
LAYER_ROWS = [f"layer {k} {p}" for k in range(6) for p in ("weights", "biases")]


# ----------------------------------------------------------------------------- the walkthrough


def test_default_run_prints_the_table_and_agrees() -> None:
    r = run_cli()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("Notebook 7.1: the toy chain")
    assert "Notebook 7.2: the ReLU MLP" in r.stdout
    assert r.stdout.rstrip().endswith("ALL AGREE")
    assert r.stderr == ""


def test_json_has_every_row_and_ok() -> None:
    r = run_cli("--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    data = json.loads(r.stdout)  # stdout is the JSON document and nothing else
    assert data["ok"] is True
    assert data["failures"] == 0
    rows = data["rows"]
    assert [row["name"] for row in rows] == TOY_ROWS + MLP_ROWS + LAYER_ROWS
    required = {"section", "name", "printed", "native", "reference", "finite_difference", "verdict", "ok"}
    for row in rows:
        assert required <= row.keys(), row["name"]
        assert row["verdict"] == "ok" and row["ok"] is True, row["name"]

    by_name = {(row["section"], row["name"]): row for row in rows}
    f3 = by_name["notebook 7.1", "f3"]
    assert f3["printed"] == 2.372 and round(f3["native"], 3) == 2.372
    assert f3["finite_difference"] is None  # a forward value: nothing to differentiate
    dw0 = by_name["notebook 7.1", "dl/domega0"]
    assert dw0["printed"] == 5.246
    assert dw0["finite_difference"] == pytest.approx(dw0["native"], rel=1e-6)
    assert by_name["notebook 7.2", "loss"]["printed"] == 478.118

    # The layer rows carry the derivatives themselves, with the table's summaries.
    w1 = by_name["notebook 7.2 gradients", "layer 1 weights"]
    assert len(w1["native"]) == 6 and all(len(r) == 6 for r in w1["native"])
    assert w1["printed"] is None
    largest = max(abs(v) for r in w1["native"] for v in r)
    assert w1["largest_abs_derivative"] == pytest.approx(largest)


def test_a_disagreement_fails_table_and_json_alike(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pretend the notebook printed another f0: that row, and only it, must disagree.
    monkeypatch.setitem(_walkthrough.TOY_NOTEBOOK, "f0", 1.231)

    assert main([]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith("1 DISAGREE")
    assert "DISAGREE" in next(line for line in out.splitlines() if line.strip().startswith("f0"))

    assert main(["--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["failures"] == 1
    bad = [row["name"] for row in data["rows"] if not row["ok"]]
    assert bad == ["f0"]
    assert data["rows"][0]["verdict"] == "DISAGREE"


def test_walkthrough_main_is_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert _walkthrough.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


# ----------------------------------------------------------------------------- help and usage


def test_help_lists_the_commands() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("--json", "plot", "bench", "ALL AGREE"):
        assert word in r.stdout


def test_plot_help() -> None:
    r = run_cli("plot", "--help")
    assert r.returncode == 0
    assert "--out DIR" in r.stdout and "PNG" in r.stdout and "SVG" in r.stdout


def test_bench_help_is_the_benchmarks_or_says_it_is_missing() -> None:
    r = run_cli("bench", "--help")
    try:
        importlib.import_module("backprop_core._bench")
        available = True
    except ImportError:
        available = False
    if available:
        assert r.returncode == 0, r.stderr
        assert "usage" in r.stdout.lower()
    else:
        assert r.returncode == 2
        assert "bench: not available" in r.stderr
        assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [["frobnicate"], ["--bogus"], ["plot"], ["plot", "--out", "x", "--extra"], ["--json", "plot", "--out", "x"]],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert "usage:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bench


def fake_bench(monkeypatch: pytest.MonkeyPatch, result: object) -> list[list[str]]:
    """Install a stand-in backprop_core._bench whose main records its argv."""
    calls: list[list[str]] = []

    def bench_main(argv: list[str]) -> object:
        calls.append(argv)
        if isinstance(result, BaseException):
            raise result
        return result

    module = types.ModuleType("backprop_core._bench")
    module.main = bench_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "backprop_core._bench", module)
    return calls


def test_bench_passes_every_argument_through_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_bench(monkeypatch, 7)
    args = ["--quick", "--repeat", "3", "--json", "--", "-x", "--help"]
    assert main(["bench", *args]) == 7
    assert calls == [args]


@pytest.mark.parametrize(("result", "code"), [(None, 0), (0, 0), (SystemExit(0), 0), (SystemExit(3), 3)])
def test_bench_exit_code_is_the_benchmarks(
    monkeypatch: pytest.MonkeyPatch, result: object, code: int
) -> None:
    fake_bench(monkeypatch, result)
    assert main(["bench"]) == code


def test_bench_missing_exits_2_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "backprop_core._bench", None)  # import fails: no such module
    assert main(["bench", "--help"]) == 2
    err = capsys.readouterr().err
    assert "bench: not available" in err and "backprop_core._bench" in err


def test_bench_whose_dependency_is_missing_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def import_module(name: str, package: str | None = None) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'progressbar_lib'", name="progressbar_lib")

    monkeypatch.setattr(importlib, "import_module", import_module)
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "bench: not available" in err and "progressbar_lib" in err


# ----------------------------------------------------------------------------- plot without matplotlib


def test_plot_without_matplotlib_exits_2_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now fails
    assert main(["plot", "--out", str(tmp_path / "pictures")]) == 2
    assert 'pip install "backprop_core[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "pictures").exists()



def test_a_tiny_real_benchmark_on_a_busy_machine(tmp_path: Path) -> None:
    """The real benchmark, cut to one short round of toy1 with one busy-looping process beside it:
    it checks every contestant's gradients, reports the load, and stops its busy process."""
    pytest.importorskip("backprop_core._bench")
    out = tmp_path / "r.md"
    r = run_cli(
        "bench", "--workloads", "toy1", "--repeat", "1", "--block-ms", "2",
        "--no-torch", "--no-jax", "--busy", "1", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert "**Loaded machine**: 1 busy-looping process ran beside" in text
    rows = [line for line in text.splitlines() if line.startswith("| backprop_core.")]
    assert rows and all("| ok, max err" in line for line in rows), rows
    left = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"while True: pass" in cmdline.read_bytes():
                left.append(cmdline.parent.name)
        except OSError:  # a process that ended meanwhile
            pass
    assert not left, f"busy-looping processes outlived the benchmark: {left}"
