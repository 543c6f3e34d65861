// The three matrix products of an affine layer, row-major. Large products go to a CBLAS (oneMKL,
// linked statically, when the build defines BACKPROP_CORE_MKL; OpenBLAS from scipy-openblas32
// when it defines BACKPROP_CORE_CBLAS); small ones run in small_gemm.hpp's register-blocked
// kernels (a BLAS call's packing costs more than their arithmetic), with the bias, ReLU and
// ReLU' passes fused into each tile.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <string>

#include "activations.hpp"
#include "parallel.hpp"
#include "small_gemm.hpp"
#include "vmath.hpp"

#if defined(BACKPROP_CORE_MKL)  // oneMKL, linked statically, sequential
#define BACKPROP_CORE_CBLAS 1
#include <mkl_cblas.h>
#include <mkl_service.h>  // mkl_cbwr_set
#include <mkl_version.h>
#define BACKPROP_CORE_SGEMM cblas_sgemm
#define BACKPROP_CORE_DGEMM cblas_dgemm
#elif defined(BACKPROP_CORE_CBLAS)
#include <cblas.h>  // scipy-openblas32: symbols carry a scipy_ prefix
#define BACKPROP_CORE_SGEMM scipy_cblas_sgemm
#define BACKPROP_CORE_DGEMM scipy_cblas_dgemm
#endif

namespace backprop_core {

// Products with fewer multiply-adds than this stay in the loops below.
inline constexpr std::size_t blas_threshold = 32 * 32 * 32;

inline bool blas_available() {
#if defined(BACKPROP_CORE_CBLAS)
    return true;
#else
    return false;
#endif
}

// The BLAS the core was built with, for reports.
inline std::string blas_name() {
#if defined(BACKPROP_CORE_MKL)
    return "oneMKL " + std::to_string(__INTEL_MKL__) + "." + std::to_string(__INTEL_MKL_MINOR__) +
           " update " + std::to_string(__INTEL_MKL_UPDATE__) + " (static, sequential)";
#elif defined(BACKPROP_CORE_CBLAS)
    return "OpenBLAS (scipy-openblas32)";
#else
    return "none";
#endif
}

// CBLAS takes int sizes: anything from 2^31 up stays in the loops.
inline bool blas_sizes_fit(std::size_t M, std::size_t N, std::size_t K) {
    const std::size_t limit = std::size_t(INT_MAX);
    return M < limit && N < limit && K < limit && M * K < limit && K * N < limit && M * N < limit;
}
inline bool use_blas(std::size_t M, std::size_t N, std::size_t K) {
    return blas_available() && M * N * K >= blas_threshold && blas_sizes_fit(M, N, K);
}

// Small products run in small_gemm.hpp's register-blocked kernels, with the bias and ReLU
// (forward) or ReLU' (backward) applied to each tile in registers. Measured on a 32x32 layer of
// 64 samples (AVX-512): forward 2.0 us against 2.6 us for OpenBLAS's call and the bias pass
// after it, the input gradient 1.9 us against 2.0 us. Weight gradients stay with BLAS (2.2 us
// against 2.0 us for small_nt, whose sums end in reductions across lanes, but 5.7 against 7.1 us
// on a 10x100 layer of 200 samples) unless the layer's input is at hand transposed (mlp.hpp).
// The forward pass of a layer with at most small_layer_weights weights takes them for any batch
// (chosen by shape alone: a sample's output is then the same bits in any batch, as the kernels
// compute each sample alike wherever it stands), in tasks of 512 samples on large batches.
// Measured against OpenBLAS and the bias pass (one thread, AVX-512): 100x64 on 200 samples 35
// against 50 us, 128x128 on 512 237 against 269 us, 128x256 on 512 491 against 531 us.
inline constexpr std::size_t small_layer_weights = 128 * 128;
inline bool small_layer(std::size_t M, std::size_t D) { return M * D <= small_layer_weights; }

// Before the first BLAS call, whichever path makes it: the pool's threads call BLAS, each call
// on one thread (BLAS threads of its own would compete).
inline void blas_setup() {
#if defined(BACKPROP_CORE_MKL)
    // The sequential library has no threads. Conditional numerical reproducibility: without it
    // oneMKL may take other code paths, and give other last bits, for other data alignments.
    static const bool once = (mkl_cbwr_set(MKL_CBWR_AUTO), true);
    (void)once;
#elif defined(BACKPROP_CORE_CBLAS)
    static const bool once = (scipy_openblas_set_num_threads(1), true);
    (void)once;
#endif
}

#if defined(BACKPROP_CORE_CBLAS)
// C = op(A) op(B) (+ C when accumulate), one BLAS call on the calling thread.
inline void cblas_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K,
                       const float* A, std::size_t lda, const float* B, std::size_t ldb,
                       float* C, std::size_t ldc, bool accumulate = false) {
    blas_setup();
    BACKPROP_CORE_SGEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), 1.0f, A,
                        int(lda), B, int(ldb), accumulate ? 1.0f : 0.0f, C, int(ldc));
}
inline void cblas_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K,
                       const double* A, std::size_t lda, const double* B, std::size_t ldb,
                       double* C, std::size_t ldc, bool accumulate = false) {
    blas_setup();
    BACKPROP_CORE_DGEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), 1.0, A,
                        int(lda), B, int(ldb), accumulate ? 1.0 : 0.0, C, int(ldc));
}
#endif

// How a large product's output (M, N) is cut into tiles, from the shape alone: about 2^25
// multiply-adds a tile, 64 tiles at most (smaller tiles measured slower in OpenBLAS), in the
// output's proportions, sides in multiples of 32. Each tile is one single-threaded BLAS call, so
// the result is the same whatever the number of threads. tests/cpp/test_tiling.cpp checks it.
struct Tiling {
    std::size_t rows, cols;  // of a tile (the last ones may be smaller)
    std::size_t down, across;

    Tiling(std::size_t M, std::size_t N, std::size_t K) {
        const double work = double(M) * double(N) * double(K);
        const double tiles = std::min(64.0, work / double(1 << 25));
        if (tiles < 2) {  // one tile: the whole product (and no arithmetic for small ones)
            rows = std::max<std::size_t>(1, M), cols = std::max<std::size_t>(1, N);
            down = M > 0, across = N > 0;
            return;
        }
        // Of the ways to cut rows into d bands and columns into a, with d * a within the aim and
        // sides rounded up to multiples of 32: the most tiles, then the squarest.
        const auto side = [](std::size_t n, std::size_t bands) {
            const std::size_t even = (n + bands - 1) / bands;
            return std::min(n, std::max<std::size_t>(32, (even + 31) / 32 * 32));
        };
        const auto most = std::size_t(tiles);
        std::size_t best = 0;
        double best_shape = 0;
        for (std::size_t d = 1; d <= std::min(most, (M + 31) / 32); ++d) {
            const std::size_t r = side(M, d), c = side(N, std::min(most / d, (N + 31) / 32));
            const std::size_t count = ((M + r - 1) / r) * ((N + c - 1) / c);
            const double shape = std::abs(std::log(double(r) / double(c)));
            if (count > best || (count == best && shape < best_shape))
                best = count, best_shape = shape, rows = r, cols = c;
        }
        down = (M + rows - 1) / rows;
        across = (N + cols - 1) / cols;
    }
};

// C (M, N, row stride N) = op(A) (M, K) op(B) (K, N) as one task a tile, each tile followed by
// epilogue(r0, r1, c0, c1) while it is still in cache. op transposes when ta / tb; lda and ldb
// are the row strides of A and B as stored.
template <class T, class Epilogue>
auto gemm_tasks(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, const T* A,
                std::size_t lda, const T* B, std::size_t ldb, T* C, const Epilogue& epilogue) {
    const Tiling t(M, N, K);
    return task_set(t.down * t.across, [=, &epilogue](std::size_t i) {
        const std::size_t r0 = (i / t.across) * t.rows, c0 = (i % t.across) * t.cols;
        const std::size_t r1 = std::min(M, r0 + t.rows), c1 = std::min(N, c0 + t.cols);
#if defined(BACKPROP_CORE_CBLAS)
        cblas_gemm(ta, tb, r1 - r0, c1 - c0, K, ta ? A + r0 : A + r0 * lda, lda,
                   tb ? B + c0 * ldb : B + c0, ldb, C + r0 * N + c0, N);
#else
        (void)ta, (void)tb, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)C;
#endif
        epilogue(r0, r1, c0, c1);
    }, double(M) * double(N) * double(K));
}

// Epilogues, over rows [r0, r1) and columns [c0, c1) of a row-major output, rows ld apart:
// out += the row's bias, and then (the forward pass)
// - h null: nothing more (the output layer);
// - h == out: out = relu_marked(out) in place (the blocked pass, which keeps h alone);
// - else: h = ReLU(out).
template <class T> struct BiasRelu {
    T* out;
    const T* bias;
    T* h;
    std::size_t ld;

    void operator()(std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1) const {
        rows_pass(out, ld, bias, r0, r1, c0, c1, StoreRelu<T>{out, h, ld});
    }
};

// ... and g *= ReLU'(f), with ReLU'(0) = at_zero (the backward pass): StoreReluGrad's rule
// (marked: f holds relu_marked(f)) applied to g in place.
template <class T> struct ReluMask {
    StoreReluGrad<T> rule;

    void operator()(std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1) const {
        rows_pass(rule.g, rule.ld, static_cast<const T*>(nullptr), r0, r1, c0, c1, rule);
    }
};

// body(i, n) for i = 0, 4, 8, .. with n = 4 (an integral_constant), then for the last rows one
// at a time (n = 1): the one-sample loops below run four independent sums side by side, each
// in its own order.
template <class Body> void rows_by_four(std::size_t count, const Body& body) {
    std::size_t i = 0;
    for (; i + 4 <= count; i += 4) body(i, std::integral_constant<std::size_t, 4>{});
    for (; i < count; ++i) body(i, std::integral_constant<std::size_t, 1>{});
}

// affine() for one sample: out[i] = b[i] + W[i, 0] in[0] + W[i, 1] in[1] + ..., added in that
// order; relu_out as in affine().
template <class T>
void affine_one(const T* W, const T* b, const T* in, std::size_t M, std::size_t D, T* out,
                T* relu_out) {
    rows_by_four(M, [&](std::size_t i, auto n) {
        constexpr std::size_t R = decltype(n)::value;
        T acc[R];
        for (std::size_t r = 0; r < R; ++r) acc[r] = b[i + r];
        for (std::size_t d = 0; d < D; ++d) {
            const T v = in[d];
            for (std::size_t r = 0; r < R; ++r) acc[r] += W[(i + r) * D + d] * v;
        }
        for (std::size_t r = 0; r < R; ++r) {
            if (relu_out == out)
                out[i + r] = relu_marked(acc[r]);
            else if (out[i + r] = acc[r], relu_out)
                relu_out[i + r] = relu(acc[r]);
        }
    });
}

// out (M, N) = W (M, D) in (D, N) + b (M), and relu_out = ReLU(out) when relu_out is not null
// (fused into the pass that adds the bias); relu_out == out keeps relu_marked(out) alone.
template <class T>
void affine(const T* W, const T* b, const T* in, std::size_t M, std::size_t D, std::size_t N,
            T* out, T* relu_out = nullptr) {
    if (N > 1 && (small_layer(M, D) || !use_blas(M, N, D))) {
        const std::size_t cols = 512;  // (a multiple of every vector's lanes)
        return run_together(task_set((N + cols - 1) / cols, [=](std::size_t p) {
            const std::size_t n0 = p * cols, n = std::min(N, n0 + cols) - n0;
            small_nn(M, n, D, W, D, 1, in + n0, N, b,
                     StoreRelu<T>{out + n0, relu_out ? relu_out + n0 : nullptr, N});
        }, double(M) * double(N) * double(D)));
    }
#if defined(BACKPROP_CORE_CBLAS)
    if (use_blas(M, N, D)) {
        const BiasRelu<T> bias_relu{out, b, relu_out, N};
        return run_together(gemm_tasks(false, false, M, N, D, W, D, in, N, out, bias_relu));
    }
#endif
    if (N == 1) affine_one(W, b, in, M, D, out, relu_out);  // no loop over samples to set up
}

// The sums of R rows (ld apart) of N values each, in double: eight interleaved partial sums a row
// (so the additions do not wait on each other, and vectorise), combined in a fixed order; R rows
// at once so that their additions overlap too (each row's sum the same bits for any R).
template <std::size_t R, class T>
void sum_rows(const T* rows, std::size_t ld, std::size_t N, double* sums) {
    typedef double D8 __attribute__((vector_size(64)));  // lane j: the values at n % 8 == j
    typedef T T8 __attribute__((vector_size(8 * sizeof(T))));
    D8 lane[R];
    for (std::size_t r = 0; r < R; ++r) lane[r] = D8{};
    std::size_t n = 0;
    for (; n + 8 <= N; n += 8)
        for (std::size_t r = 0; r < R; ++r)
            lane[r] += __builtin_convertvector(load_vec<T8>(rows + r * ld + n), D8);
    for (std::size_t r = 0; r < R; ++r) {
        for (std::size_t m = n; m < N; ++m) lane[r][m - n] += rows[r * ld + m];
        const D8 l = lane[r];
        sums[r] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    }
}

template <class T> double sum_row(const T* row, std::size_t N) {
    double sum;
    sum_rows<1>(row, 0, N, &sum);
    return sum;
}

// db (M) = g (M, N) summed over samples (df/db = 1), on the calling thread
template <class T> void row_sums(const T* g, std::size_t M, std::size_t N, T* db) {
    with_widest_vectors([=] {
        const T* const src = g;  // (locals: the stores through db cannot alias them)
        T* const dst = db;
        const std::size_t rows = M, n = N;
        double sums[4];
        std::size_t i = 0;
        for (; i + 4 <= rows; i += 4) {
            sum_rows<4>(src + i * n, n, n, sums);
            for (std::size_t r = 0; r < 4; ++r) dst[i + r] = T(sums[r]);
        }
        for (; i < rows; ++i) dst[i] = T(sum_row(src + i * n, n));
    });
}

// ... as tasks of 16 rows when there are many
// (each row's sum is the same either way)
template <class T> auto row_sum_tasks(const T* g, std::size_t M, std::size_t N, T* db) {
    const std::size_t rows = M * N >= (1 << 18) ? 16 : std::max<std::size_t>(M, 1);
    return task_set((M + rows - 1) / rows, [=](std::size_t b) {
        with_widest_vectors([&] {
            for (std::size_t i = b * rows; i < std::min(M, (b + 1) * rows); ++i)
                db[i] = T(sum_row(g + i * N, N));
        });
    }, double(M) * double(N));
}

// dW (M, D) = g (M, N) in^T in plain loops (sums in double), for products too small for BLAS.
template <class T>
void weight_grad_loops(const T* g, const T* in, std::size_t M, std::size_t D, std::size_t N,
                       T* dW) {
    if (N == 1) {  // one sample: an outer product
        for (std::size_t r = 0; r < M; ++r) {
            const double gr = double(g[r]);
            T* const row = dW + r * D;
            for (std::size_t d = 0; d < D; ++d) row[d] = T(gr * in[d]);
        }
        return;
    }
    small_nt(M, D, N, g, N, in, N, dW, D);
}

// dW (M, D) = g (M, N) in^T on the calling thread: one BLAS call when the product is large
// enough, else the loops.
template <class T>
void weight_grad(const T* g, const T* in, std::size_t M, std::size_t D, std::size_t N, T* dW) {
#if defined(BACKPROP_CORE_CBLAS)
    if (use_blas(M, D, N)) return cblas_gemm(false, true, M, D, N, g, N, in, N, dW, D);
#endif
    weight_grad_loops(g, in, M, D, N, dW);
}

// How a weight gradient's sum over N samples is cut for BLAS: `parts` ranges of `len` samples
// (multiples of 32), about 2^25 multiply-adds each. Cutting the output (M, D) into tiles instead
// would have each tile pack its rows of both factors over all N samples: measured 15-40% slower.
struct SampleSplit {
    std::size_t parts, len;

    SampleSplit(std::size_t M, std::size_t D, std::size_t N) {
        const double work = double(M) * double(D) * double(N);
        const auto wanted = std::size_t(std::min(64.0, work / double(1 << 25)));
        if (wanted < 2) {  // one range: all samples
            parts = 1, len = std::max<std::size_t>(1, N);
            return;
        }
        len = std::max<std::size_t>(32, ((N + wanted - 1) / wanted + 31) / 32 * 32);
        parts = std::max<std::size_t>(1, (N + len - 1) / len);
    }
};

// Scratch weight_grad_tasks needs: the partial products of all sample ranges but the first.
inline std::size_t weight_grad_scratch(std::size_t M, std::size_t D, std::size_t N) {
    return use_blas(M, D, N) ? (SampleSplit(M, D, N).parts - 1) * M * D : 0;
}

// dW (M, D) = g (M, N) in^T. With BLAS, a task a sample range, each into its own partial
// product (the first into dW, the others into scratch); weight_grad_sum_tasks then adds them in
// order. Without, one task of plain loops.
template <class T>
auto weight_grad_tasks(const T* g, const T* in, std::size_t M, std::size_t D, std::size_t N,
                       T* dW, T* scratch) {
    const bool blas = use_blas(M, D, N);
    const SampleSplit split(M, D, N);
    return task_set(blas ? split.parts : M * D > 0, [=](std::size_t i) {
        if (blas) {
            const std::size_t n0 = i * split.len, n = std::min(N, n0 + split.len) - n0;
            T* out = i == 0 ? dW : scratch + (i - 1) * M * D;
#if defined(BACKPROP_CORE_CBLAS)
            cblas_gemm(false, true, M, D, n, g + n0, N, in + n0, N, out, D);
#else
            (void)n, (void)out;
#endif
            return;
        }
        weight_grad_loops(g, in, M, D, N, dW);
    }, double(M) * double(D) * double(N));
}

// dW += the partial products weight_grad_tasks left in scratch, in order (tasks of 16 rows).
template <class T>
auto weight_grad_sum_tasks(std::size_t M, std::size_t D, std::size_t N, T* dW, const T* scratch) {
    const std::size_t extra = use_blas(M, D, N) ? SampleSplit(M, D, N).parts - 1 : 0;
    const std::size_t rows = 16;
    return task_set(extra ? (M + rows - 1) / rows : 0, [=](std::size_t b) {
        const std::size_t i0 = b * rows * D, i1 = std::min(M, (b + 1) * rows) * D;
        for (std::size_t p = 0; p < extra; ++p) {
            const T* part = scratch + p * M * D;
            for (std::size_t i = i0; i < i1; ++i) dW[i] += part[i];
        }
    }, double(extra) * double(M) * double(D));
}

// out (D, N) = W^T (D, M) g (M, N) in plain loops, for products too small for BLAS.
template <class T>
void input_grad_loops(const T* W, const T* g, std::size_t M, std::size_t D, std::size_t N,
                      T* out) {
    if (N == 1) {  // one sample: out[d] = 0 + W[0, d] g[0] + W[1, d] g[1] + ..., in that order
        rows_by_four(D, [&](std::size_t d, auto n) {
            constexpr std::size_t R = decltype(n)::value;
            T acc[R];
            for (std::size_t j = 0; j < R; ++j) acc[j] = T(0);
            for (std::size_t r = 0; r < M; ++r) {
                const T gr = g[r];
                for (std::size_t j = 0; j < R; ++j) acc[j] += W[r * D + d + j] * gr;
            }
            for (std::size_t j = 0; j < R; ++j) out[d + j] = acc[j];
        });
    } else {
        small_nn(D, N, M, W, 1, D, g, N, static_cast<const T*>(nullptr), StorePlain<T>{out, N});
    }
}

// out (D, N) = (W^T (D, M) g (M, N)) * ReLU'(f) (f (D, N)), ReLU'(0) = at_zero, on the calling
// thread; marked: f holds relu_marked(f) (see StoreReluGrad).
template <class T>
void input_grad_relu_loops(const T* W, const T* g, std::size_t M, std::size_t D, std::size_t N,
                           T* out, const T* f, T at_zero, bool marked) {
    if (N == 1) {
        input_grad_loops(W, g, M, D, N, out);
        for (std::size_t d = 0; d < D; ++d)
            out[d] *= marked ? relu_grad_marked(f[d], at_zero) : relu_grad(f[d], at_zero);
        return;
    }
    small_nn(D, N, M, W, 1, D, g, N, static_cast<const T*>(nullptr),
             StoreReluGrad<T>{out, f, N, at_zero, marked});
}

// out (D, N) = W^T (D, M) g (M, N), then epilogue(r0, r1, c0, c1) over the rows [r0, r1) and
// columns [c0, c1) of out: a task a tile when BLAS does the product, else one task of loops.
template <class T, class Epilogue>
auto input_grad_tasks(const T* W, const T* g, std::size_t M, std::size_t D, std::size_t N,
                      T* out, const Epilogue& epilogue) {
    const bool blas = use_blas(D, N, M);
    const auto tiles = gemm_tasks(true, false, D, N, M, W, D, g, N, out, epilogue);
    return task_set(blas ? tiles.count : D * N > 0, [=, &epilogue](std::size_t i) {
        if (blas) return tiles.run(i);
        input_grad_loops(W, g, M, D, N, out);
        epilogue(0, D, 0, N);
    }, double(M) * double(D) * double(N));
}

}  // namespace backprop_core
