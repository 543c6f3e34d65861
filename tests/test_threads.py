"""The native pool's size at run time: backprop_core.set_num_threads / get_num_threads and the
threadpoolctl controller. Results never depend on the count; the count decides only how many
threads work (the pool starts workers when a larger count first needs them, and a smaller count
leaves the others asleep)."""

from __future__ import annotations

import os
import subprocess
import sys

import backprop_core as bc
import numpy as np
import pytest
from backprop_core import _core


@pytest.fixture
def restore_threads():
    before = bc.get_num_threads()
    yield
    bc.set_num_threads(before)


def test_set_and_get(restore_threads):
    for n in (1, 3, 2, np.int64(5)):
        bc.set_num_threads(n)
        assert bc.get_num_threads() == int(n) == _core.threads()
    bc.set_num_threads(10_000)
    assert bc.get_num_threads() == 256  # capped, as BACKPROP_CORE_NUM_THREADS is


@pytest.mark.parametrize("bad", [True, 2.0, "2", None, np.bool_(True)])
def test_a_non_int_count_is_a_type_error(bad, restore_threads):
    before = bc.get_num_threads()
    with pytest.raises(TypeError, match=r"^n: expected an int number of threads, got "):
        bc.set_num_threads(bad)
    assert bc.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1, np.int32(-3)])
def test_a_count_below_one_is_a_value_error(bad, restore_threads):
    before = bc.get_num_threads()
    with pytest.raises(ValueError, match=rf"^n: expected a number of threads >= 1, got {int(bad)}$"):
        bc.set_num_threads(bad)
    assert bc.get_num_threads() == before
    with pytest.raises(ValueError, match="n: expected a number of threads >= 1"):
        _core.set_threads(0)


def test_results_do_not_depend_on_the_count_set_at_run_time(restore_threads):
    import test_hygiene

    bc.set_num_threads(1)
    one = test_hygiene._big_results()
    for n in (2, 3, 5, 1):
        bc.set_num_threads(n)
        assert test_hygiene._big_results() == one, n


# In a child process started with one thread: the count set at run time decides how many workers
# start and which of them work. A worker's CPU time is read from /proc (clock ticks).
_WORKERS = """
import os, numpy as np, backprop_core as bc
def cpu():
    out = {}
    for tid in os.listdir('/proc/self/task'):
        if int(tid) != os.getpid():
            with open(f'/proc/self/task/{tid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            out[tid] = int(fields[11]) + int(fields[12])  # utime + stime
    return out
big = np.ones((256, 256))
def large():
    for _ in range(8):
        bc.gradients(np.ones((256, 4096)), 0.0, [big, big], [np.ones(256)] * 2)
start = cpu()
large()                       # 1 thread: no worker starts
after_one = cpu()
bc.set_num_threads(3)
large()                       # 3 threads: 2 workers start and work
after_three = cpu()
bc.set_num_threads(1)
large()                       # back to 1: the workers stay asleep
after_back = cpu()
started = sorted(set(after_three) - set(start))
print(len(after_one) - len(start), len(started),
      sum(after_three[t] > 0 for t in started),
      sum(after_back[t] - after_three[t] for t in started))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads threads from /proc (Linux)")
def test_workers_start_and_sleep_as_the_count_says():
    env = dict(os.environ, BACKPROP_CORE_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", _WORKERS], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    started_at_one, started_at_three, worked, cpu_after = map(int, run.stdout.split())
    assert started_at_one == 0, "a large call with 1 thread started workers"
    assert started_at_three == 2, "set_num_threads(3) should start 2 workers on the next large call"
    assert worked == 2, "both workers should have worked with 3 threads"
    assert cpu_after == 0, "workers used CPU after set_num_threads(1)"


def test_threadpoolctl_sees_and_limits_the_pool(restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    bc.set_num_threads(3)
    ours = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "backprop_core"]
    assert len(ours) == 1, threadpoolctl.threadpool_info()
    assert os.path.samefile(ours[0]["filepath"], _core.__file__)
    assert ours[0]["num_threads"] == 3 and ours[0]["version"] == bc.__version__
    with threadpoolctl.threadpool_limits(1):
        assert bc.get_num_threads() == 1
    assert bc.get_num_threads() == 3
    with threadpoolctl.threadpool_limits(limits=2, user_api="backprop_core"):
        assert bc.get_num_threads() == 2
    assert bc.get_num_threads() == 3
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):  # others' pools only
        assert bc.get_num_threads() == 3
