#!/usr/bin/env bash
# The C++ core's own tests (tests/cpp/), no Python and no BLAS, so every memory access is
# instrumented: the thread pool under ThreadSanitizer, the tiling of large products, the
# notebooks' numbers and the training loop (against a naive second implementation) under
# AddressSanitizer and UndefinedBehaviorSanitizer (and the loop's two threads under
# ThreadSanitizer). Any finding or wrong result fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/cpp-tests
mkdir -p "$out"
cxx=${CXX:-g++}
$cxx -std=c++17 -O1 -g -fsanitize=thread -Icpp/include tests/cpp/test_parallel.cpp \
    -o "$out/test_parallel" -lpthread
$cxx -std=c++17 -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -Icpp/include tests/cpp/test_tiling.cpp -o "$out/test_tiling"
# The notebooks' numbers and finite differences from the core alone.
$cxx -std=c++17 -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -Icpp/include tests/cpp/test_notebooks.cpp -o "$out/test_notebooks" -lpthread
"$out/test_notebooks"
# 3 threads whatever the machine has; the forked child starts threads after the parent's threads
# exist, which ThreadSanitizer allows only with die_after_fork=0.
BACKPROP_CORE_NUM_THREADS=3 TSAN_OPTIONS=halt_on_error=1:die_after_fork=0 "$out/test_parallel"
"$out/test_tiling"
# The small products' kernels (small_gemm.hpp) at each vector width, whatever this CPU has.
for bytes in 16 32 64; do
    $cxx -std=c++17 -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        -DBACKPROP_CORE_VECTOR_BYTES=$bytes -Icpp/include tests/cpp/test_small_gemm.cpp \
        -o "$out/test_small_gemm_$bytes" -lpthread
    "$out/test_small_gemm_$bytes"
done
# The training loop (train.hpp) against a naive second implementation, step by step.
$cxx -std=c++17 -O2 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -Icpp/include tests/cpp/test_train.cpp -o "$out/test_train" -lpthread
"$out/test_train"
# ... and with its minibatches' two shards on two threads, under ThreadSanitizer.
$cxx -std=c++17 -O1 -g -fsanitize=thread -Icpp/include tests/cpp/test_train.cpp \
    -o "$out/test_train_tsan" -lpthread
BACKPROP_CORE_NUM_THREADS=2 TSAN_OPTIONS=halt_on_error=1 "$out/test_train_tsan"
