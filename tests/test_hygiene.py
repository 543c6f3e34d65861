"""Native-code hygiene: no leaks, the GIL released, thread safety."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import backprop_core as bc
import numpy as np
import pytest
from backprop_core.examples import mlp_example, toy_example


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _calls():
    e = toy_example()
    m = mlp_example()
    _, f, h = bc.forward(m.net_input, m.all_weights, m.all_biases)
    model = bc.MLP(m.all_weights, m.all_biases)
    out = ([np.empty_like(w) for w in m.all_weights], [np.empty_like(b) for b in m.all_biases])
    return {
        "toy_forward": lambda: bc.toy_forward(e.x, e.beta, e.omega),
        "toy_backward": lambda: bc.toy_backward(e.x, e.y, e.beta, e.omega),
        "forward": lambda: bc.forward(m.net_input, m.all_weights, m.all_biases),
        "backward": lambda: bc.backward(m.all_weights, m.all_biases, f, h, m.y),
        "gradients": lambda: bc.gradients(m.net_input, m.y, m.all_weights, m.all_biases),
        "toy_gradients": lambda: bc.toy_gradients(e.x, e.y, e.beta, e.omega),
        "MLP.gradients": lambda: model.gradients(m.net_input, m.y),
        "MLP.gradients out": lambda: model.gradients(m.net_input, m.y, out=out),
        "MLP.forward": lambda: model.forward(m.net_input),
        "MLP()": lambda: bc.MLP(m.all_weights, m.all_biases),
        "converted": lambda: bc.gradients(m.net_input.tolist(), 30, m.all_weights, m.all_biases),
        "bad input": lambda: pytest.raises(ValueError, bc.gradients, m.net_input, m.y, m.all_weights, m.all_biases[:2]),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("name", list(_calls()))
def test_100k_calls_leave_resident_memory_flat(name):
    call = _calls()[name]
    for _ in range(10_000):  # warm up allocator pools
        call()
    before = _rss_bytes()
    for _ in range(100_000):
        call()
    grown = _rss_bytes() - before
    # A leak of even one small array per call would be > 8 MB here.
    assert grown < 2 * 2**20, f"{name}: resident memory grew by {grown / 2**20:.1f} MiB"


def test_threads_give_results_identical_to_serial():
    rng = np.random.default_rng(9)
    jobs = []
    for i in range(64):
        dims = [4, 16, 8, 3]
        W = [rng.normal(size=(dims[k + 1], dims[k])) for k in range(3)]
        b = [rng.normal(size=(d, 1)) for d in dims[1:]]
        x, y = rng.normal(size=(4, 50 + i)), rng.normal(size=(3, 50 + i))
        jobs.append((x, y, W, b))
    toy_x = [rng.uniform(-1, 1, 1000 + i) for i in range(64)]
    e = toy_example()

    def work(i):
        return bc.gradients(*jobs[i]), bc.toy_backward(toy_x[i], 0.5, e.beta, e.omega)

    serial = [work(i) for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(work, range(64)))
    for (g1, t1), (g2, t2) in zip(serial, parallel):
        assert g1[0] == g2[0]
        for a, c in zip(g1[1] + g1[2], g2[1] + g2[2]):
            np.testing.assert_array_equal(a, c)
        for a, c in zip(t1, t2):
            np.testing.assert_array_equal(a, c)


def test_gil_is_released_during_native_compute():
    """While a long native call runs in one thread, another Python thread keeps running."""
    e = toy_example()
    x = np.linspace(-1, 1, 4_000_000)
    acts = ("sin", "exp", "cos") * 6
    beta, omega = np.tile(e.beta, 6)[:19] * 0.1, np.tile(e.omega, 6)[:19] * 0.1
    t0 = time.perf_counter()
    bc.toy_backward(x, 0.0, beta, omega, activations=acts)
    duration = time.perf_counter() - t0
    assert duration > 0.05, "the native call must be long enough to observe"

    done = threading.Event()
    ticks: list[float] = []

    def native():
        bc.toy_backward(x, 0.0, beta, omega, activations=acts)
        done.set()

    t = threading.Thread(target=native)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    ticks.append(time.perf_counter())
    gaps = np.diff([start, *ticks])
    # Holding the GIL would freeze this loop for the whole call.
    assert gaps.max() < 0.5 * duration, (gaps.max(), duration)


# Large enough that forward/backward cut every product into several BLAS tiles on the thread
# pool, and that gradients() deals 16 blocks of samples to 8 groups (two blocks a group).
_BIG_DIMS = [64, 600, 256, 10]
_BIG_N = 3000


def _big_jobs():
    rng = np.random.default_rng(21)
    jobs = []
    for dtype in (np.float32, np.float64):
        W = [(rng.normal(size=(o, i)) / np.sqrt(i)).astype(dtype) for i, o in zip(_BIG_DIMS, _BIG_DIMS[1:])]
        b = [rng.normal(size=(o, 1)).astype(dtype) for o in _BIG_DIMS[1:]]
        x = rng.normal(size=(_BIG_DIMS[0], _BIG_N)).astype(dtype)
        y = rng.normal(size=(_BIG_DIMS[-1], _BIG_N)).astype(dtype)
        jobs.append((x, y, W, b))
    return jobs


def _big_results() -> list[str]:
    """Every result of large calls, MLP gradients and the toy chain over many samples, as the
    SHA-256 of its bytes (so that results from other processes travel small)."""
    out: list[bytes] = []
    for x, y, W, b in _big_jobs():
        loss, dW, db = bc.gradients(x, y, W, b)  # in blocks of samples
        out.append(np.asarray(loss).tobytes() + b"".join(a.tobytes() for a in dW + db))
        _, f, h = bc.forward(x, W, b)  # layer by layer, in tiles
        dW, db = bc.backward(W, b, f, h, y)
        out.append(b"".join(a.tobytes() for a in f + h[1:] + dW + db))
    e = toy_example()
    xs = np.random.default_rng(5).uniform(-1, 1, 300_000)
    loss, dbeta, domega = bc.toy_gradients(xs, 0.25, e.beta, e.omega)
    out.append(np.asarray(loss).tobytes() + dbeta.tobytes() + domega.tobytes())
    full = bc.toy_backward(xs.astype(np.float32), np.float32(0.25), e.beta.astype(np.float32), e.omega.astype(np.float32))
    out.append(b"".join(np.asarray(a).tobytes() for a in full))
    out.append(b"".join(a.tobytes() for a in bc.toy_forward(xs, e.beta, e.omega)))
    # training: minibatches of 64 taken in two shards (two threads when allowed), the last of 40
    # too, and a network whose layers use the pool's tasks instead
    for dtype in (np.float32, np.float64):
        for widths, batch in (([1, 32, 32, 32, 1], 64), ([8, 600, 300, 2], 512)):
            rng = np.random.default_rng(8)
            x = rng.uniform(-1, 1, (widths[0], 1000)).astype(dtype)
            y = np.sin(3 * x[:1]) * np.ones((widths[-1], 1), dtype)
            model = bc.MLP.from_widths(widths, init="he", seed=3, dtype=dtype)
            history = model.fit(x, y, optimizer="adam", learning_rate=1e-3, batch_size=batch,
                                epochs=2, alpha=1e-4, seed=1)
            out.append(b"".join(a.tobytes() for a in model.weights + model.biases)
                       + np.asarray(history.loss).tobytes())
    return [hashlib.sha256(o).hexdigest() for o in out]


_CHILD = """
import sys
sys.path[:0] = {path!r}
import test_hygiene, backprop_core._core as c
assert c.threads() == {threads}, c.threads()
sys.stdout.write(repr(test_hygiene._big_results()))
"""


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_results_do_not_depend_on_the_number_of_threads(threads):
    import ast
    import os
    import subprocess

    env = dict(os.environ, BACKPROP_CORE_NUM_THREADS=str(threads))
    code = _CHILD.format(path=sys.path, threads=threads)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert ast.literal_eval(run.stdout) == _big_results()


def test_large_calls_from_many_threads_match_serial():
    """Concurrent large calls share the pool (or run on their own thread): same bits."""
    serial = _big_results()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for got in pool.map(lambda _: _big_results(), range(8)):
            assert got == serial


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_computes_the_same():
    """After fork() the child has no pool workers; it must start its own, not wait forever."""
    import multiprocessing

    expected = _big_results()  # starts the pool in this process first
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.apply_async(_big_results).get(timeout=120)
    assert got == expected


def _at_offset(a: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts ``offset`` elements past a 64-byte boundary."""
    raw = np.empty(a.nbytes + (offset + 16) * a.itemsize + 64, np.uint8)
    start = -raw.ctypes.data % 64 + offset * a.itemsize
    out = raw[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("offset", [0, 1, 3, 5])
def test_results_do_not_depend_on_where_the_arrays_lie(offset):
    """The same values at other addresses (other alignments) give the same bits: a BLAS may take
    other code paths for other alignments (oneMKL does unless told not to)."""
    for x, y, W, b in _big_jobs():
        moved = [_at_offset(a, offset) for a in (x, y, *W, *b)]
        # each copy really lies at the alignment asked for (0 is 64-byte aligned)
        assert all(m.ctypes.data % 64 == offset * m.itemsize % 64 for m in moved)
        assert all(m.flags.c_contiguous and np.array_equal(m, a) for m, a in zip(moved, (x, y, *W, *b)))
        want = bc.gradients(x, y, W, b)
        got = bc.gradients(moved[0], moved[1], moved[2 : 2 + len(W)], moved[2 + len(W) :])
        assert np.asarray(got[0]).tobytes() == np.asarray(want[0]).tobytes()
        for g, w in zip(got[1] + got[2], want[1] + want[2]):
            assert g.tobytes() == w.tobytes()


_THREADS_CHILD = (
    "import json, os, warnings\n"
    "with warnings.catch_warnings(record=True) as w:\n"
    "    warnings.simplefilter('always')\n"
    "    import backprop_core._core as c, backprop_core\n"
    "print(json.dumps([c.threads(), len(os.sched_getaffinity(0)),\n"
    "                  [(x.category.__name__, str(x.message)) for x in w]]))\n"
)


def _import_with_threads(value: str) -> tuple[int, int, list[list[str]]]:
    """Import backprop_core with BACKPROP_CORE_NUM_THREADS=value in a fresh process: the core's
    thread count, the CPUs the process may use, and the warnings the import gave."""
    import json
    import os
    import subprocess

    env = dict(os.environ, BACKPROP_CORE_NUM_THREADS=value)
    run = subprocess.run(
        [sys.executable, "-c", _THREADS_CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr  # the import never breaks
    threads, cpus, warned = json.loads(run.stdout)
    return threads, cpus, warned


# Values the core ignores (it reads ASCII digits only, at least 1): other scripts' digits (which
# str.isdigit accepts and int() reads or rejects), signs, spaces, exponents, zero.
_IGNORED = ["³", "３", "٣", "߃", "३", "3³", "", " 3", "3 ", "+3", "-1", "0", "000", "1e3", "3.0",
            "0x10", "two", "2x", "1_000", "\udcff"]  # fmt: skip


@pytest.mark.parametrize("value", _IGNORED, ids=[ascii(v) for v in _IGNORED])
def test_a_bad_thread_count_is_ignored_with_a_warning(value):
    threads, cpus, warned = _import_with_threads(value)
    assert threads == min(cpus, 256)  # the core ignored it
    assert warned == [
        [
            "RuntimeWarning",
            f"BACKPROP_CORE_NUM_THREADS={value!r} is not a positive integer in ASCII digits and "
            "is ignored: backprop_core uses the CPUs this process may run on",
        ]
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("3", 3), ("0003", 3), ("256", 256), ("0256", 256), ("257", 256), ("1000", 256),
     ("9" * 40, 256), ("1" + "0" * 39, 256), ("7" * 5000, 256)],
    ids=lambda v: v if isinstance(v, int) or len(v) < 8 else f"{len(v)} digits",
)  # fmt: skip
def test_a_thread_count_in_ascii_digits_is_used_as_the_core_reads_it(value, expected):
    threads, _, warned = _import_with_threads(value)
    assert threads == expected
    capped = [["RuntimeWarning", f"BACKPROP_CORE_NUM_THREADS={value!r} is more than 256: "
               "backprop_core uses 256 threads"]]  # fmt: skip
    assert warned == (capped if len(value.lstrip("0")) > 3 or int(value) > 256 else [])


def test_small_calls_stay_on_the_calling_thread():
    """Waking a worker costs more than a small call: the pool must not even start for them
    (its threads start on the first large call)."""
    import subprocess

    code = (
        "import os, numpy as np, backprop_core as bc\n"
        "from backprop_core.examples import mlp_example, toy_example\n"
        "def threads(): return len(os.listdir('/proc/self/task'))\n"
        "e, t = mlp_example(), toy_example()\n"
        "before = threads()\n"
        "for _ in range(50):\n"
        "    bc.gradients(e.net_input, e.y, e.all_weights, e.all_biases)\n"
        "    bc.MLP(e.all_weights, e.all_biases).gradients(e.net_input, e.y)\n"
        "    bc.toy_backward(np.linspace(-1, 1, 1000), 0.5, t.beta, t.omega)\n"
        "small = threads()\n"
        "big = np.ones((256, 256))\n"
        "bc.gradients(np.ones((256, 4096)), 0.0, [big, big], [np.ones(256)] * 2)\n"
        "print(before, small, threads())\n"
    )
    env = dict(__import__("os").environ, BACKPROP_CORE_NUM_THREADS="3")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    before, small, after = map(int, run.stdout.split())
    assert small == before, "small calls started the pool"
    assert after == before + 2, "a large call should start the pool's 2 workers"


def test_exit_after_the_dtype_policy_ran():
    """A call that goes through the dtype policy (backprop_core._dtype.normalize, from C++) must
    not crash the interpreter's exit, even when the module has let go of the function: a static
    py::object in the bindings freed it after finalisation (Fatal Python error, exit code 134);
    pytest tests/test_cli.py tests/test_package.py did so."""
    import subprocess

    code = (
        "import sys, numpy as np, backprop_core as bc, backprop_core._dtype as d\n"
        "loss = bc.toy_backward(np.array([1, 2, 3]), 0, [1.0, 2.0], [1.0, 2.0], activations=['sin']).loss\n"
        "loss2 = bc.gradients(np.ones((2, 3), np.int64), 0, [np.ones((1, 2))], [np.ones(1)]).loss\n"
        "del d.normalize, d\n"
        "del sys.modules['backprop_core._dtype']\n"
        "print(float(loss), float(loss2))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    want = bc.reference.toy_backward(np.array([1.0, 2.0, 3.0]), 0.0, [1.0, 2.0], [1.0, 2.0], activations=["sin"]).loss
    want2 = bc.reference.gradients(np.ones((2, 3)), 0.0, [np.ones((1, 2))], [np.ones(1)])[0]
    assert run.stdout.split() == [repr(float(want)), repr(float(want2))]
