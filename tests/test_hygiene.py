"""Native-code hygiene: no leaks, the GIL released, thread safety."""

from __future__ import annotations

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
    bc.toy_backward(x, 0.0, beta, omega, acts)
    duration = time.perf_counter() - t0
    assert duration > 0.05, "the native call must be long enough to observe"

    done = threading.Event()
    ticks: list[float] = []

    def native():
        bc.toy_backward(x, 0.0, beta, omega, acts)
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
