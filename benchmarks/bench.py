"""Time backprop_core against the notebook-style numpy code, PyTorch and JAX.

    python benchmarks/bench.py            # a few minutes; writes benchmarks/RESULTS.md
    python benchmarks/bench.py --quick    # about a minute
    python benchmarks/bench.py --help

Every contestant computes the loss's gradients with respect to all parameters. Each one's
gradients are first checked against :mod:`backprop_core.reference` (run in float64 on the same
data); one that disagrees is reported as WRONG and not timed. The survivors are timed in
interleaved rounds, one block per contestant per round, so machine noise hits every contestant
alike; the table gives the median per-call time over the blocks, with min and max. See
benchmarks/README.md.

The benchmark lives in the repository, not in the installed package (as numpy's and scipy's do):
it times whatever backprop_core the running interpreter imports. It is a benchmark, not a test:
it asserts nothing about times. It exits 1 only when a backprop_core row itself is WRONG or
raises.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backprop_core as bc
import numpy as np
from backprop_core import reference
from backprop_core._chain import Chain  # (bc.Chain once __init__ exports it)
from backprop_core.examples import mlp_example, toy_example

WORKLOADS = ("toy1", "mlp1", "toybatch", "mlpbatch32", "mlpbatch64")
DEFAULT_OUT = Path(__file__).resolve().with_name("RESULTS.md")  # benchmarks/RESULTS.md
PROG = "python benchmarks/bench.py"
TOY_BATCH = 1_000_000
MLP_DIMS = (64, 256, 256, 256, 256, 10)
MLP_BATCH = 4096
PEAK_SIZE = 2048  # the square matmul that measures numpy's peak GEMM rate
PROBE_NAME = f"rate probe: numpy {PEAK_SIZE}² matmul"

# (rtol, atol as a fraction of the largest |expected| entry of each array). The expected values
# are the float64 reference, so float32 contestants carry float32 rounding through long sums.
TOLERANCES: dict[np.dtype, tuple[float, float]] = {
    np.dtype(np.float64): (1e-7, 1e-9),
    np.dtype(np.float32): (2e-3, 1e-4),
}

Grads = list[np.ndarray]


# ----------------------------------------------------------------------------- data model


@dataclass
class Contestant:
    name: str
    run: Callable[[], object]
    # Maps run()'s result to the gradients, in the reference's order; None for a bound (such as
    # "GEMMs alone") that computes no gradients and is not checked.
    grads: Callable[[Any], Sequence[Any]] | None
    native: bool = False  # a backprop_core row
    note: str = ""  # goes under the workload's table (a compile time, say)
    flops: float | None = None  # FLOPs of one call when not the workload's (the rate probe)


@dataclass
class Row:
    name: str
    native: bool = False
    status: str = "ok"  # ok, WRONG, error, skipped, bound, derived
    detail: str = ""  # the check's error, an exception, a reason for skipping
    times: list[float] = field(default_factory=list)  # seconds per call, one entry per block
    number: int = 0  # calls per block
    first: float = 0.0  # seconds the checked (first) call took
    flops: float | None = None  # as Contestant.flops

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


@dataclass
class Workload:
    name: str
    title: str
    dtype: np.dtype
    expected: Grads  # the float64 reference's gradients
    contestants: list[Contestant]
    skipped: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flops: float | None = None  # GEMM FLOPs of one forward+backward
    peak: float | None = None  # numpy's measured peak GEMM rate, FLOP/s


@dataclass
class Options:
    quick: bool
    repeat: int
    target: float  # seconds per block
    seed: int
    torch: Any  # the module, or None
    jax: Any
    compile: bool
    compile_timeout: float
    busy: int = 0  # busy-looping processes run alongside, to time a loaded machine


# ----------------------------------------------------------------------------- frameworks


def load_torch(enabled: bool) -> tuple[Any, str]:
    if not enabled:
        return None, "PyTorch: disabled by --no-torch."
    try:
        import torch
    except Exception as e:  # noqa: BLE001 -- ImportError, or a broken install raising anything
        return None, f"PyTorch: not available ({type(e).__name__}: {e}); its rows are skipped."
    return torch, f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads (default)."


def load_jax(enabled: bool) -> tuple[Any, str]:
    if not enabled:
        return None, "JAX: disabled by --no-jax."
    # CPU only, like every other contestant; also spares the probing for accelerators.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax

        jax.config.update("jax_enable_x64", True)  # else float64 inputs silently become float32
    except Exception as e:  # noqa: BLE001 -- optional: any failure means "skip JAX"
        return None, f"JAX: not available ({type(e).__name__}: {e}); its rows are skipped."
    return jax, f"JAX {jax.__version__} ({jax.default_backend()}), jax.jit(jax.grad(...))."


# ----------------------------------------------------------------------------- toy chain


def add(
    w: Workload,
    name: str,
    make: Callable[[], Contestant] | None,
    why_not: str = "",
    native: bool = False,
) -> None:
    """Appends ``make()``'s contestant to ``w``: a skipped row instead when ``make`` is None
    (``why_not`` says why), an error row when it raises (optional contestants must not end the
    run)."""
    if make is None:
        w.skipped.append(Row(name, native=native, status="skipped", detail=why_not))
        return
    try:
        c = make()
    except Exception as ex:  # noqa: BLE001 -- reported as an error row
        w.skipped.append(Row(name, native=native, status="error", detail=describe(ex)))
        return
    w.contestants.append(c)


def if_loaded(module: Any, make: Callable[[], Contestant]) -> Callable[[], Contestant] | None:
    return make if module is not None else None


def python_floats_toy(
    x: float, y: float, beta: list[float], omega: list[float]
) -> tuple[list[float], list[float]]:
    """Notebook 7.1's chain, forward then backward, written out on Python floats."""
    b0, b1, b2, b3 = beta
    w0, w1, w2, w3 = omega
    f0 = b0 + w0 * x
    h1 = math.sin(f0)
    f1 = b1 + w1 * h1
    h2 = math.exp(f1)
    f2 = b2 + w2 * h2
    h3 = math.cos(f2)
    f3 = b3 + w3 * h3
    dl_df3 = 2.0 * (f3 - y)
    dl_df2 = -math.sin(f2) * w3 * dl_df3
    dl_df1 = h2 * w2 * dl_df2
    dl_df0 = math.cos(f0) * w1 * dl_df1
    return [dl_df0, dl_df1, dl_df2, dl_df3], [dl_df0 * x, dl_df1 * h1, dl_df2 * h2, dl_df3 * h3]


def torch_toy_loss(x: Any, y: Any, beta: Any, omega: Any) -> Any:
    """Notebook 7.1's chain on torch tensors; summed squared error."""
    b0, b1, b2, b3 = beta.unbind()
    w0, w1, w2, w3 = omega.unbind()
    f3 = b3 + w3 * (b2 + w2 * (b1 + w1 * (b0 + w0 * x).sin()).exp()).cos()
    return ((f3 - y) ** 2).sum()


def jax_toy_loss(beta: Any, omega: Any, x: Any, y: Any) -> Any:
    import jax.numpy as jnp

    f0 = beta[0] + omega[0] * x
    f1 = beta[1] + omega[1] * jnp.sin(f0)
    f2 = beta[2] + omega[2] * jnp.exp(f1)
    f3 = beta[3] + omega[3] * jnp.cos(f2)
    return jnp.sum((f3 - y) ** 2)


def torch_toy_contestant(
    torch: Any,
    name: str,
    x: Any,
    y: Any,
    beta: np.ndarray,
    omega: np.ndarray,
    loss_fn: Callable[..., Any] = torch_toy_loss,
) -> Contestant:
    tx = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    ty = torch.from_numpy(y) if isinstance(y, np.ndarray) else y
    tb = torch.tensor(beta, requires_grad=True)
    to = torch.tensor(omega, requires_grad=True)

    def run() -> tuple[Any, Any]:
        tb.grad = None  # a fresh gradient every call, as a training step would zero it
        to.grad = None
        loss_fn(tx, ty, tb, to).backward()
        return tb.grad, to.grad

    return Contestant(name, run, lambda r: [g.numpy() for g in r])


def jax_contestant(jax: Any, loss: Callable[..., Any], args: Sequence[Any]) -> Contestant:
    """``jax.jit(jax.grad(loss))`` with respect to the first two arguments, compiled ahead of
    time here so that no timed call (not even the check) pays for the compile."""
    args = jax.device_put(tuple(args))
    t0 = time.perf_counter()
    grad = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(*args).compile()
    compile_s = time.perf_counter() - t0

    def run() -> Any:
        return jax.block_until_ready(grad(*args))

    def grads(r: Any) -> list[Any]:
        return [*jax.tree_util.tree_leaves(r[0]), *jax.tree_util.tree_leaves(r[1])]

    note = f"JAX: compiled ahead of time in {compile_s:.2f} s, excluded from the timings."
    return Contestant("JAX jit(grad)", run, grads, note=note)


def notebook_toy(x: Any, y: Any, beta: np.ndarray, omega: np.ndarray) -> tuple[Any, Any]:
    """Notebook 7.1's cells as written there: numpy functions on the values (the parameters
    Python floats, as the notebook sets them), forward then backward; a batch's derivatives are
    summed over its samples. The numpy baseline every ratio is quoted against."""
    beta0, beta1, beta2, beta3 = beta
    omega0, omega1, omega2, omega3 = omega
    f0 = beta0 + omega0 * x
    h1 = np.sin(f0)
    f1 = beta1 + omega1 * h1
    h2 = np.exp(f1)
    f2 = beta2 + omega2 * h2
    h3 = np.cos(f2)
    f3 = beta3 + omega3 * h3
    dldf3 = 2 * (f3 - y)
    dldh3 = omega3 * dldf3
    dldf2 = -np.sin(f2) * dldh3
    dldh2 = omega2 * dldf2
    dldf1 = np.exp(f1) * dldh2
    dldh1 = omega1 * dldf1
    dldf0 = np.cos(f0) * dldh1
    if np.ndim(x) == 0:  # one sample, as in the notebook: dl/dbeta_k is dl/df_k itself
        return [dldf0, dldf1, dldf2, dldf3], [dldf0 * x, dldf1 * h1, dldf2 * h2, dldf3 * h3]
    dl_dbeta = [np.sum(dldf0), np.sum(dldf1), np.sum(dldf2), np.sum(dldf3)]
    dl_domega = [np.sum(dldf0 * x), np.sum(dldf1 * h1), np.sum(dldf2 * h2), np.sum(dldf3 * h3)]
    return dl_dbeta, dl_domega


NOTEBOOK_ONE_SAMPLE = (
    "not applicable: notebook 7.2's backward_pass takes one sample (its dl/dbias is dl/df "
    "itself, and indicator * W.T @ dl/df multiplies before the product)"
)


def notebook_mlp(x: Any, y: Any, weights: list[Any], biases: list[Any]) -> tuple[Any, Any]:
    """Notebook 7.2's compute_network_output and backward_pass as the notebook has them (one
    sample: see NOTEBOOK_ONE_SAMPLE)."""
    K = len(weights) - 1
    all_f = [None] * (K + 1)
    all_h = [None] * (K + 1)
    all_h[0] = x
    for layer in range(K):
        all_f[layer] = weights[layer] @ all_h[layer] + biases[layer]
        all_h[layer + 1] = all_f[layer].clip(0.0)
    all_f[K] = weights[K] @ all_h[K] + biases[K]
    all_dl_dweights = [None] * (K + 1)
    all_dl_dbiases = [None] * (K + 1)
    all_dl_df = [None] * (K + 1)
    all_dl_dh = [None] * (K + 1)
    all_dl_df[K] = np.array(all_f[K] - y)
    for layer in range(K, -1, -1):
        all_dl_dbiases[layer] = np.array(all_dl_df[layer])
        all_dl_dweights[layer] = np.array(all_dl_df[layer]) @ all_h[layer].T
        all_dl_dh[layer] = weights[layer].T @ all_dl_df[layer]
        if layer > 0:
            indicator = np.array(all_f[layer - 1])
            indicator[indicator >= 0] = 1
            indicator[indicator < 0] = 0
            all_dl_df[layer - 1] = indicator * weights[layer].T @ all_dl_df[layer]
    return all_dl_dweights, all_dl_dbiases


def toy_workload_base(name: str, title: str, x: Any, y: Any, opts: Options) -> Workload:
    e = toy_example()
    want = reference.toy_backward(x, y, e.beta, e.omega)
    beta, omega = e.beta.tolist(), e.omega.tolist()  # the notebook's Python floats
    chain = Chain(e.beta, e.omega)
    chain_out = (np.empty_like(e.beta), np.empty_like(e.omega))
    contestants = [
        Contestant(
            "backprop_core.toy_backward",
            lambda: bc.toy_backward(x, y, e.beta, e.omega),
            lambda r: [r.dl_dbeta, r.dl_domega],
            native=True,
        ),
        Contestant(
            "backprop_core.toy_gradients",
            lambda: bc.toy_gradients(x, y, e.beta, e.omega),
            lambda r: [r[1], r[2]],
            native=True,
        ),
        Contestant(
            "backprop_core.Chain",
            lambda: chain.gradients(x, y),
            lambda r: [r.dl_dbeta, r.dl_domega],
            native=True,
        ),
        Contestant(
            "backprop_core.Chain (out=)",
            lambda: chain.gradients(x, y, out=chain_out),
            lambda r: [r.dl_dbeta.copy(), r.dl_domega.copy()],
            native=True,
        ),
        Contestant(
            "numpy (notebook 7.1 cells)",
            lambda: notebook_toy(x, y, beta, omega),
            lambda r: [np.array(r[0]), np.array(r[1])],
        ),
        Contestant(
            "numpy (reference.toy_backward)",
            lambda: reference.toy_backward(x, y, e.beta, e.omega),
            lambda r: [r.dl_dbeta, r.dl_domega],
        ),
    ]
    w = Workload(name, title, np.dtype(np.float64), [want.dl_dbeta, want.dl_domega], contestants)
    torch, jax = opts.torch, opts.jax
    add(
        w,
        "PyTorch eager",
        if_loaded(
            torch, lambda: torch_toy_contestant(torch, "PyTorch eager", x, y, e.beta, e.omega)
        ),
        "torch not available",
    )
    args = [np.asarray(a, np.float64) for a in (e.beta, e.omega, x, y)]
    add(
        w,
        "JAX jit(grad)",
        if_loaded(jax, lambda: jax_contestant(jax, jax_toy_loss, args)),
        "jax not available",
    )
    return w


def build_toy1(opts: Options) -> Workload:
    e = toy_example()
    w = toy_workload_base(
        "toy1",
        "toy chain of notebook 7.1, one sample (its x = 2.3, y = 2.0), float64",
        e.x,
        e.y,
        opts,
    )
    beta, omega = e.beta.tolist(), e.omega.tolist()
    w.contestants.insert(
        2,
        Contestant(
            "python floats (math.sin etc.)",
            lambda: python_floats_toy(e.x, e.y, beta, omega),
            lambda r: [np.array(r[0]), np.array(r[1])],
        ),
    )
    return w


def build_toybatch(opts: Options) -> Workload:
    rng = np.random.default_rng(opts.seed)
    x = rng.uniform(-1.0, 1.0, TOY_BATCH)
    y = rng.standard_normal(TOY_BATCH)
    w = toy_workload_base(
        "toybatch",
        f"toy chain of notebook 7.1, {TOY_BATCH:,} samples, summed loss, float64",
        x,
        y,
        opts,
    )
    e = toy_example()
    add_torch_compile(
        w,
        opts,
        f"_torch_compile_probe_toy({len(x)})",
        lambda name, compile: torch_toy_contestant(
            opts.torch, name, x, y, e.beta, e.omega, compile(torch_toy_loss)
        ),
    )
    return w


def torch_toy_batch_inputs(torch: Any, n: int) -> tuple[Any, Any, Any, Any]:
    e = toy_example()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1.0, 1.0, n))
    y = torch.from_numpy(rng.standard_normal(n))
    return x, y, torch.tensor(e.beta, requires_grad=True), torch.tensor(e.omega, requires_grad=True)


def _torch_compile_probe_toy(n: int) -> None:
    """Run in a subprocess first: compiles what the benchmark will compile, under a timeout.

    Inductor caches what it compiles on disk, so the benchmark's own compile then mostly hits
    the cache.
    """
    import torch

    x, y, beta, omega = torch_toy_batch_inputs(torch, n)
    torch.compile(torch_toy_loss)(x, y, beta, omega).backward()


def _torch_compile_probe_mlp(dims: list[int], n: int, dtype: str, y_value: float | None) -> None:
    """As _torch_compile_probe_toy, for the MLP: the same shapes, dtype and kind of target."""
    import torch

    rng = np.random.default_rng(0)
    tx = torch.from_numpy(rng.standard_normal((dims[0], n)).astype(dtype))
    ty: Any = y_value
    if y_value is None:
        ty = torch.from_numpy(rng.standard_normal((dims[-1], n)).astype(dtype))
    tw = [torch.from_numpy(rng.standard_normal((o, i)).astype(dtype)).requires_grad_()
          for i, o in zip(dims[:-1], dims[1:])]
    tb = [torch.from_numpy(rng.standard_normal((o, 1)).astype(dtype)).requires_grad_()
          for o in dims[1:]]
    torch.compile(torch_mlp_loss)(tw, tb, tx, ty).backward()


def probe_torch_compile(call: str, timeout: float) -> str | None:
    """None if ``call`` (of a _torch_compile_probe_* function of this file) compiles within
    ``timeout`` seconds in a subprocess, else why not."""
    # This file is no module of an installed package: the probe loads it by its path.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('backprop_core_bench', {__file__!r})\n"
        "bench = importlib.util.module_from_spec(spec)\n"
        "sys.modules[spec.name] = bench  # dataclasses look their module up\n"
        "spec.loader.exec_module(bench)\n"
        f"bench.{call}\n"
    )
    # Its own session, so a timeout can end the probe and the compile workers it spawned.
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"compiling took over {timeout:.0f} s (--compile-timeout)"
    if proc.returncode != 0:
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        return f"failed: {lines[-1] if lines else f'exit code {proc.returncode}'}"
    return None


def add_torch_compile(
    w: Workload, opts: Options, probe: str, make: Callable[[str, Any], Contestant]
) -> None:
    """The row "PyTorch torch.compile": ``make(name, torch.compile)`` builds the contestant once
    ``probe`` (a _torch_compile_probe_* call) has compiled the same thing in a subprocess."""
    name, torch = "PyTorch torch.compile", opts.torch
    if torch is None or not opts.compile:
        why = "torch not available" if torch is None else "disabled by --no-compile"
        add(w, name, None, "skipped under --quick" if opts.quick else why)
        return
    progress(f"{w.name}: probing torch.compile (up to {opts.compile_timeout:.0f} s) ...")
    t0 = time.perf_counter()
    why_not = probe_torch_compile(probe, opts.compile_timeout)
    probe_s = time.perf_counter() - t0
    if why_not is not None:
        add(w, name, None, why_not)
        return

    def make_timed() -> Contestant:
        c = make(name, torch.compile)
        t0 = time.perf_counter()
        c.run()  # the compile, excluded from the timings
        c.note = (
            f"torch.compile: compiled in a probe subprocess in {probe_s:.1f} s, then "
            f"in-process in {time.perf_counter() - t0:.1f} s (inductor's disk cache); both "
            "excluded from the timings."
        )
        return c

    add(w, name, make_timed)


# ----------------------------------------------------------------------------- MLP


def mlp_grads(r: Any) -> Grads:
    _, dW, db = r
    return [*dW, *db]


def torch_mlp_loss(tw: list[Any], tb: list[Any], tx: Any, ty: Any) -> Any:
    """Notebook 7.2's network and loss on torch tensors."""
    import torch

    h = tx
    for W, b in zip(tw[:-1], tb[:-1]):
        h = torch.relu(W @ h + b)
    f = tw[-1] @ h + tb[-1]
    return 0.5 * ((f - ty) ** 2).sum()


def torch_mlp_contestant(
    torch: Any,
    x: np.ndarray,
    y: Any,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    name: str = "PyTorch eager",
    loss_fn: Callable[..., Any] = torch_mlp_loss,
) -> Contestant:
    tx = torch.from_numpy(x)
    ty = torch.from_numpy(y) if isinstance(y, np.ndarray) else y
    tw = [torch.from_numpy(W.copy()).requires_grad_() for W in weights]
    tb = [torch.from_numpy(b.copy()).requires_grad_() for b in biases]
    params = tw + tb

    def run() -> list[Any]:
        for p in params:
            p.grad = None
        loss_fn(tw, tb, tx, ty).backward()
        return [p.grad for p in params]

    return Contestant(name, run, lambda r: [g.numpy() for g in r])


def jax_mlp_loss(weights: list[Any], biases: list[Any], x: Any, y: Any) -> Any:
    import jax
    import jax.numpy as jnp

    h = x
    for W, b in zip(weights[:-1], biases[:-1]):
        h = jax.nn.relu(W @ h + b)
    f = weights[-1] @ h + biases[-1]
    return 0.5 * jnp.sum((f - y) ** 2)


def mlp_workload(
    name: str,
    title: str,
    x: np.ndarray,
    y: Any,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    opts: Options,
) -> Workload:
    def f64(a: Any) -> Any:
        return np.asarray(a, np.float64) if isinstance(a, np.ndarray) else a

    _, dW, db = reference.gradients(
        f64(x), f64(y), [f64(W) for W in weights], [f64(b) for b in biases]
    )
    contestants = [
        Contestant(
            "backprop_core.gradients",
            lambda: bc.gradients(x, y, weights, biases),
            mlp_grads,
            native=True,
        ),
    ]
    w = Workload(name, title, x.dtype, [*dW, *db], contestants)
    model_cls: Any = getattr(bc, "MLP", None)  # the model object, where this build has it

    def make_model() -> Contestant:
        model = model_cls(weights, biases)  # built once: its setup is not what is timed
        return Contestant(
            "backprop_core.MLP", lambda: model.gradients(x, y), mlp_grads, native=True
        )

    add(
        w,
        "backprop_core.MLP",
        if_loaded(model_cls, make_model),
        "backprop_core has no MLP in this build",
        native=True,
    )

    def make_model_out() -> Contestant:
        model = model_cls(weights, biases)
        out = ([np.empty_like(W) for W in weights], [np.empty_like(b) for b in biases])
        return Contestant(
            "backprop_core.MLP (out=)",
            lambda: model.gradients(x, y, out=out),
            lambda r: [np.array(a) for a in (*r[1], *r[2])],  # copies: the buffers are reused
            native=True,
        )

    add(
        w,
        "backprop_core.MLP (out=)",
        if_loaded(model_cls, make_model_out),
        "backprop_core has no MLP in this build",
        native=True,
    )
    if x.shape[1] == 1:
        contestants.append(
            Contestant(
                "numpy (notebook 7.2 cells)",
                lambda: notebook_mlp(x, y, weights, biases),
                lambda r: [*r[0], *r[1]],
            )
        )
    else:
        add(w, "numpy (notebook 7.2 cells)", None, NOTEBOOK_ONE_SAMPLE)
    contestants.append(
        Contestant(
            "numpy (reference.gradients)",
            lambda: reference.gradients(x, y, weights, biases),
            mlp_grads,
        )
    )
    torch, jax = opts.torch, opts.jax
    add(
        w,
        "PyTorch eager",
        if_loaded(torch, lambda: torch_mlp_contestant(torch, x, y, weights, biases)),
        "torch not available",
    )
    dims = [weights[0].shape[1], *(W.shape[0] for W in weights)]
    y_value = None if isinstance(y, np.ndarray) else float(y)
    add_torch_compile(
        w,
        opts,
        f"_torch_compile_probe_mlp({dims}, {x.shape[1]}, {x.dtype.name!r}, {y_value!r})",
        lambda name, compile: torch_mlp_contestant(
            torch, x, y, weights, biases, name, compile(torch_mlp_loss)
        ),
    )
    args = (list(weights), list(biases), x, np.asarray(y, x.dtype))
    add(
        w,
        "JAX jit(grad)",
        if_loaded(jax, lambda: jax_contestant(jax, jax_mlp_loss, args)),
        "jax not available",
    )
    return w


def build_mlp1(opts: Options) -> Workload:
    m = mlp_example()
    return mlp_workload(
        "mlp1",
        "ReLU MLP of notebook 7.2 (seed 44, K = 5, width 6), one sample, float64",
        m.net_input,
        m.y,
        m.all_weights,
        m.all_biases,
        opts,
    )


def gemm_shapes(dims: Sequence[int], n: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every GEMM of one forward+backward: W h, dl/df h^T, and W^T dl/df (not for
    the first layer, whose input needs no gradient)."""
    shapes = []
    for layer, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        shapes.append((d_out, d_in, n))  # f = W h
        shapes.append((d_out, n, d_in))  # dl/dW = dl/df h^T
        if layer > 0:
            shapes.append((d_in, d_out, n))  # dl/dh = W^T dl/df
    return shapes


def gemms_alone(
    dims: Sequence[int], n: int, dtype: np.dtype, rng: np.random.Generator
) -> Contestant:
    """Just the numpy matmuls of one forward+backward, with the same shapes and transposes as the
    reference, into preallocated outputs (so allocation is not counted either)."""
    calls = []
    for layer, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        W = rng.standard_normal((d_out, d_in)).astype(dtype)
        h = rng.standard_normal((d_in, n)).astype(dtype)
        g = rng.standard_normal((d_out, n)).astype(dtype)
        calls.append((W, h, np.empty((d_out, n), dtype)))
        calls.append((g, h.T, np.empty((d_out, d_in), dtype)))
        if layer > 0:
            calls.append((W.T, g, np.empty((d_in, n), dtype)))

    def run() -> None:
        for a, b, out in calls:
            np.matmul(a, b, out=out)

    return Contestant("GEMMs alone (numpy)", run, None)


def peak_matmul(dtype: np.dtype) -> Callable[[], object]:
    """A large square numpy matmul: the GEMM rate numpy reaches at its best."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(dtype)
    b = rng.standard_normal((PEAK_SIZE, PEAK_SIZE)).astype(dtype)
    out = np.empty_like(a)
    return lambda: np.matmul(a, b, out=out)


def peak_gemm_rate(dtype: np.dtype, blocks: int) -> float:
    """numpy's best GEMM rate, FLOP/s: the fastest of ``blocks`` large square matmuls."""
    run = peak_matmul(dtype)
    run()  # warm up: threads, pages
    best = min(time_block(run, 1) for _ in range(blocks))
    return 2.0 * PEAK_SIZE**3 / best


def build_mlpbatch(opts: Options, dtype: np.dtype) -> Workload:
    rng = np.random.default_rng(opts.seed)
    dims = MLP_DIMS
    # He initialisation for the weights; small random biases so their gradients mean something.
    weights = [
        (rng.standard_normal((o, i)) * math.sqrt(2.0 / i)).astype(dtype)
        for i, o in zip(dims[:-1], dims[1:])
    ]
    biases = [(0.1 * rng.standard_normal((o, 1))).astype(dtype) for o in dims[1:]]
    x = rng.uniform(-1.0, 1.0, (dims[0], MLP_BATCH)).astype(dtype)
    y = rng.standard_normal((dims[-1], MLP_BATCH)).astype(dtype)
    bits = 8 * dtype.itemsize
    arch = " → ".join([str(dims[0]), f"{dims[1]}×{len(dims) - 2}", str(dims[-1])])
    w = mlp_workload(
        f"mlpbatch{bits}",
        f"ReLU MLP {arch}, batch {MLP_BATCH} as columns, float{bits}",
        x,
        y,
        weights,
        biases,
        opts,
    )
    w.contestants.append(gemms_alone(dims, MLP_BATCH, dtype, rng))
    # The same matmul timed in the same rounds as everyone: the peak rate under the same noise.
    w.contestants.append(
        Contestant(PROBE_NAME, peak_matmul(dtype), None, flops=2.0 * PEAK_SIZE**3)
    )
    w.flops = float(sum(2 * m * k * n for m, k, n in gemm_shapes(dims, MLP_BATCH)))
    progress(f"{w.name}: measuring numpy's peak GEMM rate ({PEAK_SIZE}² float{bits}) ...")
    w.peak = peak_gemm_rate(dtype, 2 if opts.quick else 5)
    w.notes.append(
        f"GEMMs alone: the {len(gemm_shapes(dims, MLP_BATCH))} numpy matmuls of one "
        f"forward+backward ({w.flops / 1e9:.2f} GFLOP), same shapes, preallocated outputs. "
        f"FLOP limit: those FLOPs at numpy's peak rate, {w.peak / 1e9:.1f} GFLOP/s "
        f"(best {PEAK_SIZE}² matmul). The rate probe is that matmul timed in the same rounds as "
        "the contestants (its own GFLOP/s), and the second FLOP limit uses its median rate: "
        "the first compares medians with a best case, the second compares like with like."
    )
    return w


BUILDERS: dict[str, Callable[[Options], Workload]] = {
    "toy1": build_toy1,
    "mlp1": build_mlp1,
    "toybatch": build_toybatch,
    "mlpbatch32": lambda o: build_mlpbatch(o, np.dtype(np.float32)),
    "mlpbatch64": lambda o: build_mlpbatch(o, np.dtype(np.float64)),
}


# ----------------------------------------------------------------------------- checking


def describe(ex: BaseException) -> str:
    text = str(ex).strip().splitlines()
    return f"{type(ex).__name__}: {text[0] if text else ''}"[:160]


def check(got: Sequence[Any], want: Grads, dtype: np.dtype) -> tuple[bool, float]:
    """Whether every array is allclose to the reference, and the worst error relative to each
    array's largest entry."""
    rtol, atol = TOLERANCES[dtype]
    if len(got) != len(want):
        return False, math.inf
    ok, worst = True, 0.0
    for g, e in zip(got, want):
        g = np.asarray(g, np.float64)
        if g.shape != e.shape:
            return False, math.inf
        scale = max(float(np.max(np.abs(e), initial=0.0)), np.finfo(np.float64).tiny)
        ok = ok and bool(np.allclose(g, e, rtol=rtol, atol=atol * scale))
        worst = max(worst, float(np.max(np.abs(g - e), initial=0.0)) / scale)
    return ok, worst


def check_contestants(w: Workload) -> tuple[list[Contestant], list[Row]]:
    """Runs every contestant once (which also warms it up: JIT compiles, caches, allocators) and
    keeps the ones whose gradients agree."""
    timed, rows = [], []
    for c in w.contestants:
        row = Row(c.name, native=c.native, flops=c.flops)
        rows.append(row)
        try:
            t0 = time.perf_counter()
            result = c.run()
            row.first = time.perf_counter() - t0
        except Exception as ex:  # noqa: BLE001 -- a contestant that raises is reported
            row.status, row.detail = "error", describe(ex)
            continue
        if c.grads is None:
            row.status, row.detail = "bound", "not a gradient"
        else:
            try:
                ok, err = check(c.grads(result), w.expected, w.dtype)
            except Exception as ex:  # noqa: BLE001 -- e.g. a malformed result
                row.status, row.detail = "error", describe(ex)
                continue
            row.detail = f"{err:.1e}" if err else "0"
            if not ok:
                row.status = "WRONG"
                continue
        timed.append(c)
    return timed, rows


# ----------------------------------------------------------------------------- timing


def time_block(fn: Callable[[], object], number: int) -> float:
    """Seconds per call of ``number`` back-to-back calls. The garbage collector is off meanwhile,
    as in timeit, so a collection does not land on whichever contestant happens to run."""
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        t1 = time.perf_counter_ns()
    finally:
        if gc_was_on:
            gc.enable()
    return (t1 - t0) / 1e9 / number


def calibrate(fn: Callable[[], object], target: float) -> int:
    """Calls per block so that a block takes about ``target`` seconds (1 for slow calls)."""
    number = 1
    while True:
        per_call = time_block(fn, number)
        if per_call * number >= target / 10 or number >= 10**7:
            return max(1, round(target / per_call))
        number *= 10


def time_workload(w: Workload, timed: list[Contestant], rows: list[Row], opts: Options) -> None:
    by_name = {r.name: r for r in rows}
    for c in timed:
        row = by_name[c.name]
        # A call as long as a block needs no calibrating; that saves a whole call of the
        # slowest contestants (compiles happened at construction, so the first call is warm).
        row.number = 1 if row.first >= opts.target else calibrate(c.run, opts.target)
    for r in range(opts.repeat):
        BAR.step(f"{w.name}: round {r + 1}/{opts.repeat}")
        # Rotating the order each round spreads any position effect (a cache warmed or
        # trashed by the previous contestant) over everyone.
        shift = r % len(timed)
        for c in timed[shift:] + timed[:shift]:
            row = by_name[c.name]
            row.times.append(time_block(c.run, row.number))
            gc.collect()


def run_workload(w: Workload, opts: Options) -> list[Row]:
    BAR.step(f"{w.name}: checking gradients against the reference")
    timed, rows = check_contestants(w)
    w.notes += [c.note for c in w.contestants if c.note]
    if timed:
        time_workload(w, timed, rows, opts)
    if w.flops is not None and w.peak is not None:
        rows.append(
            Row("FLOP limit (GEMM FLOPs / peak)", status="derived", times=[w.flops / w.peak])
        )
        probe = next((r for r in rows if r.name == PROBE_NAME and r.median), None)
        if probe is not None and probe.flops and probe.median:
            rate = probe.flops / probe.median
            rows.append(
                Row("FLOP limit at the probe's median rate", status="derived", times=[w.flops / rate])
            )
    return rows + w.skipped


# ----------------------------------------------------------------------------- reporting


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class ProgressBar:
    """``[#####.....] 12/40 mlp1: round 3/7`` on standard error: redrawn in place on a terminal,
    a line per step otherwise (so logs stay readable)."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def step(self, msg: str) -> None:
        self.done += 1
        width = 30
        filled = width * min(self.done, self.total) // max(self.total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {msg}"
        if sys.stderr.isatty():
            end = "\n" if self.done >= self.total else ""
            print("\r" + line.ljust(100), end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


BAR = ProgressBar()


def fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{fmt_num(s / scale)} {unit}"
    return f"{fmt_num(s / 1e-9)} ns"


def fmt_num(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def base_row(rows: list[Row]) -> Row | None:
    """The fastest backprop_core row that was timed: what every ratio divides by."""
    timed = [r for r in rows if r.native and r.median is not None]
    return min(timed, key=lambda r: r.median or math.inf, default=None)


def numpy_row(rows: list[Row]) -> Row | None:
    return next((r for r in rows if r.name.startswith("numpy") and r.median is not None), None)


def table(w: Workload, rows: list[Row]) -> list[str]:
    base = base_row(rows)
    gflops = w.flops is not None
    head = ["contestant", "median", "min", "max", "time ÷ backprop_core", "calls/block", "check"]
    if gflops:
        head.insert(5, "GFLOP/s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        med = r.median
        ratio = "—"
        if med is not None and base is not None and base.median and r.flops is None:
            ratio = "1 (base)" if r is base else f"{fmt_num(med / base.median)}x"
        if r.status == "ok":
            status = f"ok, max err {r.detail}"
        elif r.status == "WRONG":
            status = f"**WRONG**: max err {r.detail}, beyond tolerance"
        elif r.status == "error":
            status = f"**error**: {r.detail}"
        elif r.status == "skipped":
            status = r.detail
        else:  # bound, derived: nothing to check
            status = "—"
        cells = [
            r.name,
            fmt_time(med) if r.status != "skipped" else "skipped",
            fmt_time(min(r.times)) if len(r.times) > 1 else "—",
            fmt_time(max(r.times)) if len(r.times) > 1 else "—",
            ratio,
            str(r.number) if r.number else "—",
            status,
        ]
        if gflops:
            assert w.flops is not None
            cells.insert(5, f"{(r.flops or w.flops) / med / 1e9:.1f}" if med else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def peer_row(rows: list[Row]) -> Row | None:
    """The fastest other contestant whose gradients checked out (numpy, Python floats, PyTorch,
    JAX ...): the ratio the summary leads with."""
    timed = [r for r in rows if r.status == "ok" and not r.native and r.median is not None]
    return min(timed, key=lambda r: r.median or math.inf, default=None)


def summary(results: list[tuple[Workload, list[Row]]]) -> list[str]:
    lines = [
        "| workload | backprop_core (fastest entry point) | fastest peer "
        "| backprop_core ÷ fastest peer | numpy (notebook cells, else reference) "
        "| numpy ÷ backprop_core "
        "| backprop_core ÷ FLOP limit (best peak; probe's median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, rows in results:
        base, ref, peer = base_row(rows), numpy_row(rows), peer_row(rows)

        def over(name: str, inverse: bool = False) -> str:
            r = next((r for r in rows if r.name == name and r.median), None)
            if base is None or not base.median or r is None or not r.median:
                return "—"
            return f"{fmt_num(base.median / r.median if inverse else r.median / base.median)}x"

        limits = [over("FLOP limit (GEMM FLOPs / peak)", True), over("FLOP limit at the probe's median rate", True)]
        lines.append(
            f"| {w.name} | {fmt_time(base.median if base else None)}"
            f"{f' ({base.name})' if base else ''} "
            f"| {f'{peer.name}, {fmt_time(peer.median)}' if peer else '—'} "
            f"| {over(peer.name, True) if peer else '—'} "
            f"| {fmt_time(ref.median if ref else None)}"
            f"{' (reference)' if ref and 'notebook' not in ref.name else ''} "
            f"| {over(ref.name) if ref else '—'} "
            f"| {'; '.join(limits) if limits[0] != '—' else '—'} |"
        )
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.26
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 -- older numpy, or a layout this does not know
        return "unknown BLAS"


def machine_lines() -> list[str]:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    env = [
        f"{k}={os.environ[k]}"
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
        if k in os.environ
    ]
    return [
        (
            f"- Machine: {cpu_model()}, {cores} cores ({usable} usable), "
            f"{platform.system()} {platform.machine()}"
            + (f"; environment {', '.join(env)}" if env else "")
        ),
        (
            f"- Python {platform.python_version()}, backprop_core {bc.__version__} "
            f"(BLAS: {bc._core.blas()}), "
            f"numpy {np.__version__} ({blas_name()})"
        ),
    ]


@dataclass
class RunInfo:
    command: str
    busy: int
    started: datetime.datetime
    seconds: float
    load_start: float | None  # 1-minute load average
    load_end: float | None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def report(
    results: list[tuple[Workload, list[Row]]],
    framework_notes: list[str],
    opts: Options,
    run: RunInfo,
) -> str:
    loads = "unknown"
    if run.load_start is not None and run.load_end is not None:
        loads = f"{run.load_start:.2f} at the start, {run.load_end:.2f} at the end"
    out = [
        "# backprop_core benchmark",
        "",
        (
            f"Generated by `{run.command}` on {run.started:%Y-%m-%d %H:%M} "
            f"({run.seconds:.0f} s in all)."
        ),
        "",
        *machine_lines(),
        f"- Load average (1 min; other processes share the machine): {loads}",
        *(
            [
                f"- **Loaded machine**: {run.busy} busy-looping process"
                f"{'es' if run.busy > 1 else ''} ran beside every contestant for the whole run "
                f"(`--busy {run.busy}`), as on a shared machine: each contestant's threads compete "
                "for the cores."
            ]
            if run.busy
            else []
        ),
        *(f"- {n}" for n in framework_notes),
        (
            f"- Timing: {opts.repeat} interleaved rounds, one block per contestant per round, "
            f"blocks of ~{opts.target * 1e3:.0f} ms (one call when a call is longer); median, "
            "min and max of the per-call time over the blocks. `time ÷ backprop_core` is the median "
            "over the first backprop_core row's median: above 1 means slower than backprop_core. "
            "Derived rows (FLOP limit) are computed, not timed."
        ),
        (
            "- Check: gradients of every parameter against `backprop_core.reference` run in "
            "float64 on the same data; `max err` is the largest |difference| over each array's "
            "largest |entry|. Tolerances: "
            + "; ".join(
                f"{dt.name} rtol {r:.0e}, atol {a:.0e} × that entry"
                for dt, (r, a) in TOLERANCES.items()
            )
            + ". A contestant that disagrees is WRONG and not timed."
        ),
        "",
        "## Summary",
        "",
        *summary(results),
    ]
    for w, rows in results:
        out += ["", f"## {w.name}: {w.title}", "", *table(w, rows)]
        if w.notes:
            out += ["", *(f"- {n}" for n in w.notes)]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str], prog: str, default_out: Path) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Time backprop_core's gradients against numpy, PyTorch and JAX.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 rounds, shorter blocks, no torch.compile: about a minute",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        default=str(default_out),
        help=f"markdown file to write (default: {default_out.name} beside this script, in "
        "benchmarks/); '-' writes none",
    )
    p.add_argument(
        "--workloads",
        metavar="A,B",
        default=",".join(WORKLOADS),
        help="comma-separated subset of: %(default)s (default: all)",
    )
    p.add_argument(
        "--repeat",
        metavar="N",
        type=int,
        default=None,
        help="rounds of blocks per contestant (default 7, 3 with --quick)",
    )
    p.add_argument(
        "--block-ms",
        metavar="MS",
        type=float,
        default=None,
        help="target block length in ms (default 40, 20 with --quick)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random workloads")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--no-jax", action="store_true", help="skip JAX")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument(
        "--busy",
        metavar="N",
        type=int,
        default=0,
        help="run N busy-looping processes alongside, to time a loaded machine (default 0)",
    )
    p.add_argument(
        "--compile-timeout",
        metavar="S",
        type=float,
        default=180.0,
        help="seconds torch.compile may take before it is skipped (default 180)",
    )
    args = p.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown or not names:
        p.error(f"unknown workloads {unknown}; choose from {', '.join(WORKLOADS)}")
    args.workloads = names
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.busy < 0:
        p.error("--busy must be at least 0")
    return args


def start_busy_loops(n: int) -> list[subprocess.Popen[bytes]]:
    """Processes that keep a core busy each, until killed (the ``--busy`` option)."""
    if n:
        progress(f"starting {n} busy-looping process{'es' if n > 1 else ''} (--busy)")
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(
    argv: list[str] | None = None,
    *,
    prog: str = PROG,
    default_out: Path = DEFAULT_OUT,
) -> int:
    """Run the benchmark on ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv, prog, default_out)
    started, t0, load_start = datetime.datetime.now(), time.perf_counter(), load_average()
    torch, torch_note = load_torch(not args.no_torch)
    jax, jax_note = load_jax(not args.no_jax)
    for note in (torch_note, jax_note):
        progress(note)
    opts = Options(
        quick=args.quick,
        repeat=args.repeat or (3 if args.quick else 7),
        target=(args.block_ms or (20.0 if args.quick else 40.0)) / 1e3,
        seed=args.seed,
        torch=torch,
        jax=jax,
        compile=not (args.no_compile or args.quick),
        compile_timeout=args.compile_timeout,
    )
    results = []
    BAR.total = len(args.workloads) * (opts.repeat + 1)
    busy = start_busy_loops(args.busy)
    try:
        for name in args.workloads:
            w = BUILDERS[name](opts)
            rows = run_workload(w, opts)
            results.append((w, rows))
            print("\n".join(["", f"## {w.name}: {w.title}", "", *table(w, rows)]), flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    run = RunInfo(
        " ".join([prog, *argv]),
        args.busy,
        started,
        time.perf_counter() - t0,
        load_start,
        load_average(),
    )
    text = report(results, [torch_note, jax_note], opts, run)
    print("\n## Summary\n\n" + "\n".join(summary(results)))
    if args.out != "-":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        progress(f"wrote {out}")
    bad = [r for _, rows in results for r in rows if r.native and r.status in ("WRONG", "error")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
