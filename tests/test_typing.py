"""The public API's types, as a user's type checker sees them: a typed user script passes
``mypy --strict``, and the dtype of the arrays flows to the named results (float32 in, float32
out), so a script that confuses the two dtypes fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

USER_SCRIPT = '''
from __future__ import annotations

import numpy as np
import numpy.typing as npt

import backprop_core as bc

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

x64: F64 = np.ones((2, 5))
W64: list[F64] = [np.ones((3, 2)), np.ones((1, 3))]
b64: list[F64] = [np.zeros((3, 1)), np.zeros((1, 1))]
g = bc.gradients(x64, 0.5, W64, b64, relu_grad_at_zero=0.0)
loss: np.float64 = g.loss
dW: list[F64] = g.all_dl_dweights
out, all_f, all_h = bc.forward(x64, W64, b64)
first: F64 = all_f[0]
back = bc.backward(W64, b64, all_f, all_h, 0.5)
db: list[F64] = back.all_dl_dbiases

x32 = x64.astype(np.float32)
W32 = [w.astype(np.float32) for w in W64]
b32 = [c.astype(np.float32) for c in b64]
loss32: np.float32 = bc.gradients(x32, 0.5, W32, b32).loss

beta: F64 = np.array([1.0, 2.0, -3.0, 0.4])
omega: F64 = np.array([0.1, -0.4, 2.0, 3.0])
t = bc.toy_backward(2.3, 2.0, beta, omega, activations=("sin", "exp", "cos"))
dl_dbeta: F64 = t.dl_dbeta
fw = bc.toy_forward(2.3, beta, omega)
h: F64 = fw.h
tg = bc.toy_gradients(np.linspace(-1.0, 1.0, 5), 0.0, beta, omega)
tl: np.float64 = tg.loss

m = bc.MLP(W64, b64)
mg = m.gradients(x64, 0.5, out=None)
print(m.dims, m.dtype, float(mg.loss), loss, dW, first, db, loss32, dl_dbeta, h, tl)
'''

WRONG_SCRIPT = '''
import numpy as np
import numpy.typing as npt

import backprop_core as bc

x32 = np.ones((2, 5), np.float32)
W32 = [np.ones((3, 2), np.float32), np.ones((1, 3), np.float32)]
b32 = [np.zeros((3, 1), np.float32), np.zeros((1, 1), np.float32)]
loss: np.float64 = bc.gradients(x32, 0.5, W32, b32).loss
bc.gradients(x32, 0.5, W32, b32, 0.0)
'''


def _mypy(script: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.py"
    path.write_text(script)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    cmd = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
           "--cache-dir", str(tmp_path / "cache"), str(path)]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_typed_user_script_passes_mypy_strict_and_a_wrong_one_fails(tmp_path: Path) -> None:
    ok = _mypy(USER_SCRIPT, tmp_path, "user")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The same script runs.
    run = subprocess.run([sys.executable, str(tmp_path / "user.py")], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    wrong = _mypy(WRONG_SCRIPT, tmp_path, "wrong")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    # (numpy's stubs spell float64 "float64" or "floating[_64Bit]" by version)
    assert re.search(
        r'wrong\.py:10: error: Incompatible types in assignment \(expression has type '
        r'"(floating\[_32Bit\]|float32)", variable has type "(float64|floating\[_64Bit\])"\)',
        wrong.stdout,
    ), wrong.stdout
    assert "wrong.py:10: error" in wrong.stdout  # float32 results into a float64 variable
    assert "wrong.py:11: error" in wrong.stdout  # an option given by position
