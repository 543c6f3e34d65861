// The scalar chain of notebook 7.1, generalised to L activations and a batch of N samples:
//   f_0 = beta_0 + omega_0 x,  h_k = a_k(f_{k-1}),  f_k = beta_k + omega_k h_k  (k = 1..L),
//   loss = sum_n (f_L - y)^2.
// Arrays are row-major with one row per stage: f is (L+1, N), h is (L, N) with row k-1 holding h_k.
#pragma once

#include <cstddef>
#include <stdexcept>

#include "activations.hpp"

namespace backprop_core {

// Sums over samples are kept in double, so float32 results round once at the end.
template <class T> using accumulator_t = double;

template <class T> struct ToyChain {
    const Activation* activations;  // L entries
    std::size_t L;
    const T* beta;   // L + 1 entries
    const T* omega;  // L + 1 entries
    T relu_grad_at_zero = T(1);
};

// Forward pass: fills f (L+1, N) and h (L, N).
template <class T>
void toy_forward(const ToyChain<T>& c, const T* x, std::size_t N, T* f, T* h) {
    const std::size_t L = c.L;
    for (std::size_t n = 0; n < N; ++n) f[n] = c.beta[0] + c.omega[0] * x[n];
    for (std::size_t k = 1; k <= L; ++k) {
        const Activation a = c.activations[k - 1];
        const T* f_prev = f + (k - 1) * N;
        T* h_k = h + (k - 1) * N;
        T* f_k = f + k * N;
        for (std::size_t n = 0; n < N; ++n) {
            h_k[n] = activate(a, f_prev[n]);
            f_k[n] = c.beta[k] + c.omega[k] * h_k[n];
        }
    }
}

// Backward pass from a forward pass's f and h; sample n's target is y[n * y_stride] (a stride of 0
// broadcasts one target).
// Fills dl_df (L+1, N), dl_dh (L, N), dl_dbeta and dl_domega (L+1 each); returns the loss.
template <class T>
T toy_backward(const ToyChain<T>& c, const T* x, const T* y, std::size_t y_stride, std::size_t N,
               const T* f, const T* h, T* dl_df, T* dl_dh, T* dl_dbeta, T* dl_domega) {
    const std::size_t L = c.L;
    accumulator_t<T> loss = 0, dbeta = 0, domega = 0;
    const T* f_L = f + L * N;
    T* g_L = dl_df + L * N;
    for (std::size_t n = 0; n < N; ++n) {
        const T diff = f_L[n] - y[n * y_stride];
        loss += accumulator_t<T>(diff) * diff;
        g_L[n] = T(2) * diff;  // d(f - y)^2 / df
    }
    for (std::size_t k = L + 1; k-- > 0;) {
        const T* g_k = dl_df + k * N;                 // dl/df_k
        const T* in_k = k == 0 ? x : h + (k - 1) * N;  // what omega_k multiplies
        dbeta = 0;
        domega = 0;
        for (std::size_t n = 0; n < N; ++n) {
            dbeta += g_k[n];                                  // df_k/dbeta_k = 1
            domega += accumulator_t<T>(g_k[n]) * in_k[n];     // df_k/domega_k = h_k (x for k = 0)
        }
        dl_dbeta[k] = T(dbeta);
        dl_domega[k] = T(domega);
        if (k == 0) break;
        const Activation a = c.activations[k - 1];
        const T* f_prev = f + (k - 1) * N;
        T* dh = dl_dh + (k - 1) * N;
        T* g_prev = dl_df + (k - 1) * N;
        for (std::size_t n = 0; n < N; ++n) {
            dh[n] = c.omega[k] * g_k[n];                                               // df_k/dh_k
            g_prev[n] = activate_grad(a, f_prev[n], in_k[n], c.relu_grad_at_zero) * dh[n];  // dh_k/df_{k-1}
        }
    }
    return T(loss);
}

}  // namespace backprop_core
