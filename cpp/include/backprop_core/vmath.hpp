// sin, cos and exp over arrays: glibc's vector math library (libmvec, AVX-512 or AVX2 variants)
// where the build has it and the CPU runs it, chosen at run time; the scalar functions otherwise. libmvec's
// results are within 4 ulp, not always the correctly rounded ones.
#pragma once

#include <cmath>
#include <cstddef>

#if defined(BACKPROP_CORE_LIBMVEC) && defined(__x86_64__)
#include <immintrin.h>
extern "C" {
__attribute__((target("avx2"))) __m256d _ZGVdN4v_sin(__m256d);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_cos(__m256d);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_exp(__m256d);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_sinf(__m256);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_cosf(__m256);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_expf(__m256);
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_sin(__m512d);
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_cos(__m512d);
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_exp(__m512d);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_sinf(__m512);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_cosf(__m512);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
}
#define BACKPROP_CORE_VMATH 1
#endif

namespace backprop_core {

enum class VFunc { sin, cos, exp };

template <class T> inline T scalar_func(VFunc fn, T v) {
    switch (fn) {
    case VFunc::sin: return std::sin(v);
    case VFunc::cos: return std::cos(v);
    case VFunc::exp: return std::exp(v);
    }
    return v;
}

#if defined(__x86_64__) && defined(__GNUC__)
inline bool cpu_has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return yes;
}

inline bool cpu_has_avx512() {
    static const bool yes = __builtin_cpu_supports("avx512f");
    return yes;
}

template <class F> __attribute__((target("avx512f"), flatten)) void run_avx512(const F& f) { f(); }
template <class F> __attribute__((target("avx2,fma"), flatten)) void run_avx2(const F& f) { f(); }
#endif

// Runs f() compiled, with everything it calls, for the widest vectors this CPU has (AVX-512,
// AVX2, else the build's baseline), chosen at run time: for the elementwise loops the compiler
// vectorises (bias, ReLU, mask, row sums), which the baseline does 4 floats at a time.
template <class F> void with_widest_vectors(const F& f) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (cpu_has_avx512()) return run_avx512(f);
    if (cpu_has_avx2()) return run_avx2(f);
#endif
    f();
}

#if defined(BACKPROP_CORE_VMATH)

__attribute__((target("avx512f"))) inline void vfunc_avx512(VFunc fn, const double* in,
                                                            double* out, std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m512d v = _mm512_loadu_pd(in + i);
        _mm512_storeu_pd(out + i, fn == VFunc::sin   ? _ZGVeN8v_sin(v)
                                  : fn == VFunc::cos ? _ZGVeN8v_cos(v)
                                                     : _ZGVeN8v_exp(v));
    }
    for (; i < n; ++i) out[i] = scalar_func(fn, in[i]);
}

__attribute__((target("avx512f"))) inline void vfunc_avx512(VFunc fn, const float* in, float* out,
                                                            std::size_t n) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(in + i);
        _mm512_storeu_ps(out + i, fn == VFunc::sin   ? _ZGVeN16v_sinf(v)
                                  : fn == VFunc::cos ? _ZGVeN16v_cosf(v)
                                                     : _ZGVeN16v_expf(v));
    }
    for (; i < n; ++i) out[i] = scalar_func(fn, in[i]);
}

__attribute__((target("avx2,fma"))) inline void vfunc_avx2(VFunc fn, const double* in,
                                                           double* out, std::size_t n) {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d v = _mm256_loadu_pd(in + i);
        _mm256_storeu_pd(out + i, fn == VFunc::sin   ? _ZGVdN4v_sin(v)
                                  : fn == VFunc::cos ? _ZGVdN4v_cos(v)
                                                     : _ZGVdN4v_exp(v));
    }
    for (; i < n; ++i) out[i] = scalar_func(fn, in[i]);
}

__attribute__((target("avx2,fma"))) inline void vfunc_avx2(VFunc fn, const float* in, float* out,
                                                           std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(in + i);
        _mm256_storeu_ps(out + i, fn == VFunc::sin   ? _ZGVdN8v_sinf(v)
                                  : fn == VFunc::cos ? _ZGVdN8v_cosf(v)
                                                     : _ZGVdN8v_expf(v));
    }
    for (; i < n; ++i) out[i] = scalar_func(fn, in[i]);
}
#endif

// out[i] = fn(in[i]) for i < n (in and out may be the same array).
template <class T> inline void vfunc(VFunc fn, const T* in, T* out, std::size_t n) {
#if defined(BACKPROP_CORE_VMATH)
    if (cpu_has_avx512()) return vfunc_avx512(fn, in, out, n);
    if (cpu_has_avx2()) return vfunc_avx2(fn, in, out, n);
#endif
    for (std::size_t i = 0; i < n; ++i) out[i] = scalar_func(fn, in[i]);
}

}  // namespace backprop_core
