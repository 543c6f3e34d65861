// The three matrix products of an affine layer, row-major. Large products go to a CBLAS (OpenBLAS
// from scipy-openblas32, when the build defines BACKPROP_CORE_CBLAS); small ones stay in plain
// loops, where a BLAS call costs more than the arithmetic.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>

#include "activations.hpp"

#if defined(BACKPROP_CORE_CBLAS)
#include <cblas.h>  // scipy-openblas32: symbols carry a scipy_ prefix
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

// CBLAS takes int sizes: anything from 2^31 up stays in the loops.
inline bool use_blas(std::size_t M, std::size_t N, std::size_t K) {
    const std::size_t limit = std::size_t(INT_MAX);
    return blas_available() && M * N * K >= blas_threshold && M < limit && N < limit &&
           K < limit && M * K < limit && K * N < limit && M * N < limit;
}

#if defined(BACKPROP_CORE_CBLAS)
inline void cblas_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K,
                       const float* A, std::size_t lda, const float* B, std::size_t ldb,
                       float beta, float* C) {
    scipy_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      int(M), int(N), int(K), 1.0f, A, int(lda), B, int(ldb), beta, C, int(N));
}
inline void cblas_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K,
                       const double* A, std::size_t lda, const double* B, std::size_t ldb,
                       double beta, double* C) {
    scipy_cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                      int(M), int(N), int(K), 1.0, A, int(lda), B, int(ldb), beta, C, int(N));
}
#endif

// out (M, N) = W (M, D) in (D, N) + b (M), and relu_out = ReLU(out) when relu_out is not null
// (fused into the pass that adds the bias).
template <class T>
void affine(const T* W, const T* b, const T* in, std::size_t M, std::size_t D, std::size_t N,
            T* out, T* relu_out = nullptr) {
#if defined(BACKPROP_CORE_CBLAS)
    if (use_blas(M, N, D)) {
        cblas_gemm(false, false, M, N, D, W, D, in, N, T(0), out);
        for (std::size_t i = 0; i < M; ++i) {
            T* row = out + i * N;
            const T bias = b[i];
            if (relu_out) {
                T* h = relu_out + i * N;
                for (std::size_t n = 0; n < N; ++n) h[n] = relu(row[n] += bias);
            } else {
                for (std::size_t n = 0; n < N; ++n) row[n] += bias;
            }
        }
        return;
    }
#endif
    if (N == 1) {  // one sample: a dot product per row, no loop over samples to set up
        for (std::size_t i = 0; i < M; ++i) {
            T acc = b[i];
            for (std::size_t d = 0; d < D; ++d) acc += W[i * D + d] * in[d];
            out[i] = acc;
            if (relu_out) relu_out[i] = relu(acc);
        }
        return;
    }
    for (std::size_t i = 0; i < M; ++i) {
        T* row = out + i * N;
        std::fill(row, row + N, b[i]);
        for (std::size_t d = 0; d < D; ++d) {
            const T w = W[i * D + d];
            const T* src = in + d * N;
            for (std::size_t n = 0; n < N; ++n) row[n] += w * src[n];
        }
        if (relu_out)
            for (std::size_t n = 0; n < N; ++n) relu_out[i * N + n] = relu(row[n]);
    }
}

// The sum of row[0..N) in double, in four interleaved partial sums (so the additions do not
// wait on each other), combined in a fixed order.
template <class T> double sum_row(const T* row, std::size_t N) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::size_t n = 0;
    for (; n + 4 <= N; n += 4) {
        s0 += row[n];
        s1 += row[n + 1];
        s2 += row[n + 2];
        s3 += row[n + 3];
    }
    for (; n < N; ++n) s0 += row[n];
    return (s0 + s1) + (s2 + s3);
}

// db (M) = g (M, N) summed over samples (df/db = 1)
template <class T> void row_sums(const T* g, std::size_t M, std::size_t N, T* db) {
    for (std::size_t i = 0; i < M; ++i) db[i] = T(sum_row(g + i * N, N));
}

// dW (M, D) = g (M, N) in^T
template <class T>
void affine_weight_grad(const T* g, const T* in, std::size_t M, std::size_t D, std::size_t N,
                        T* dW) {
#if defined(BACKPROP_CORE_CBLAS)
    if (use_blas(M, D, N)) return cblas_gemm(false, true, M, D, N, g, N, in, N, T(0), dW);
#endif
    if (N == 1) {  // one sample: an outer product
        for (std::size_t i = 0; i < M; ++i)
            for (std::size_t d = 0; d < D; ++d) dW[i * D + d] = T(double(g[i]) * in[d]);
        return;
    }
    for (std::size_t i = 0; i < M; ++i) {
        const T* g_i = g + i * N;
        for (std::size_t d = 0; d < D; ++d) {
            const T* in_d = in + d * N;
            double acc = 0;
            for (std::size_t n = 0; n < N; ++n) acc += double(g_i[n]) * in_d[n];
            dW[i * D + d] = T(acc);
        }
    }
}

// out (D, N) = W^T (D, M) g (M, N)
template <class T>
void affine_input_grad(const T* W, const T* g, std::size_t M, std::size_t D, std::size_t N,
                       T* out) {
#if defined(BACKPROP_CORE_CBLAS)
    if (use_blas(D, N, M)) return cblas_gemm(true, false, D, N, M, W, D, g, N, T(0), out);
#endif
    std::fill(out, out + D * N, T(0));
    if (N == 1) {  // one sample: out += g_i * W[i, :], row by row
        for (std::size_t i = 0; i < M; ++i) {
            const T gi = g[i];
            const T* w = W + i * D;
            for (std::size_t d = 0; d < D; ++d) out[d] += w[d] * gi;
        }
        return;
    }
    for (std::size_t i = 0; i < M; ++i) {
        const T* g_i = g + i * N;
        for (std::size_t d = 0; d < D; ++d) {
            const T w = W[i * D + d];
            T* dst = out + d * N;
            for (std::size_t n = 0; n < N; ++n) dst[n] += w * g_i[n];
        }
    }
}

}  // namespace backprop_core
