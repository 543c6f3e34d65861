#!/usr/bin/env bash
# Installs a repaired wheel into a fresh venv in which no compiler can be found, and runs the
# test suite against that installed package: the proof that the wheel installs and works on a
# machine without a C++ toolchain.
#
# Usage: scripts/test_wheel.sh [WHEEL]
#   PYTHON=python3.X   the interpreter whose venv is made (default python3); without WHEEL, the
#                      wheel for its version in wheelhouse/ (made by scripts/build_wheel.sh)
#   NUMPY=SPEC         a numpy requirement to test with, e.g. "numpy==2.0.*" for the oldest allowed
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
PYTHON=${PYTHON:-python3}

wheel=${1:-}
if [[ -z $wheel ]]; then
    tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    wheels=(wheelhouse/backprop_core-*-"$tag"-"$tag"-manylinux*.whl)
    if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
        echo "expected one $tag manylinux wheel in wheelhouse/, found: ${wheels[*]}" >&2
        echo "(scripts/build_wheel.sh makes it)" >&2
        exit 1
    fi
    wheel=${wheels[0]}
fi
wheel=$(realpath "$wheel")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
python="$work/venv/bin/python"

# The environment every step below runs in: PATH holds only the venv's own bin (python, pip and
# the scripts the wheels install), so gcc, g++, cc, c++, cmake and ninja cannot be found; CC and
# CXX point at /bin/false in case anything looks there. PYTHONPATH is dropped so only the venv's
# packages are importable.
no_compiler=(env -u PYTHONPATH -u PYTHONHOME PATH="$work/venv/bin" CC=/bin/false CXX=/bin/false)

"${no_compiler[@]}" "$python" - <<'EOF'
import shutil, sys
tools = ("gcc", "g++", "cc", "c++", "clang", "clang++", "cmake", "ninja", "make")
found = {t: shutil.which(t) for t in tools if shutil.which(t)}
sys.exit(f"a build tool is on PATH: {found}" if found else 0)
EOF
echo "no compiler or build tool on PATH"

# Binaries only, and no build isolation, so no sdist can be built even if one were chosen: the
# wheel with its test extra (read from the wheel's own metadata: pytest, hypothesis, mpmath,
# mypy, matplotlib) and numpy, all from wheels.
"${no_compiler[@]}" "$python" -m pip install -q --upgrade pip
"${no_compiler[@]}" "$python" -m pip install --no-build-isolation --only-binary=:all: "$wheel[test]" \
    ${NUMPY:+"$NUMPY"}
"${no_compiler[@]}" "$python" -c 'import sys, numpy; print("Python", sys.version.split()[0], "numpy", numpy.__version__)'

# From tests/, whose sys.path entries (the cwd, pytest's pythonpath = tests) hold no package, so
# `import backprop_core` must find the installed wheel; say where it came from, and fail if not.
cd "$repo/tests"
"${no_compiler[@]}" "$python" - "$work/venv" <<'EOF'
import sys
from pathlib import Path
import backprop_core, backprop_core._core as core
venv = Path(sys.argv[1]).resolve()
for module in (backprop_core, core):
    where = Path(module.__file__).resolve()
    print(f"{module.__name__}: {where}")
    if venv not in where.parents:
        sys.exit(f"{module.__name__} imported from outside the test venv: {where}")
EOF
"${no_compiler[@]}" "$python" -m pytest -q
