// small_gemm.hpp's kernels against plain loops in long double, for every shape from 1 to 19 on
// each side (every tail of rows, vectors and columns), both dtypes, and the epilogues' exact
// rules: h = ReLU(f) and the marked ReLU bit for bit, ReLU'(0) = at_zero, NaN kept; a sample's
// result the same bits wherever it stands in the batch; row_sums as sum_row, bit for bit;
// transpose exactly. Built once per vector width (-DBACKPROP_CORE_VECTOR_BYTES=16, 32, 64) by
// scripts/test_cpp.sh, under ASan and UBSan, so every width is checked on any CPU.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backprop_core/gemm.hpp"

using namespace backprop_core;

static int failures = 0;

static void check(bool ok, const char* what, std::size_t M, std::size_t N, std::size_t K) {
    if (!ok && failures++ < 20) std::printf("FAIL %s at M=%zu N=%zu K=%zu\n", what, M, N, K);
}

template <class T> bool same_bits(T a, T b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class T> bool close(T got, long double want, long double scale) {
    const long double eps = std::numeric_limits<T>::epsilon();
    return std::fabs((long double)got - want) <= 4 * eps * (scale + 1e-30L) * 8;
}

template <class T> void run(std::mt19937& rng) {
    std::normal_distribution<double> nd;
    // N up to 19, then past whole panels of 4 vectors (32 float64 or 64 float32 samples at
    // 64-byte vectors), with and without a narrower rest
    std::vector<std::size_t> widths;
    for (std::size_t N = 1; N < 20; ++N) widths.push_back(N);
    for (std::size_t N : {32, 37, 64, 71, 128, 135}) widths.push_back(N);
    for (std::size_t M = 1; M < 20; ++M)
        for (std::size_t N : widths)
            for (std::size_t K = 1; K < 20; K += (K < 4 ? 1 : 5)) {
                std::vector<T> A(M * K), B(K * N), bias(M), C(M * N), H(M * N), F(M * N);
                for (auto& v : A) v = T(nd(rng));
                for (auto& v : B) v = T(nd(rng));
                for (auto& v : bias) v = T(nd(rng));
                // exact values (sums + bias) and their magnitudes, in long double
                std::vector<long double> want(M * N), scale(M * N);
                for (std::size_t i = 0; i < M; ++i)
                    for (std::size_t n = 0; n < N; ++n) {
                        long double s = bias[i], a = std::fabs((long double)bias[i]);
                        for (std::size_t k = 0; k < K; ++k) {
                            s += (long double)A[i * K + k] * B[k * N + n];
                            a += std::fabs((long double)A[i * K + k] * B[k * N + n]);
                        }
                        want[i * N + n] = s, scale[i * N + n] = a;
                    }
                // plain product, bias as the starting value
                small_nn(M, N, K, A.data(), K, 1, B.data(), N, bias.data(), StorePlain<T>{C.data(), N});
                bool ok = true;
                for (std::size_t e = 0; e < M * N; ++e) ok = ok && close(C[e], want[e], scale[e]);
                check(ok, "small_nn plain", M, N, K);
                // a sample's result does not depend on where it stands in the batch: columns
                // [s, N) alone (B's rows still N apart) give the same bits as in the whole
                for (std::size_t s = 1; s < N; s += 3) {
                    std::vector<T> part(M * (N - s));
                    small_nn(M, N - s, K, A.data(), K, 1, B.data() + s, N, bias.data(),
                             StorePlain<T>{part.data(), N - s});
                    ok = true;
                    for (std::size_t i = 0; i < M; ++i)
                        for (std::size_t n = s; n < N; ++n)
                            ok = ok && same_bits(part[i * (N - s) + n - s], C[i * N + n]);
                    check(ok, "small_nn position independence", M, N, K);
                }
                // out and h = ReLU(out)
                small_nn(M, N, K, A.data(), K, 1, B.data(), N, bias.data(),
                         StoreRelu<T>{F.data(), H.data(), N});
                ok = true;
                for (std::size_t e = 0; e < M * N; ++e)
                    ok = ok && same_bits(F[e], C[e]) && same_bits(H[e], relu(C[e]));
                check(ok, "StoreRelu out, h", M, N, K);
                // marked in place
                small_nn(M, N, K, A.data(), K, 1, B.data(), N, bias.data(),
                         StoreRelu<T>{F.data(), F.data(), N});
                ok = true;
                for (std::size_t e = 0; e < M * N; ++e) ok = ok && same_bits(F[e], relu_marked(C[e]));
                check(ok, "StoreRelu marked", M, N, K);
                // A transposed: C^T-like access, A(i, k) = At[k * M + i]
                std::vector<T> At(K * M);
                for (std::size_t i = 0; i < M; ++i)
                    for (std::size_t k = 0; k < K; ++k) At[k * M + i] = A[i * K + k];
                std::vector<T> G(M * N);
                small_nn(M, N, K, At.data(), 1, M, B.data(), N, bias.data(), StorePlain<T>{G.data(), N});
                ok = true;
                for (std::size_t e = 0; e < M * N; ++e) ok = ok && same_bits(G[e], C[e]);
                check(ok, "small_nn transposed A", M, N, K);
                // ReLU' with zeros, negatives, positives and NaN in f
                for (std::size_t e = 0; e < M * N; ++e)  // (zeros of both signs)
                    F[e] = e % 5 == 0 ? T(e % 10 ? 0.0 : -0.0)
                           : e % 7 == 0 ? std::numeric_limits<T>::quiet_NaN() : T(nd(rng));
                const T at_zero = T(0.25);
                small_nn(M, N, K, A.data(), K, 1, B.data(), N, bias.data(),
                         StoreReluGrad<T>{G.data(), F.data(), N, at_zero});
                ok = true;
                for (std::size_t e = 0; e < M * N; ++e) {
                    const T expect = C[e] * relu_grad(F[e], at_zero);
                    ok = ok && (same_bits(G[e], expect) || (std::isnan(G[e]) && std::isnan(expect)));
                }
                check(ok, "StoreReluGrad", M, N, K);
                // the same read from h = relu_marked(f): the same bits
                std::vector<T> Hk(M * N), G2(M * N);
                for (std::size_t e = 0; e < M * N; ++e) Hk[e] = relu_marked(F[e]);
                small_nn(M, N, K, A.data(), K, 1, B.data(), N, bias.data(),
                         StoreReluGrad<T>{G2.data(), Hk.data(), N, at_zero, true});
                ok = true;
                for (std::size_t e = 0; e < M * N; ++e)
                    ok = ok && (same_bits(G2[e], G[e]) || (std::isnan(G2[e]) && std::isnan(G[e])));
                check(ok, "StoreReluGrad marked", M, N, K);
                // rows_pass: the same epilogues over a sub-rectangle, src + add
                std::vector<T> P(M * N, T(-7));
                const std::size_t r0 = M / 3, r1 = M - M / 4, c0 = N / 3, c1 = N - N / 5;
                rows_pass(C.data(), N, bias.data(), r0, r1, c0, c1, StorePlain<T>{P.data(), N});
                ok = true;
                for (std::size_t i = 0; i < M; ++i)
                    for (std::size_t n = 0; n < N; ++n) {
                        const bool inside = i >= r0 && i < r1 && n >= c0 && n < c1;
                        const T expect = inside ? T(C[i * N + n] + bias[i]) : T(-7);
                        ok = ok && same_bits(P[i * N + n], expect);
                    }
                check(ok, "rows_pass", M, N, K);
                // row_sums: sum_row's bits, four rows at a time or one
                {
                    std::vector<T> sums(M);
                    row_sums(C.data(), M, N, sums.data());
                    ok = true;
                    for (std::size_t i = 0; i < M; ++i)
                        ok = ok && same_bits(sums[i], T(sum_row(C.data() + i * N, N)));
                    check(ok, "row_sums", M, N, K);
                }
                // C2 (M, K) = G (M, N) H (K, N)^T
                std::vector<T> Gm(M * N), Hm(K * N), W(M * K);
                for (auto& v : Gm) v = T(nd(rng));
                for (auto& v : Hm) v = T(nd(rng));
                small_nt(M, K, N, Gm.data(), N, Hm.data(), N, W.data(), K);
                ok = true;
                for (std::size_t i = 0; i < M; ++i)
                    for (std::size_t d = 0; d < K; ++d) {
                        long double s = 0, a = 0;
                        for (std::size_t n = 0; n < N; ++n) {
                            s += (long double)Gm[i * N + n] * Hm[d * N + n];
                            a += std::fabs((long double)Gm[i * N + n] * Hm[d * N + n]);
                        }
                        ok = ok && close(W[i * K + d], s, a);
                    }
                check(ok, "small_nt", M, N, K);
                // transpose: every element moved exactly, the edges past whole blocks too
                std::vector<T> Ct(N * M, T(-7));
                transpose(C.data(), M, N, Ct.data());
                ok = true;
                for (std::size_t i = 0; i < M; ++i)
                    for (std::size_t n = 0; n < N; ++n)
                        ok = ok && same_bits(Ct[n * M + i], C[i * N + n]);
                check(ok, "transpose", M, N, K);
            }
}

int main() {
    std::mt19937 rng(7);
    run<double>(rng);
    run<float>(rng);
#if defined(BACKPROP_CORE_VECTOR_BYTES)
    const int bytes = BACKPROP_CORE_VECTOR_BYTES;
#else
    const int bytes = 0;
#endif
    if (failures) {
        std::printf("test_small_gemm (%d-byte vectors): %d failures\n", bytes, failures);
        return 1;
    }
    std::printf("test_small_gemm (%d-byte vectors): all passed\n", bytes);
    return 0;
}
