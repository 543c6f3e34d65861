#!/usr/bin/env bash
# Installs the cp39 wheel in an old userland and runs the test suite there: a Debian 11
# (bullseye: glibc 2.31, Python 3.9) root made with debootstrap from Debian's packages, entered
# with chroot, where Debian's own python3 makes a venv and Debian's own pip installs the wheel
# and the test extra. The proof that the manylinux wheels install and work on a system older
# than the one they were built on, with no compiler (the root has none).
#
# Usage: scripts/test_wheel_debian.sh [WHEEL]
#   WHEEL   default: the cp39 wheel in wheelhouse/ (made by scripts/build_wheel.sh)
#   DEBIAN_ROOT=DIR   reuse (or make, and keep) the root in DIR instead of a throwaway one
#
# Needs root (debootstrap, chroot and mounts do), and debootstrap, which it installs with
# apt-get if missing. Exits 0 with a message saying so when it cannot run: not root, no
# debootstrap to be had, or no chroot allowed (CI then reports the step as skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
SUITE=bullseye

skip() { echo "SKIPPED: the Debian 11 wheel test cannot run here: $*"; exit 0; }

wheel=${1:-}
if [[ -z $wheel ]]; then
    wheels=(wheelhouse/backprop_core-*-cp39-cp39-manylinux*.whl)
    if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
        echo "expected one cp39 manylinux wheel in wheelhouse/, found: ${wheels[*]}" >&2
        echo "(scripts/build_wheel.sh makes it)" >&2
        exit 1
    fi
    wheel=${wheels[0]}
fi
wheel=$(realpath "$wheel")

[[ $(id -u) -eq 0 ]] || skip "not root"
if ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || skip "no debootstrap and no apt-get to install it"
    apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null ||
        skip "debootstrap could not be installed"
fi

if [[ -n ${DEBIAN_ROOT:-} ]]; then
    root=$DEBIAN_ROOT
    mkdir -p "$root"
else
    root=$(mktemp -d "${TMPDIR:-/var/tmp}/backprop_core-$SUITE.XXXXXX")
fi
mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do umount "$m" || umount -l "$m" || true; done
    [[ -n ${DEBIAN_ROOT:-} ]] || rm -rf --one-file-system "$root"
}
trap cleanup EXIT

# The root: a minimal Debian 11 with its python3, venv module and CA certificates, from
# debootstrap's default mirror.
if [[ ! -x $root/usr/bin/python3 ]]; then
    echo "making a Debian $SUITE root in $root (debootstrap) ..."
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$root" >"$root.debootstrap.log" 2>&1 || {
        tail -n 20 "$root.debootstrap.log" >&2
        echo "debootstrap $SUITE failed (log above): the suite may have left the default mirror" >&2
        exit 1
    }
    rm -f "$root.debootstrap.log"
fi

# What the suite needs inside: the wheel, and the repository's tracked files (tests/ with the
# pytest configuration in pyproject.toml, and the README and docs some tests read); name
# resolution and this machine's CA bundle, so that pip reaches the package index as it does here.
work=$root/tmp/backprop_core
rm -rf "$work" && mkdir -p "$work/src"
cp "$wheel" "$work/"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work/src"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$work/ca-bundle.crt"
mount -t proc proc "$root/proc" && mounted=("$root/proc" "${mounted[@]}") ||
    skip "cannot mount /proc in the root (no chroot allowed)"
mkdir -p "$root/dev/shm"  # multiprocessing's semaphores
mount -t tmpfs shm "$root/dev/shm" && mounted=("$root/dev/shm" "${mounted[@]}")

# Only Debian's python3 and pip 20.3 (no upgrade): the wheel's tag must be one they accept.
chroot "$root" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    PIP_CERT=/tmp/backprop_core/ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WHEEL="/tmp/backprop_core/$(basename "$wheel")" sh -euc '
    . /etc/os-release && echo "in the root: $PRETTY_NAME, $(ldd --version | head -n 1)"
    for tool in gcc g++ cc c++ clang cmake; do
        if command -v "$tool" >/dev/null; then echo "$tool found in the root" >&2; exit 1; fi
    done
    echo "no compiler in the root"
    rm -rf /tmp/venv && python3 -m venv /tmp/venv
    /tmp/venv/bin/python -m pip --version
    /tmp/venv/bin/python -m pip install -q --only-binary=:all: "$WHEEL[test]"
    /tmp/venv/bin/python -c "import platform, sys, numpy, backprop_core as bc, backprop_core._core as c
print(\"Python\", sys.version.split()[0], \"glibc\", platform.libc_ver()[1], \"numpy\", numpy.__version__,
      \"backprop_core\", bc.__version__, \"from\", bc.__file__, \"BLAS:\", c.blas())"
    cd /tmp/backprop_core/src/tests && /tmp/venv/bin/python -m pytest -q -p no:cacheprovider
'
