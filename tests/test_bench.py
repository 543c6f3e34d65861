"""The benchmark script, benchmarks/bench.py: it lives in the repository (the package ships no
benchmark; tests/test_package.py checks that), runs from a checkout, checks every contestant and
stops what it started."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def run_bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout
    )


def load_bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/bench.py as a module, by its path (it belongs to no package)."""
    spec = importlib.util.spec_from_file_location("backprop_core_bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_help_names_the_script() -> None:
    r = run_bench("--help", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python benchmarks/bench.py")
    assert "--workloads" in r.stdout and "--busy" in r.stdout


@pytest.mark.parametrize("args", [["--workloads", "toy9"], ["--repeat", "0"], ["--bogus"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    r = run_bench(*args, timeout=60)
    assert r.returncode == 2
    assert "usage: python benchmarks/bench.py" in r.stderr


def test_the_default_output_is_results_md_beside_the_script(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = load_bench(monkeypatch)
    assert bench.DEFAULT_OUT == BENCH.with_name("RESULTS.md")
    assert bench.DEFAULT_OUT.is_file()  # the committed results of the last run


def test_the_torch_compile_probe_loads_the_script_in_its_subprocess(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The probe runs one of the script's _torch_compile_probe_* calls in a fresh interpreter,
    which must find the script by its path (no package holds it). A stand-in torch that fails on
    import shows the subprocess got as far as each probe itself."""
    bench = load_bench(monkeypatch)
    (tmp_path / "torch.py").write_text("raise ImportError('stand-in torch for the probe test')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    probes = ("_torch_compile_probe_toy(10)", "_torch_compile_probe_mlp([2, 3], 4, 'float64', 0.5)")
    for call in probes:
        why = bench.probe_torch_compile(call, timeout=120)
        assert why == "failed: ImportError: stand-in torch for the probe test"


def test_a_tiny_real_benchmark_on_a_busy_machine(tmp_path: Path) -> None:
    """The real benchmark, cut to one short round of toy1 with one busy-looping process beside it:
    it checks every contestant's gradients, reports the load, and stops its busy process."""
    out = tmp_path / "r.md"
    r = run_bench(
        "--workloads", "toy1", "--repeat", "1", "--block-ms", "2",
        "--no-torch", "--no-jax", "--busy", "1", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert "**Loaded machine**: 1 busy-looping process ran beside" in text
    assert "python benchmarks/bench.py --workloads toy1" in text  # the command, as run
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
