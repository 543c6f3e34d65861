// The ReLU multilayer perceptron of notebook 7.2, on a batch of N column samples:
//   f_k = W_k h_k + b_k (k = 0..K),  h_{k+1} = ReLU(f_k) (k < K),  loss = sum 0.5 (f_K - y)^2.
// Layer k maps D_k inputs to D_{k+1} outputs; every matrix is row-major, samples along rows,
// so h_k is (D_k, N), f_k is (D_{k+1}, N), W_k is (D_{k+1}, D_k) and b_k has D_{k+1} entries.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "activations.hpp"
#include "gemm.hpp"

namespace backprop_core {

template <class T> struct MLPView {
    std::size_t K;                // hidden layers; there are K + 1 affine layers
    const std::size_t* dims;      // K + 2 entries: D_0 .. D_{K+1}
    const T* const* weights;      // K + 1 pointers
    const T* const* biases;       // K + 1 pointers
    T relu_grad_at_zero = T(1);
};

// Forward pass: f[k] (D_{k+1}, N) for k = 0..K and h[k] (D_k, N) for k = 1..K; h[0] is x.
template <class T>
void mlp_forward(const MLPView<T>& net, const T* x, std::size_t N, T* const* f, T* const* h) {
    const T* in = x;
    for (std::size_t k = 0; k <= net.K; ++k) {
        const std::size_t M = net.dims[k + 1], D = net.dims[k];
        if (k == net.K) {
            affine(net.weights[k], net.biases[k], in, M, D, N, f[k]);
            break;
        }
        affine(net.weights[k], net.biases[k], in, M, D, N, f[k], h[k + 1]);
        in = h[k + 1];
    }
}

// Scratch the backward pass needs: two buffers of the widest layer, then room for the partial
// weight gradients of the layer that needs the most.
inline std::size_t mlp_workspace_size(std::size_t K, const std::size_t* dims, std::size_t N) {
    std::size_t partials = 0;
    for (std::size_t k = 0; k <= K; ++k)
        partials = std::max(partials, weight_grad_scratch(dims[k + 1], dims[k], N));
    return 2 * N * *std::max_element(dims, dims + K + 2) + partials;
}

// Backward pass from a forward pass's f and h (h[0] is the input); the target of output i, sample n
// is y[i * y_strides[0] + n * y_strides[1]] (strides of 0 broadcast). Fills dW[k] (D_{k+1}, D_k) and db[k] (D_{k+1}), returns the loss.
template <class T>
T mlp_backward(const MLPView<T>& net, const T* const* f, const T* const* h, const T* y,
               const std::size_t* y_strides, std::size_t N, T* const* dW, T* const* db, T* workspace) {
    const std::size_t K = net.K;
    const std::size_t* dims = net.dims;
    T* g = workspace;  // dl/df_k, (D_{k+1}, N)
    T* g_prev = workspace + N * *std::max_element(dims, dims + K + 2);
    T* partials = g_prev + N * *std::max_element(dims, dims + K + 2);
    double loss = 0;
    for (std::size_t i = 0; i < dims[K + 1]; ++i)
        for (std::size_t n = 0; n < N; ++n) {
            const T diff = f[K][i * N + n] - y[i * y_strides[0] + n * y_strides[1]];
            loss += 0.5 * double(diff) * diff;
            g[i * N + n] = diff;  // d 0.5 (f - y)^2 / df
        }
    for (std::size_t k = K + 1; k-- > 0;) {
        const std::size_t M = dims[k + 1], D = k ? dims[k] : 0;  // no dl/dh_0 is needed
        // dl/dW_k = dl/df_k h_k^T and dl/db_k = dl/df_k summed over samples; below the first
        // layer also dl/dh_k = W_k^T dl/df_k, and dl/df_{k-1} = ReLU'(f_{k-1}) * dl/dh_k on each
        // tile while it is in cache. All read dl/df_k only, so they share one parallel region.
        const T* f_prev = k ? f[k - 1] : nullptr;
        const T c = net.relu_grad_at_zero;
        const auto relu_mask = [&](std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1) {
            for (std::size_t i = r0; i < r1; ++i) {
                T* row = g_prev + i * N;
                const T* fr = f_prev + i * N;
                for (std::size_t n = c0; n < c1; ++n) row[n] *= relu_grad(fr[n], c);
            }
        };
        const double work = double(M) * double(N) * double(dims[k] + D + 1);
        if (work < parallel_work && !use_blas(M, dims[k], N) && !use_blas(D, N, M)) {
            // a small layer: the same loops the tasks would run, without building them
            weight_grad_loops(g, h[k], M, dims[k], N, dW[k]);
            if (D * N > 0) {
                input_grad_loops(net.weights[k], g, M, D, N, g_prev);
                relu_mask(0, D, 0, N);
            }
            for (std::size_t i = 0; i < M; ++i) db[k][i] = T(sum_row(g + i * N, N));
        } else {
            run_together(weight_grad_tasks(g, h[k], M, dims[k], N, dW[k], partials),
                         input_grad_tasks(net.weights[k], g, M, D, N, g_prev, relu_mask),
                         row_sum_tasks(g, M, N, db[k]));
            run_together(weight_grad_sum_tasks(M, dims[k], N, dW[k], partials));
        }
        std::swap(g, g_prev);
    }
    return T(loss);
}

}  // namespace backprop_core
