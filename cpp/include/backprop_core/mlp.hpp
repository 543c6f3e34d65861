// The ReLU multilayer perceptron of notebook 7.2, on a batch of N column samples:
//   f_k = W_k h_k + b_k (k = 0..K),  h_{k+1} = ReLU(f_k) (k < K),  loss = sum 0.5 (f_K - y)^2.
//
// Notebook 7.2's equations, each in one function:
//   f_k = W_k h_k + b_k, h_{k+1} = ReLU(f_k)   affine() and BiasRelu (gemm.hpp); relu() and
//                                             relu_marked() (activations.hpp)
//   l = sum 0.5 (f_K - y)^2, dl/df_K = f_K - y squared_error() below
//   dl/dW_k = dl/df_k h_k^T                    weight_grad() / weight_grad_tasks() (gemm.hpp),
//                                             and one BLAS call a block in the blocked pass
//   dl/db_k = sum over samples of dl/df_k      row_sums() / sum_row() (gemm.hpp)
//   dl/dh_k = W_k^T dl/df_k                    input_grad_relu_loops() / input_grad_tasks() (gemm.hpp)
//   dl/df_{k-1} = ReLU'(f_{k-1}) dl/dh_k       relu_grad() / relu_grad_marked() (activations.hpp)
// Whole passes: mlp_forward(), mlp_backward(), mlp_gradients_one(), mlp_gradients_blocked() here;
// the choice between them, the scratch and the model live in model.hpp.
// Layer k maps D_k inputs to D_{k+1} outputs; every matrix is row-major, samples along rows,
// so h_k is (D_k, N), f_k is (D_{k+1}, N), W_k is (D_{k+1}, D_k) and b_k has D_{k+1} entries.
#pragma once

#include <algorithm>
#include <climits>
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

// The output loss and its derivative (notebook 7.2): l = sum 0.5 (f_K - y)^2 and dl/df_K = f_K - y,
// over M outputs and the n samples [n0, n0 + n) of a batch, whose rows in f and g are n long. The
// target of output i, sample m is y[i * y_strides[0] + m * y_strides[1]] (strides of 0
// broadcast). Returns the loss, summed in double.
template <class T>
double squared_error(const T* f, const T* y, const std::size_t* y_strides, std::size_t M,
                     std::size_t n0, std::size_t n, T* g) {
    double loss = 0;
    for (std::size_t i = 0; i < M; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            const T diff = f[i * n + j] - y[i * y_strides[0] + (n0 + j) * y_strides[1]];
            loss += 0.5 * double(diff) * diff;
            g[i * n + j] = diff;  // d 0.5 (f - y)^2 / df
        }
    return loss;
}

// Forward pass: f[k] (D_{k+1}, N) for k = 0..K and h[k] (D_k, N) for k = 1..K; h[0] is x.
// A caller that needs no f_k of a hidden layer passes f[k] == h[k + 1]: that buffer then keeps
// h_{k+1} = relu_marked(f_k) alone, and mlp_backward reads ReLU'(f_k) from it.
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

// Whether mlp_backward, given scratch for it, takes layer k's weight gradient dl/df_k h_k^T as
// dl/df_k (h_k^T) with h_k transposed in cache: the register-blocked kernel then broadcasts
// dl/df_k (no sum across a vector's lanes an entry, no BLAS call packing both factors). Layers of
// at least 16 outputs and 8 inputs, up to 2^22 multiply-adds (MLPTrainer hands the scratch).
// Measured (one thread, AVX-512, float64, the transpose included): digits' 100x64 layer on 200
// samples 37 us against 52 us for OpenBLAS's call, a 32x32 layer on 64 samples 1.78 against
// 2.09 us; a 10x96 layer on 200 samples 10.6 against 5.3 us (hence at least 16 outputs).
inline bool use_transposed_input(std::size_t M, std::size_t D, std::size_t N) {
    return M >= 16 && D >= 8 && N > 1 && double(M) * double(D) * double(N) <= double(1 << 22);
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
// is y[i * y_strides[0] + n * y_strides[1]] (strides of 0 broadcast). Fills dW[k] (D_{k+1}, D_k)
// and db[k] (D_{k+1}), returns the loss. transposed, when given, is scratch of N max_k D_k
// elements: the layers use_transposed_input picks (the first layer always, others when too small
// for tasks) then take their weight gradient from h_k transposed into it. layer_done(k) runs as
// soon as dW[k] and db[k] are complete and W_k is read no more (layers K, K-1, .., 0): a training
// step updates layer k there, while its gradients are in cache.
struct NoLayerHook {
    void operator()(std::size_t) const {}
};

template <class T, class LayerDone = NoLayerHook>
T mlp_backward(const MLPView<T>& net, const T* const* f, const T* const* h, const T* y,
               const std::size_t* y_strides, std::size_t N, T* const* dW, T* const* db,
               T* workspace, T* transposed = nullptr, const LayerDone& layer_done = {}) {
    const std::size_t K = net.K;
    const std::size_t* dims = net.dims;
    T* g = workspace;  // dl/df_k, (D_{k+1}, N)
    T* g_prev = workspace + N * *std::max_element(dims, dims + K + 2);
    T* partials = g_prev + N * *std::max_element(dims, dims + K + 2);
    const double loss = squared_error(f[K], y, y_strides, dims[K + 1], 0, N, g);
    for (std::size_t k = K + 1; k-- > 0;) {
        const std::size_t M = dims[k + 1], D = k ? dims[k] : 0;  // no dl/dh_0 is needed
        // dl/dW_k = dl/df_k h_k^T and dl/db_k = dl/df_k summed over samples; below the first
        // layer also dl/dh_k = W_k^T dl/df_k, and dl/df_{k-1} = ReLU'(f_{k-1}) * dl/dh_k on each
        // tile while it is in cache. All read dl/df_k only, so they share one parallel region.
        // f[k - 1] == h[k]: the forward pass kept h_k = relu_marked(f_{k-1}) alone (mlp_forward)
        const bool marked = k && f[k - 1] == h[k];
        const ReluMask<T> relu_mask{
            StoreReluGrad<T>{g_prev, k ? f[k - 1] : nullptr, N, net.relu_grad_at_zero, marked}};
        const double work = double(M) * double(N) * double(dims[k] + D + 1);
        const bool via_t = transposed && use_transposed_input(M, dims[k], N) &&
                           (k == 0 || work < parallel_work);
        if (via_t || work < parallel_work) {
            // a small layer, on the calling thread: no tasks to build
            if (via_t) {  // dl/dW_k = dl/df_k (M, N) h_k^T (N, D_k)
                transpose(h[k], dims[k], N, transposed);
                small_nn(M, dims[k], N, g, N, 1, transposed, dims[k],
                         static_cast<const T*>(nullptr), StorePlain<T>{dW[k], dims[k]});
            } else {
                weight_grad(g, h[k], M, dims[k], N, dW[k]);
            }
            if (D * N > 0)
                input_grad_relu_loops(net.weights[k], g, M, D, N, g_prev, f[k - 1],
                                      net.relu_grad_at_zero, marked);
            if (N == 1)  // one sample: the sum is the value itself
                std::copy_n(g, M, db[k]);
            else
                row_sums(g, M, N, db[k]);
        } else {
            const auto wg = weight_grad_tasks(g, h[k], M, dims[k], N, dW[k], partials);
            const auto ig = input_grad_tasks(net.weights[k], g, M, D, N, g_prev, relu_mask);
            const auto rs = row_sum_tasks(g, M, N, db[k]);
            if (wg.count + ig.count + rs.count > 2 || rs.work >= parallel_work)
                run_together(wg, ig, rs);
            else  // one product and the bias sums: waking a worker costs more than the sums
                run_together(task_set(wg.count + ig.count + rs.count, [&](std::size_t i) {
                    if (i < wg.count) return wg.run(i);
                    if (i - wg.count < ig.count) return ig.run(i - wg.count);
                    rs.run(i - wg.count - ig.count);
                }, 0.0));
            run_together(weight_grad_sum_tasks(M, dims[k], N, dW[k], partials));
        }
        layer_done(k);
        std::swap(g, g_prev);
    }
    return T(loss);
}

// ------------------------------------------------------------------------- one sample, lean
//
// Loss and gradients of one sample (N = 1) through layers that all stay in the loops (no BLAS):
// the arithmetic of mlp_forward and mlp_backward at N = 1, element for element (so the same
// bits), without their choices between kernels, tasks and scratch layouts, which cost more than
// a small network's arithmetic. y as in mlp_backward; scratch holds
// mlp_one_scratch(K, dims) elements.
template <class T> bool mlp_one_sample_loops(std::size_t K, const std::size_t* dims) {
    for (std::size_t k = 0; k <= K; ++k)
        if (use_blas(dims[k + 1], 1, dims[k])) return false;  // (the three products alike)
    return true;
}
inline std::size_t mlp_one_scratch(std::size_t K, const std::size_t* dims) {
    std::size_t rows = 0;
    for (std::size_t k = 1; k <= K + 1; ++k) rows += dims[k];
    return 2 * rows + 2 * *std::max_element(dims, dims + K + 2);
}

template <class T>
T mlp_gradients_one(const MLPView<T>& net, const T* x, const T* y, const std::size_t* y_strides,
                    T* const* dW, T* const* db, T* scratch) {
    const std::size_t K = net.K;
    const std::size_t* dims = net.dims;
    std::size_t rows = 0;
    for (std::size_t k = 1; k <= K + 1; ++k) rows += dims[k];
    T* const f = scratch;  // f_k at f + at_k, h_{k+1} at h + at_k (at_k: the rows before layer k)
    T* const h = f + rows;
    T* g = h + rows;
    T* g_prev = g + *std::max_element(dims, dims + K + 2);
    const T* in = x;
    for (std::size_t k = 0, at = 0; k <= K; at += dims[k + 1], ++k) {  // affine() at N = 1
        const std::size_t M = dims[k + 1], D = dims[k];
        affine_one(net.weights[k], net.biases[k], in, M, D, f + at, h + at);
        in = h + at;
    }
    const std::size_t M_out = dims[K + 1];
    std::size_t at = rows - M_out;  // layer k's rows start at `at`
    const double loss = squared_error(f + at, y, y_strides, M_out, 0, 1, g);
    for (std::size_t k = K + 1; k-- > 0;) {
        const std::size_t M = dims[k + 1], D = dims[k];
        const T* hk = k ? h + at - D : x;  // the layer's input
        weight_grad_loops(g, hk, M, D, 1, dW[k]);
        std::copy_n(g, M, db[k]);
        if (!k) break;
        input_grad_relu_loops(net.weights[k], g, M, D, 1, g_prev, f + at - D,
                              net.relu_grad_at_zero, false);
        std::swap(g, g_prev);
        at -= D;
    }
    return T(loss);
}

// ------------------------------------------------------------------- loss and gradients at once
//
// When only the loss and the gradients are wanted, no f or h need be kept for all N samples: the
// samples are cut into blocks, and each block goes forward through every layer and straight back
// with its activations in a scratch that stays in the core's own cache. Each hidden layer keeps
// only h = relu_marked(f), written over f: the sign of its zeros tells ReLU'(f) (f < 0 or
// f == 0) without f. The forward and input-gradient products of a block run in small_nn (its
// operands are in cache: no packing; bias, ReLU and ReLU' on the tiles in registers), the weight
// gradients in BLAS. Blocks are dealt to a fixed number of groups, by shape alone; each group adds
// its blocks' weight gradients in order (BLAS with beta = 1), then the groups' sums are added in
// order: the same bits for any number of threads. Measured on the 64-256x4-10 network, batch
// 4096 (AVX-512, Zen 4, two threads): blocks of 32 (float64) or 64 (float32) samples 1.08-1.15x
// and 1.03x the FLOP limit, against 1.25x and 1.15-1.28x for blocks of 256 through BLAS alone.
struct BlockPlan {
    std::size_t block = 16, blocks = 0, groups = 0;
    std::size_t rows = 0;     // sum of D_1 .. D_{K+1}: every layer's output rows
    std::size_t widest = 0;   // max D_k: a gradient buffer's rows
    std::size_t params = 0;   // weights of every layer
    bool use = false;         // worth it: several blocks, BLAS-sized layers

    // Samples a block holds a multiple of: a panel of small_nn's widest tiles (4 vectors of 64
    // bytes), so that only the batch's last block can end in narrower tiles.
    static constexpr std::size_t panel_bytes = 256;

    // (elem: bytes of a value, 4 or 8)
    BlockPlan(std::size_t K, const std::size_t* dims, std::size_t N, std::size_t elem) {
        double work = 0;
        for (std::size_t k = 0; k <= K; ++k) {
            rows += dims[k + 1];
            params += dims[k + 1] * dims[k];
            work += double(dims[k + 1]) * double(dims[k]) * double(N);
        }
        widest = *std::max_element(dims, dims + K + 2);
        // About 512 KiB of scratch a block (half the L2 cache of a Zen 4 or Skylake-SP core;
        // measured on the 64-256x4-10 network: 32 to 128 samples of float64 within noise, 48 and
        // 256 worse, 64 samples of float32 best), in whole panels, at most 1024 samples; blocks
        // of equal length (the last may be shorter), spread as evenly over the groups as whole
        // panels allow.
        const std::size_t panel = panel_bytes / elem;
        // (values a sample, not bytes: with N = 0 the widths may be near 2^64 / elem, and a
        // product with elem could wrap to 0)
        const std::size_t per_sample = std::max<std::size_t>(1, rows + 2 * widest);
        const auto panels = [&](std::size_t n) { return (n + panel - 1) / panel * panel; };
        block = std::clamp<std::size_t>(
            ((std::size_t(1) << 19) / elem) / per_sample / panel * panel, panel, 1024);
        blocks = (N + block - 1) / block;
        groups = std::min<std::size_t>(blocks, 8);
        if (blocks > groups) blocks = (blocks + groups - 1) / groups * groups;
        if (blocks > 1) {
            block = panels((N + blocks - 1) / blocks);
            blocks = (N + block - 1) / block;
        }
        // Every layer BLAS-sized at 1024 samples (smaller networks take the layer-by-layer
        // pass), and each block's weight gradients within BLAS's int sizes.
        bool blas = N < std::size_t(INT_MAX);
        for (std::size_t k = 0; k <= K; ++k)
            blas = blas && use_blas(dims[k + 1], dims[k], 1024) &&
                   blas_sizes_fit(dims[k + 1], dims[k], block);
        use = blas && blocks >= 2 && 3 * work >= parallel_work;
    }
    std::size_t block_scratch() const { return (rows + 2 * widest) * block; }
    std::size_t workspace() const { return groups * (params + block_scratch()); }
};

#if defined(BACKPROP_CORE_CBLAS)  // (without a BLAS no plan is used)
// Loss and gradients for a plan with `use` set; workspace holds plan.workspace() elements
// (the groups' weight-gradient sums, then their block scratch).
template <class T>
T mlp_gradients_blocked(const MLPView<T>& net, const BlockPlan& plan, const T* x, std::size_t N,
                        const T* y, const std::size_t* y_strides, T* const* dW, T* const* db,
                        T* workspace) {
    const std::size_t K = net.K, B = plan.block, G = plan.groups;
    const std::size_t* dims = net.dims;
    std::vector<std::size_t> at_w(K + 2, 0), at_r(K + 2, 0);  // layer k's weights and rows
    for (std::size_t k = 0; k <= K; ++k) {
        at_w[k + 1] = at_w[k] + dims[k + 1] * dims[k];
        at_r[k + 1] = at_r[k] + dims[k + 1];
    }
    std::vector<double> sums(G * (1 + plan.rows), 0.0);  // a group's loss, then its db rows
    const T c = net.relu_grad_at_zero;
    const auto group = [&](std::size_t gi) {
        T* w_sum = workspace + gi * plan.params;
        double* sum = sums.data() + gi * (1 + plan.rows);
        // layer k's output at a + at_r[k] B: h_{k+1} = relu_marked(f_k) in place of f_k (k < K),
        // f_K itself for the output layer
        T* a = workspace + G * plan.params + gi * plan.block_scratch();
        T* g = a + plan.rows * B;
        T* g_prev = g + plan.widest * B;
        for (std::size_t b = gi; b < plan.blocks; b += G) {
            const std::size_t n0 = b * B, n = std::min(B, N - n0);  // the block's rows are n long
            const T* in = x + n0;
            std::size_t ld_in = N;
            for (std::size_t k = 0; k <= K; ++k) {
                const std::size_t M = dims[k + 1], D = dims[k];
                T* ak = a + at_r[k] * B;
                small_nn(M, n, D, net.weights[k], D, 1, in, ld_in, net.biases[k],
                         StoreRelu<T>{ak, k < K ? ak : nullptr, n});
                in = ak, ld_in = n;
            }
            sum[0] += squared_error(a + at_r[K] * B, y, y_strides, dims[K + 1], n0, n, g);
            for (std::size_t k = K + 1; k-- > 0;) {
                const std::size_t M = dims[k + 1], D = dims[k];
                const T* hk = k ? a + at_r[k - 1] * B : x + n0;
                cblas_gemm(false, true, M, D, n, g, n, hk, k ? n : N, w_sum + at_w[k], D, b != gi);
                with_widest_vectors([&] {  // dl/db_k: g's rows summed
                    for (std::size_t i = 0; i < M; ++i)
                        sum[1 + at_r[k] + i] += sum_row(g + i * n, n);
                });
                if (!k) break;
                small_nn(D, n, M, net.weights[k], 1, D, g, n, static_cast<const T*>(nullptr),
                         StoreReluGrad<T>{g_prev, hk, n, c, true});
                std::swap(g, g_prev);
            }
        }
    };
    run_together(task_set(G, group, double(plan.params) * double(N)));
    // The groups' sums, in group order, 4096 weights a task.
    const std::size_t chunk = 4096;
    run_together(task_set((plan.params + chunk - 1) / chunk, [&](std::size_t t) {
        const std::size_t e1 = std::min(plan.params, (t + 1) * chunk);
        const auto after = std::upper_bound(at_w.begin(), at_w.end(), t * chunk);
        std::size_t k = std::size_t(after - at_w.begin()) - 1;  // the layer of weight t * chunk
        T* acc = workspace;  // group 0's sums take the others', in group order
        with_widest_vectors([&] {
            for (std::size_t gi = 1; gi < G; ++gi) {
                const T* other = workspace + gi * plan.params;
                for (std::size_t e = t * chunk; e < e1; ++e) acc[e] += other[e];
            }
        });
        for (std::size_t e = t * chunk; e < e1; ++e) {
            while (e >= at_w[k + 1]) ++k;
            dW[k][e - at_w[k]] = acc[e];
        }
    }, double(G) * double(plan.params)));
    double loss = 0;
    for (std::size_t gi = 0; gi < G; ++gi) loss += sums[gi * (1 + plan.rows)];
    for (std::size_t k = 0; k <= K; ++k)
        for (std::size_t i = 0; i < dims[k + 1]; ++i) {
            double total = 0;
            for (std::size_t gi = 0; gi < G; ++gi)
                total += sums[gi * (1 + plan.rows) + 1 + at_r[k] + i];
            db[k][i] = T(total);
        }
    return T(loss);
}
#endif

}  // namespace backprop_core
