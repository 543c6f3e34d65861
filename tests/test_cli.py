"""The command line: the walkthrough as a table and as JSON, the help of every command, the exit
code of plot when matplotlib is missing, and the old bench command pointing to benchmarks/.
(The benchmark script itself: tests/test_bench.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_the_default_command_is_the_walkthroughs_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert _walkthrough.run(as_json=True) == 0
    direct = capsys.readouterr().out
    assert main(["--json"]) == 0
    assert capsys.readouterr().out == direct
    assert json.loads(direct)["ok"] is True


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


@pytest.mark.parametrize(
    "args",
    [["frobnicate"], ["--bogus"], ["plot"], ["plot", "--out", "x", "--extra"], ["--json", "plot", "--out", "x"]],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert "usage:" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bench (moved)


@pytest.mark.parametrize(
    "args",
    [["bench"], ["bench", "--help"], ["bench", "--quick", "--repeat", "3", "--", "-x", "--json"]],
)
def test_bench_says_where_the_benchmark_lives_and_exits_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "not part of the installed package" in err
    assert "python benchmarks/bench.py" in err and "benchmarks/README.md" in err


def test_bench_in_a_process_exits_2_and_names_the_script() -> None:
    r = run_cli("bench", "--help")
    assert r.returncode == 2
    assert r.stdout == ""
    assert "python benchmarks/bench.py" in r.stderr


# ----------------------------------------------------------------------------- plot without matplotlib


def test_plot_without_matplotlib_exits_2_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now fails
    assert main(["plot", "--out", str(tmp_path / "pictures")]) == 2
    assert 'pip install "backprop_core[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "pictures").exists()

