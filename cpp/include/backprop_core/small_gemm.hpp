// Register-blocked kernels for the products of small layers (a minibatch through a narrow MLP),
// where a BLAS call's packing and dispatch cost as much as the arithmetic, with the passes that
// follow each product (bias, ReLU, ReLU') done on the tile while it is still in registers.
// Row-major throughout, samples along rows. The vector width is chosen at run time (AVX-512,
// AVX2, else the build's baseline of 16 bytes) and each kernel is compiled for it whole; every
// sum runs in a fixed order, so the result depends on the data and the CPU's vector width only,
// never on threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(_WIN32)
#include <malloc.h>  // _aligned_malloc
#endif

#include "activations.hpp"
#include "vmath.hpp"

// Vectors pass between inline functions that are compiled only inside run_avx512 / run_avx2
// (flatten: inlined whole into a function built for those vectors), never across a real call,
// so the warning that such a call's ABI would change does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

// Loops over a tile's fixed sizes, unrolled so that its accumulators live in registers.
#define BACKPROP_CORE_UNROLL _Pragma("GCC unroll 16")

namespace backprop_core {

// Scratch for the kernels: 64-byte aligned (a cache line, an AVX-512 vector), so that rows whose
// length is a multiple of 64 bytes load and store without splitting lines (measured: a 32x32
// layer's forward pass on 64 samples 10% faster than from 16-byte aligned buffers).
template <class T> struct CacheAligned {
    using value_type = T;
    CacheAligned() = default;
    template <class U> CacheAligned(const CacheAligned<U>&) {}
    T* allocate(std::size_t n) {
        if (n > std::size_t(-1) / sizeof(T) - 64) throw std::bad_alloc();
        const std::size_t bytes = n ? n * sizeof(T) : 64;
#if defined(_WIN32)
        void* p = _aligned_malloc(bytes, 64);
#else
        void* p = nullptr;
        if (posix_memalign(&p, 64, bytes) != 0) p = nullptr;
#endif
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) {
#if defined(_WIN32)
        _aligned_free(p);
#else
        std::free(p);
#endif
    }
    template <class U> bool operator==(const CacheAligned<U>&) const { return true; }
    template <class U> bool operator!=(const CacheAligned<U>&) const { return false; }
};
template <class T> using AlignedVector = std::vector<T, CacheAligned<T>>;

// n elements rounded up to whole 64-byte lines: offsets of blocks in one aligned buffer.
template <class T> constexpr std::size_t padded(std::size_t n) {
    constexpr std::size_t per_line = 64 / sizeof(T);
    return (n + per_line - 1) / per_line * per_line;
}

template <class T, std::size_t Bytes> struct SimdOf {
    typedef T type __attribute__((vector_size(Bytes)));
    static constexpr std::size_t lanes = Bytes / sizeof(T);
};

template <class V> inline V load_vec(const void* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class V> inline void store_vec(void* p, const V& v) { std::memcpy(p, &v, sizeof v); }

// Runs f(std::integral_constant<std::size_t, Bytes>) compiled for the widest vectors this CPU has.
// A build that defines BACKPROP_CORE_VECTOR_BYTES takes that width everywhere (the C++ tests check
// each width's kernels so, on any CPU: the compiler emulates vectors wider than the target's).
template <class F> void with_vector_bytes(const F& f) {
#if defined(BACKPROP_CORE_VECTOR_BYTES)
    return f(std::integral_constant<std::size_t, BACKPROP_CORE_VECTOR_BYTES>{});
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    if (cpu_has_avx512()) return run_avx512([&] { f(std::integral_constant<std::size_t, 64>{}); });
    if (cpu_has_avx2()) return run_avx2([&] { f(std::integral_constant<std::size_t, 32>{}); });
#endif
    f(std::integral_constant<std::size_t, 16>{});
}

// What happens to a tile of C = A B (rows i, columns n) before it is stored. Each has a vector
// and a scalar form, the same arithmetic.
template <class T> struct StorePlain {  // C = A B
    T* C;
    std::size_t ldc;
    template <class V> void operator()(std::size_t i, std::size_t n, const V& v) const {
        store_vec(C + i * ldc + n, v);
    }
};

// The forward pass's epilogue (BiasRelu's, gemm.hpp): the bias is the sum's starting value;
// h null: out only; h == out: relu_marked(out) in place; else out and h = ReLU(out).
template <class T> struct StoreRelu {
    T* out;
    T* h;
    std::size_t ld;
    template <class V> void operator()(std::size_t i, std::size_t n, const V& v) const {
        if constexpr (std::is_same_v<V, T>) {
            if (!h)
                out[i * ld + n] = v;
            else if (h == out)
                out[i * ld + n] = relu_marked(v);
            else
                out[i * ld + n] = v, h[i * ld + n] = relu(v);
        } else {
            const V zero = V{};
            if (!h) {
                store_vec(out + i * ld + n, v);
            } else if (h == out) {  // -0 where v < 0, v + 0 elsewhere (as relu_marked)
                store_vec(out + i * ld + n, v < zero ? zero * T(-1) : v + T(0));
            } else {
                store_vec(out + i * ld + n, v);
                store_vec(h + i * ld + n, v < zero ? zero : v);
            }
        }
    }
};

// The backward pass's epilogue (ReluMask's, gemm.hpp): g = (W^T g) * ReLU'(f), with
// ReLU'(0) = at_zero and NaN kept, as relu_grad; or, when marked, ReLU' read from
// h = relu_marked(f) (the sign of a zero tells f < 0 from f == 0), as relu_grad_marked.
template <class T> struct StoreReluGrad {
    T* g;
    const T* f;
    std::size_t ld;
    T at_zero;
    bool marked = false;
    template <class V> void operator()(std::size_t i, std::size_t n, const V& v) const {
        if constexpr (std::is_same_v<V, T>) {
            const T fi = f[i * ld + n];
            g[i * ld + n] = v * (marked ? relu_grad_marked(fi, at_zero) : relu_grad(fi, at_zero));
        } else {
            using Int = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
            typedef Int IV __attribute__((vector_size(sizeof(V))));
            const V fv = load_vec<V>(f + i * ld + n);
            const V zero = V{}, one = zero + T(1);
            V d;
            if (marked) {  // h is > 0, +0 (f == 0), -0 (f < 0) or NaN
                const IV bits = load_vec<IV>(&fv);
                d = fv == zero ? (bits < IV{} ? zero : zero + at_zero) : fv;
            } else {
                d = fv == zero ? zero + at_zero : fv;  // NaN stays NaN
                d = fv < zero ? zero : d;
            }
            d = fv > zero ? one : d;
            store_vec(g + i * ld + n, v * d);
        }
    }
};

// epi(i, n, v) for rows [r0, r1) and columns [c0, c1) of a row-major array with rows ld
// apart, v the stored value plus add[i] (when add is not null): an elementwise pass with the
// epilogues above, as vectors along the rows.
template <class T, class Epi>
void rows_pass(const T* src, std::size_t ld, const T* add, std::size_t r0, std::size_t r1,
               std::size_t c0, std::size_t c1, const Epi& epilogue) {
    with_vector_bytes([=](auto bytes) {
        using V = typename SimdOf<T, decltype(bytes)::value>::type;
        constexpr std::size_t L = SimdOf<T, decltype(bytes)::value>::lanes;
        // local copies: no store through T* can alias them, so they stay in registers
        const Epi epi = epilogue;
        const T* const s = src;
        const std::size_t l = ld, i0 = r0, i1 = r1, n0 = c0, n1 = c1;
        for (std::size_t i = i0; i < i1; ++i) {
            const T a = add ? add[i] : T(0);
            std::size_t n = n0;
            for (; n + L <= n1; n += L) epi(i, n, load_vec<V>(s + i * l + n) + a);
            for (; n < n1; ++n) epi(i, n, T(s[i * l + n] + a));
        }
    });
}

// R rows of C = init + A B for columns [n0, n0 + C * lanes): A(i, k) = A[i * sa + k * sk].
template <class T, std::size_t Bytes, std::size_t R, std::size_t Cv, class Epi>
inline void small_nn_block(std::size_t i0, std::size_t n0, std::size_t K, const T* A,
                           std::size_t sa, std::size_t sk, const T* B, std::size_t ldb,
                           const T* init, const Epi& epi) {
    using V = typename SimdOf<T, Bytes>::type;
    constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
    V acc[R][Cv];
    BACKPROP_CORE_UNROLL
    for (std::size_t r = 0; r < R; ++r)
        BACKPROP_CORE_UNROLL
        for (std::size_t c = 0; c < Cv; ++c) acc[r][c] = V{} + (init ? init[i0 + r] : T(0));
    const T* a = A + i0 * sa;
    const T* b = B + n0;
    for (std::size_t k = 0; k < K; ++k, a += sk, b += ldb) {
        V x[Cv];
        BACKPROP_CORE_UNROLL
        for (std::size_t c = 0; c < Cv; ++c) x[c] = load_vec<V>(b + c * L);
        BACKPROP_CORE_UNROLL
        for (std::size_t r = 0; r < R; ++r) {
            const T w = a[r * sa];
            BACKPROP_CORE_UNROLL
            for (std::size_t c = 0; c < Cv; ++c) acc[r][c] += w * x[c];
        }
    }
    BACKPROP_CORE_UNROLL
    for (std::size_t r = 0; r < R; ++r)
        BACKPROP_CORE_UNROLL
        for (std::size_t c = 0; c < Cv; ++c) epi(i0 + r, n0 + c * L, acc[r][c]);
}

// The same for the last `count` (< lanes) columns from n0: the same vector arithmetic on a vector
// whose other lanes are 0, so that a sample's result does not depend on where it stands in
// the batch (nor on the batch's length).
template <class T, std::size_t Bytes, std::size_t R, class Epi>
inline void small_nn_partial(std::size_t i0, std::size_t n0, std::size_t count, std::size_t K,
                             const T* A, std::size_t sa, std::size_t sk, const T* B,
                             std::size_t ldb, const T* init, const Epi& epi) {
    using V = typename SimdOf<T, Bytes>::type;
    V acc[R];
    BACKPROP_CORE_UNROLL
    for (std::size_t r = 0; r < R; ++r) acc[r] = V{} + (init ? init[i0 + r] : T(0));
    const T* a = A + i0 * sa;
    const T* b = B + n0;
    for (std::size_t k = 0; k < K; ++k, a += sk, b += ldb) {
        V x{};
        for (std::size_t j = 0; j < count; ++j) x[j] = b[j];
        BACKPROP_CORE_UNROLL
        for (std::size_t r = 0; r < R; ++r) acc[r] += a[r * sa] * x;
    }
    for (std::size_t r = 0; r < R; ++r)
        for (std::size_t j = 0; j < count; ++j) epi(i0 + r, n0 + j, T(acc[r][j]));
}

// Rows [0, M) of C for the columns [n0, n0 + Cv * lanes): tiles of 4 rows, then 2, then 1.
template <class T, std::size_t Bytes, std::size_t Cv, class Epi>
inline void small_nn_panel(std::size_t M, std::size_t n0, std::size_t K, const T* A,
                           std::size_t sa, std::size_t sk, const T* B, std::size_t ldb,
                           const T* init, const Epi& epi) {
    std::size_t i = 0;
    for (; i + 4 <= M; i += 4) small_nn_block<T, Bytes, 4, Cv>(i, n0, K, A, sa, sk, B, ldb, init, epi);
    for (; i + 2 <= M; i += 2) small_nn_block<T, Bytes, 2, Cv>(i, n0, K, A, sa, sk, B, ldb, init, epi);
    for (; i < M; ++i) small_nn_block<T, Bytes, 1, Cv>(i, n0, K, A, sa, sk, B, ldb, init, epi);
}

// Columns [n0, N) of R rows from i0, narrower than a panel: the widest blocks that fit, then the
// partial vector.
template <class T, std::size_t Bytes, std::size_t R, class Epi>
inline void small_nn_rest(std::size_t i0, std::size_t n0, std::size_t N, std::size_t K,
                          const T* A, std::size_t sa, std::size_t sk, const T* B,
                          std::size_t ldb, const T* init, const Epi& epi) {
    constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
    std::size_t n = n0;
    for (; n + 2 * L <= N; n += 2 * L)
        small_nn_block<T, Bytes, R, 2>(i0, n, K, A, sa, sk, B, ldb, init, epi);
    for (; n + L <= N; n += L)
        small_nn_block<T, Bytes, R, 1>(i0, n, K, A, sa, sk, B, ldb, init, epi);
    if (n < N) small_nn_partial<T, Bytes, R>(i0, n, N - n, K, A, sa, sk, B, ldb, init, epi);
}

// C (M, N) = init (a value per row, or none) + A (M, K) B (K, N), each element given to
// epi(i, n, value) (vectors of lanes along n where they fit): A(i, k) = A[i * sa + k * sk]
// (sa = K, sk = 1 for A as stored; sa = 1, sk = M for A^T of an array stored (K, M)).
// Every element is init[i] plus its K products added in order, whichever tile computes it.
// Panels of columns outside, rows inside: a panel of B (K rows of 4 vectors) stays in cache
// while every row of A passes over it. Measured on 256x256 by 256 products from L3 (AVX-512,
// float64): 49-51 GFLOP/s against 44-48 with rows outside, and 43-46 for OpenBLAS.
template <class T, class Epi>
void small_nn(std::size_t M, std::size_t N, std::size_t K, const T* A, std::size_t sa,
              std::size_t sk, const T* B, std::size_t ldb, const T* init, const Epi& epilogue) {
    with_vector_bytes([=](auto bytes) {
        constexpr std::size_t Bytes = decltype(bytes)::value;
        constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
        // accumulators: 4 x 4 vectors of 32 registers, 4 x 2 of 16; measured on a 32x32 layer
        // of 64 samples (AVX-512): 4 x 4 1.65 us, 8 x 2 1.75 us, 6 x 4 1.90 us
        constexpr std::size_t Cv = Bytes == 64 ? 4 : 2;
        const Epi epi = epilogue;  // a local copy: no store through T* can alias its fields
        std::size_t n = 0;
        for (; n + Cv * L <= N; n += Cv * L)
            small_nn_panel<T, Bytes, Cv>(M, n, K, A, sa, sk, B, ldb, init, epi);
        if (n == N) return;
        std::size_t i = 0;
        for (; i + 4 <= M; i += 4) small_nn_rest<T, Bytes, 4>(i, n, N, K, A, sa, sk, B, ldb, init, epi);
        for (; i + 2 <= M; i += 2) small_nn_rest<T, Bytes, 2>(i, n, N, K, A, sa, sk, B, ldb, init, epi);
        for (; i < M; ++i) small_nn_rest<T, Bytes, 1>(i, n, N, K, A, sa, sk, B, ldb, init, epi);
    });
}

// The sum of a vector's lanes in a fixed order: the upper half added to the lower, until one
// lane is left (lane j meets lane j + L/2 first).
template <class T, std::size_t Bytes>
inline T lane_sum(const typename SimdOf<T, Bytes>::type& v) {
    if constexpr (Bytes == 2 * sizeof(T)) {
        return v[0] + v[1];
    } else {
        using H = typename SimdOf<T, Bytes / 2>::type;
        H lo, hi;
        std::memcpy(&lo, &v, sizeof lo);
        std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
        return lane_sum<T, Bytes / 2>(lo + hi);
    }
}

// R x S entries of C = G H^T from rows i0.. of G and d0.. of H, each row N long: a vector of
// partial sums an entry, then the lanes added pairwise, then the samples that fill no vector.
template <class T, std::size_t Bytes, std::size_t R, std::size_t S>
inline void small_nt_block(std::size_t i0, std::size_t d0, std::size_t N, const T* G,
                           std::size_t ldg, const T* H, std::size_t ldh, T* C, std::size_t ldc) {
    using V = typename SimdOf<T, Bytes>::type;
    constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
    V acc[R][S];
    BACKPROP_CORE_UNROLL
    for (std::size_t r = 0; r < R; ++r)
        BACKPROP_CORE_UNROLL
        for (std::size_t s = 0; s < S; ++s) acc[r][s] = V{};
    std::size_t n = 0;
    for (; n + L <= N; n += L) {
        V h[S];
        BACKPROP_CORE_UNROLL
        for (std::size_t s = 0; s < S; ++s) h[s] = load_vec<V>(H + (d0 + s) * ldh + n);
        BACKPROP_CORE_UNROLL
        for (std::size_t r = 0; r < R; ++r) {
            const V g = load_vec<V>(G + (i0 + r) * ldg + n);
            BACKPROP_CORE_UNROLL
            for (std::size_t s = 0; s < S; ++s) acc[r][s] += g * h[s];
        }
    }
    BACKPROP_CORE_UNROLL
    for (std::size_t r = 0; r < R; ++r)
        BACKPROP_CORE_UNROLL
        for (std::size_t s = 0; s < S; ++s) {
            T sum = lane_sum<T, Bytes>(acc[r][s]);
            for (std::size_t m = n; m < N; ++m)
                sum += G[(i0 + r) * ldg + m] * H[(d0 + s) * ldh + m];
            C[(i0 + r) * ldc + d0 + s] = sum;
        }
}

// Lane m of the interleaving of x and y in blocks of s lanes (its low half, or with `high`
// its high half): block m / 2s of both, from x for m % 2s < s, else from y (lanes L + ...).
constexpr std::size_t interleaved(std::size_t m, std::size_t s, std::size_t L, bool high) {
    const std::size_t base = m / (2 * s) * 2 * s, o = m % (2 * s);
    return (o < s ? base + o : L + base + o - s) + (high ? s : 0);
}
// x and y interleaved so (a constant permute: the unpack and two-source permutes of the
// instruction set). Clang spells the permute __builtin_shufflevector, GCC __builtin_shuffle
// (GCC has the other only from version 12).
template <std::size_t s, bool high, class V, std::size_t... m>
inline V interleave(const V& x, const V& y, std::index_sequence<m...>) {
#if defined(__clang__)
    return __builtin_shufflevector(x, y, int(interleaved(m, s, sizeof...(m), high))...);
#else
    using Int = std::conditional_t<sizeof(x[0]) == 4, std::int32_t, std::int64_t>;
    typedef Int IV __attribute__((vector_size(sizeof(V))));
    constexpr IV mask{Int(interleaved(m, s, sizeof...(m), high))...};
    return __builtin_shuffle(x, y, mask);
#endif
}

// v[0 .. L) (L = lanes) become one vector whose lane j is the sum of v[j]'s lanes, added in
// sum_row's order (gemm.hpp): neighbours first, ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
// for 8 lanes. Each level adds pairs of vectors after interleaving them in blocks of s lanes,
// halving their count.
template <class T, std::size_t Bytes, std::size_t s = 1>
inline typename SimdOf<T, Bytes>::type transpose_sums(typename SimdOf<T, Bytes>::type* v) {
    constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
    if constexpr (s == L) {
        return v[0];
    } else {
        constexpr auto lanes = std::make_index_sequence<L>{};
        BACKPROP_CORE_UNROLL
        for (std::size_t j = 0; j < L / s / 2; ++j)
            v[j] = interleave<s, false>(v[2 * j], v[2 * j + 1], lanes) +
                   interleave<s, true>(v[2 * j], v[2 * j + 1], lanes);
        return transpose_sums<T, Bytes, 2 * s>(v);
    }
}

// v[0 .. L) (L = lanes), the rows of an L x L block, become its columns: log2 L levels of the
// interleaves above, each pairing v[i] with v[i + s].
template <class T, std::size_t Bytes, std::size_t s = 1>
inline void transpose_block(typename SimdOf<T, Bytes>::type* v) {
    constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
    if constexpr (s < L) {
        constexpr auto lanes = std::make_index_sequence<L>{};
        BACKPROP_CORE_UNROLL
        for (std::size_t i = 0; i < L; ++i)
            if (!(i & s)) {
                const auto x = v[i], y = v[i + s];
                v[i] = interleave<s, false>(x, y, lanes);
                v[i + s] = interleave<s, true>(x, y, lanes);
            }
        transpose_block<T, Bytes, 2 * s>(v);
    }
}

// dst (cols, rows) = src (rows, cols) transposed, both row-major: blocks of lanes x lanes in
// registers, the edges element by element. (A 32 x 64 float64 block: 0.21 us, AVX-512.)
template <class T> void transpose(const T* src, std::size_t rows, std::size_t cols, T* dst) {
    with_vector_bytes([=](auto bytes) {
        constexpr std::size_t Bytes = decltype(bytes)::value;
        using V = typename SimdOf<T, Bytes>::type;
        constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
        const T* const s = src;  // (locals: the stores through dst cannot alias them)
        T* const o = dst;
        const std::size_t R = rows, C = cols, R0 = R / L * L, C0 = C / L * L;
        for (std::size_t i0 = 0; i0 < R0; i0 += L)
            for (std::size_t j0 = 0; j0 < C0; j0 += L) {
                V v[L];
                BACKPROP_CORE_UNROLL
                for (std::size_t i = 0; i < L; ++i) v[i] = load_vec<V>(s + (i0 + i) * C + j0);
                transpose_block<T, Bytes>(v);
                BACKPROP_CORE_UNROLL
                for (std::size_t j = 0; j < L; ++j) store_vec(o + (j0 + j) * R + i0, v[j]);
            }
        for (std::size_t i = 0; i < R; ++i)  // the edges: columns past C0, then rows past R0
            for (std::size_t j = C0; j < C; ++j) o[j * R + i] = s[i * C + j];
        for (std::size_t i = R0; i < R; ++i)
            for (std::size_t j = 0; j < C0; ++j) o[j * R + i] = s[i * C + j];
    });
}

// R x S entries of C = G H^T (R S a multiple of the lanes): a vector of partial sums an entry,
// the samples that fill no vector in zero-padded ones, then each L entries' lanes added at once
// by transpose_sums (no reduction across one vector's lanes an entry).
template <class T, std::size_t Bytes, std::size_t R, std::size_t S>
inline void small_nt_tile(std::size_t i0, std::size_t d0, std::size_t N, const T* G,
                          std::size_t ldg, const T* H, std::size_t ldh, T* C, std::size_t ldc) {
    using V = typename SimdOf<T, Bytes>::type;
    constexpr std::size_t L = SimdOf<T, Bytes>::lanes;
    static_assert(R * S % L == 0, "whole vectors of sums");
    V acc[R * S];
    BACKPROP_CORE_UNROLL
    for (std::size_t e = 0; e < R * S; ++e) acc[e] = V{};
    const auto fma_chunk = [&](const V* h, const auto& g_of) {
        BACKPROP_CORE_UNROLL
        for (std::size_t r = 0; r < R; ++r) {
            const V g = g_of(r);
            BACKPROP_CORE_UNROLL
            for (std::size_t s = 0; s < S; ++s) acc[r * S + s] += g * h[s];
        }
    };
    std::size_t n = 0;
    for (; n + L <= N; n += L) {
        V h[S];
        BACKPROP_CORE_UNROLL
        for (std::size_t s = 0; s < S; ++s) h[s] = load_vec<V>(H + (d0 + s) * ldh + n);
        fma_chunk(h, [&](std::size_t r) { return load_vec<V>(G + (i0 + r) * ldg + n); });
    }
    if (const std::size_t count = N - n) {
        V h[S];
        BACKPROP_CORE_UNROLL
        for (std::size_t s = 0; s < S; ++s) {
            h[s] = V{};
            std::memcpy(&h[s], H + (d0 + s) * ldh + n, count * sizeof(T));
        }
        fma_chunk(h, [&](std::size_t r) {
            V g{};
            std::memcpy(&g, G + (i0 + r) * ldg + n, count * sizeof(T));
            return g;
        });
    }
    T sums[R * S];
    BACKPROP_CORE_UNROLL
    for (std::size_t e = 0; e < R * S; e += L) store_vec(sums + e, transpose_sums<T, Bytes>(acc + e));
    BACKPROP_CORE_UNROLL
    for (std::size_t r = 0; r < R; ++r)
        std::memcpy(C + (i0 + r) * ldc + d0, sums + r * S, S * sizeof(T));
}

// small_nt's rows a tile: 4 x 4 sums and their factors fill 21 of AVX-512's 32 registers,
// 2 x 4 13 of the 16 narrower vectors have
template <std::size_t Bytes> inline constexpr std::size_t nt_rows = Bytes == 64 ? 4 : 2;

template <class T, std::size_t Bytes, std::size_t R>
inline void small_nt_rows(std::size_t i0, std::size_t D, std::size_t N, const T* G,
                          std::size_t ldg, const T* H, std::size_t ldh, T* C, std::size_t ldc) {
    std::size_t d = 0;
    if constexpr (R == nt_rows<Bytes>)
        for (; d + 4 <= D; d += 4) small_nt_tile<T, Bytes, R, 4>(i0, d, N, G, ldg, H, ldh, C, ldc);
    for (; d + 3 <= D; d += 3) small_nt_block<T, Bytes, R, 3>(i0, d, N, G, ldg, H, ldh, C, ldc);
    for (; d < D; ++d) small_nt_block<T, Bytes, R, 1>(i0, d, N, G, ldg, H, ldh, C, ldc);
}

// C (M, D) = G (M, N) H (D, N)^T: the weight gradient dl/df h^T, a dot product an entry.
template <class T>
void small_nt(std::size_t M, std::size_t D, std::size_t N, const T* G, std::size_t ldg,
              const T* H, std::size_t ldh, T* C, std::size_t ldc) {
    with_vector_bytes([=](auto bytes) {  // (by value: no store through T* can alias them)
        constexpr std::size_t Bytes = decltype(bytes)::value;
        constexpr std::size_t R = nt_rows<Bytes>;
        std::size_t i = 0;
        for (; i + R <= M; i += R) small_nt_rows<T, Bytes, R>(i, D, N, G, ldg, H, ldh, C, ldc);
        for (; i < M; ++i) small_nt_rows<T, Bytes, 1>(i, D, N, G, ldg, H, ldh, C, ldc);
    });
}

}  // namespace backprop_core
