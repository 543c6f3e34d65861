#!/usr/bin/env bash
# The C++ thread pool (cpp/include/backprop_core/parallel.hpp) under ThreadSanitizer, on its own:
# no Python and no BLAS, so every memory access is instrumented. Any data race aborts the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/tsan
mkdir -p "$out"
${CXX:-g++} -std=c++17 -O1 -g -fsanitize=thread -Icpp/include tests/cpp/test_parallel.cpp \
    -o "$out/test_parallel" -lpthread
# 3 threads whatever the machine has; the forked child starts threads after the parent's threads
# exist, which ThreadSanitizer allows only with die_after_fork=0.
BACKPROP_CORE_NUM_THREADS=3 TSAN_OPTIONS=halt_on_error=1:die_after_fork=0 "$out/test_parallel"
