"""Runs the probes of ``_adversarial_child`` in child processes and reports each on its own.

Probes are registered while the tests are collected; the first test that asks for a result runs
them all, grouped several to a process (two processes at a time). A probe that crashes its
process (a signal) or hangs (the child's faulthandler watchdog fires) is reported as such, and
the probes after it run again in a fresh process, so one crash never hides another result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DRIVER = f"import sys; sys.path.insert(0, {str(HERE)!r}); import _adversarial_child as c; c.main()"
WORKERS = 2
CHUNK = 30  # probes per process in a shared group


@dataclass(frozen=True)
class Probe:
    id: str
    func: str
    kwargs: dict = field(default_factory=dict, hash=False, compare=False)
    group: str = "shared"  # probes of one group share processes; "" gives a process of its own
    timeout: float = 30.0
    env: tuple = ()  # (name, value) pairs; value None unsets the variable


class Runner:
    def __init__(self) -> None:
        self.probes: dict[str, Probe] = {}
        self.results: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.ran = False
        self.selected: set[str] | None = None  # None: all

    def select(self, pids: set[str]) -> None:
        """Run only these probes (the ones the selected tests ask for)."""
        self.selected = set(pids)

    def add(self, probe: Probe) -> str:
        assert probe.id not in self.probes, probe.id
        self.probes[probe.id] = probe
        return probe.id

    def result(self, pid: str) -> dict:
        with self.lock:
            if not self.ran:
                self.ran = True
                self._run_all()
        return self.results[pid]

    def _run_all(self) -> None:
        groups: dict[tuple, list[Probe]] = {}
        for p in self.probes.values():
            if self.selected is not None and p.id not in self.selected:
                continue
            key = (p.group or p.id, p.env)
            groups.setdefault(key, []).append(p)
        batches = []
        for probes in groups.values():
            for i in range(0, len(probes), CHUNK):
                batches.append(probes[i : i + CHUNK])
        batches.sort(key=lambda b: -sum(p.timeout for p in b))  # long batches first
        with ThreadPoolExecutor(WORKERS) as pool:
            for part in pool.map(run_batch, batches):
                self.results.update(part)


def child_env(pairs: tuple) -> dict:
    env = dict(os.environ)
    env.pop("BACKPROP_CORE_NUM_THREADS", None)
    env.pop("PYTHONWARNINGS", None)
    for name, value in pairs:
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_batch(probes: list[Probe]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    todo = list(probes)
    while todo:
        payload = json.dumps([[p.id, p.func, p.kwargs, p.timeout] for p in todo])
        budget = sum(p.timeout for p in todo) + 30
        try:
            proc = subprocess.run(
                [sys.executable, "-c", DRIVER], input=payload, capture_output=True, text=True,
                timeout=budget, env=child_env(todo[0].env), cwd=tempfile.gettempdir(),
                errors="backslashreplace",
            )
            out, err, rc, timed_out = proc.stdout, proc.stderr, proc.returncode, False
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            rc, timed_out = None, True
        started = None
        for line in out.splitlines():
            if line.startswith("START "):
                started = json.loads(line[6:])
            elif line.startswith("DONE "):
                pid, _, rest = line[5:].partition(" ")
                results[json.loads(pid)] = json.loads(rest)
                started = None
        remaining = [p for p in todo if p.id not in results]
        if not remaining:
            break
        if started is None:  # the process died outside any probe: blame them all
            for p in remaining:
                results[p.id] = {"status": "died", "returncode": rc, "stderr": err[-4000:]}
            break
        if timed_out or "Timeout (" in err:
            status = "hang"
        elif rc is not None and rc < 0:
            status = "crash"
        else:
            status = "died"
        results[started] = {"status": status, "returncode": rc, "stderr": err[-4000:]}
        todo = [p for p in remaining if p.id != started]
    return results


RUNNER = Runner()


def add(pid: str, func: str, group: str = "shared", timeout: float = 30.0, env: tuple = (),
        **kwargs: Any) -> str:
    return RUNNER.add(Probe(pid, func, kwargs, group, timeout, env))


def check(pid: str) -> Any:
    """The probe's value; fails the test with the crash, hang or exception otherwise."""
    r = RUNNER.result(pid) if pid in RUNNER.results or RUNNER.selected is None or pid in RUNNER.selected else None
    if r is None:  # a probe outside the selection: run it alone
        r = run_batch([RUNNER.probes[pid]])[pid]
    if r["status"] == "ok":
        return r["value"]
    if r["status"] == "raised":
        raise AssertionError(f"{pid}: {r['type']}: {r['message']}\n--- child traceback ---\n{r['traceback']}")
    what = {"crash": "CRASHED the interpreter (signal)", "hang": "HUNG (watchdog timeout)",
            "died": "ended the interpreter"}[r["status"]]
    raise AssertionError(f"{pid}: {what}, return code {r['returncode']}\n--- stderr ---\n{r['stderr']}")
