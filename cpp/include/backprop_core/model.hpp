// Whole passes of the ReLU MLP, owned by the core: sizes checked before anything is allocated,
// the choice of plan (blocks of samples through every layer, or layer by layer; BLAS or loops),
// the scratch, and a model that holds its parameters packed. A C++ caller, tests/cpp and the
// Python bindings all get the same pass from here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlp.hpp"

namespace backprop_core {

// a * b and a + b as counts of elements, or std::bad_alloc when the result could not be held
// (arrays of zero size may have dimensions whose products overflow).
inline std::size_t checked_mul(std::size_t a, std::size_t b) {
    std::size_t r;
    if (__builtin_mul_overflow(a, b, &r) || r > std::size_t(PTRDIFF_MAX) / sizeof(double))
        throw std::bad_alloc();
    return r;
}
inline std::size_t checked_add(std::size_t a, std::size_t b) {
    std::size_t r;
    if (__builtin_add_overflow(a, b, &r) || r > std::size_t(PTRDIFF_MAX) / sizeof(double))
        throw std::bad_alloc();
    return r;
}

// Scratch for passes, grown as needed. One per thread (thread_workspace): no lock is ever held
// across compute, so a process forked while another thread computes has nothing locked.
template <class T> struct Workspace {
    std::vector<T> store;
    // the layer-by-layer plan's offsets and pointers into store, kept to allocate nothing per call
    std::vector<std::size_t> at;
    std::vector<T*> f, h;
    std::vector<const T*> fc, hc;
    T* reserve(std::size_t n) {
        if (store.size() < n) {
            std::vector<T>().swap(store);  // (no copy of the old contents)
            store.resize(n);
        }
        return store.data();
    }
    // Keeps at most `keep` elements between calls.
    void trim(std::size_t keep = std::size_t(1) << 27) {
        if (store.size() > keep) std::vector<T>().swap(store);
    }
};

template <class T> Workspace<T>& thread_workspace() {
    thread_local Workspace<T> w;
    return w;
}

// Checks a network's widths: K + 2 entries D_0 .. D_{K+1} (K >= 0), and that a batch of N fits.
inline void check_network(std::size_t K, const std::size_t* dims, std::size_t N) {
    if (!dims) throw std::invalid_argument("network: no widths");
    for (std::size_t k = 0; k <= K + 1; ++k) checked_mul(2, checked_mul(dims[k], N));
    for (std::size_t k = 0; k <= K; ++k) checked_mul(dims[k + 1], dims[k]);
}

// Loss and every weight and bias gradient, forward then backward, by the plan that suits the
// shape: blocks of samples going forward and straight back (no f or h kept for all N; BLAS builds,
// BLAS-sized layers), else every layer's f and h for the whole batch. dW[k] (D_{k+1}, D_k) and
// db[k] (D_{k+1}) are written; y as in mlp_backward. Throws std::bad_alloc when the scratch
// cannot be had.
template <class T>
T mlp_gradients(const MLPView<T>& net, const T* x, std::size_t N, const T* y,
                const std::size_t* y_strides, T* const* dW, T* const* db, Workspace<T>& ws) {
    const std::size_t K = net.K;
    const std::size_t* dims = net.dims;
    check_network(K, dims, N);
    if (N == 1 && mlp_one_sample_loops<T>(K, dims))
        return mlp_gradients_one(net, x, y, y_strides, dW, db, ws.reserve(mlp_one_scratch(K, dims)));
#if defined(BACKPROP_CORE_CBLAS)
    const BlockPlan plan(K, dims, N, sizeof(T));
    if (plan.use)  // (use implies every layer and the block fit BLAS's int sizes)
        return mlp_gradients_blocked(net, plan, x, N, y, y_strides, dW, db,
                                     ws.reserve(plan.workspace()));
#endif
    auto& at = ws.at;  // f_k at at[k], h_{k+1} at total + at[k]
    at.assign(1, 0);
    for (std::size_t k = 0; k <= K; ++k)
        at.push_back(checked_add(at.back(), checked_mul(dims[k + 1], N)));
    const std::size_t total = at.back();
    T* s = ws.reserve(checked_add(checked_mul(2, total), mlp_workspace_size(K, dims, N)));
    ws.f.clear(), ws.h.assign(1, nullptr), ws.fc.clear(), ws.hc.assign(1, x);
    for (std::size_t k = 0; k <= K; ++k) {
        ws.f.push_back(s + at[k]);
        ws.h.push_back(s + total + at[k]);
        ws.fc.push_back(ws.f.back());
        if (k) ws.hc.push_back(ws.h[k]);
    }
    mlp_forward(net, x, N, ws.f.data(), ws.h.data());
    return mlp_backward(net, ws.fc.data(), ws.hc.data(), y, y_strides, N, dW, db, s + 2 * total);
}

// The backward pass from stored f and h, with its scratch sized and checked here.
template <class T>
T mlp_backward(const MLPView<T>& net, const T* const* f, const T* const* h, const T* y,
               const std::size_t* y_strides, std::size_t N, T* const* dW, T* const* db,
               Workspace<T>& ws) {
    check_network(net.K, net.dims, N);
    T* work = ws.reserve(mlp_workspace_size(net.K, net.dims, N));
    return mlp_backward(net, f, h, y, y_strides, N, dW, db, work);
}

// A ReLU MLP whose parameters live packed in one block: W_0, b_0, W_1, b_1, ...
template <class T> class Model {
  public:
    // Copies the parameters in: weights[k] (dims[k + 1], dims[k]), biases[k] (dims[k + 1]).
    Model(std::vector<std::size_t> dims, const T* const* weights, const T* const* biases)
        : dims_(std::move(dims)) {
        if (dims_.size() < 2)
            throw std::invalid_argument("Model: expected at least one layer (two widths)");
        std::size_t total = 0;
        for (std::size_t k = 0; k + 1 < dims_.size(); ++k) {
            w_at_.push_back(total);
            total = checked_add(total, checked_mul(dims_[k + 1], dims_[k]));
            b_at_.push_back(total);
            total = checked_add(total, dims_[k + 1]);
        }
        params_.resize(total);
        for (std::size_t k = 0; k < layers(); ++k) {
            std::copy_n(weights[k], dims_[k + 1] * dims_[k], params_.data() + w_at_[k]);
            std::copy_n(biases[k], dims_[k + 1], params_.data() + b_at_[k]);
            w_.push_back(params_.data() + w_at_[k]);
            b_.push_back(params_.data() + b_at_[k]);
        }
    }
    Model(const Model&) = delete;  // w_ and b_ point into params_
    Model& operator=(const Model&) = delete;

    std::size_t layers() const { return dims_.size() - 1; }
    const std::vector<std::size_t>& dims() const { return dims_; }
    T* weights(std::size_t k) { return params_.data() + w_at_.at(k); }
    T* biases(std::size_t k) { return params_.data() + b_at_.at(k); }
    const T* data() const { return params_.data(); }
    std::size_t size() const { return params_.size(); }

    MLPView<T> view(T relu_grad_at_zero = T(1)) const {
        return {layers() - 1, dims_.data(), w_.data(), b_.data(), relu_grad_at_zero};
    }
    // f[k] (D_{k+1}, N) for every layer, h[k] (D_k, N) for k = 1..K (h[0] unused).
    void forward(const T* x, std::size_t N, T* const* f, T* const* h) const {
        check_network(layers() - 1, dims_.data(), N);
        mlp_forward(view(), x, N, f, h);
    }
    T gradients(const T* x, std::size_t N, const T* y, const std::size_t* y_strides,
                T* const* dW, T* const* db, T relu_grad_at_zero = T(1)) const {
        auto& ws = thread_workspace<T>();
        const T loss = mlp_gradients(view(relu_grad_at_zero), x, N, y, y_strides, dW, db, ws);
        ws.trim();
        return loss;
    }

  private:
    std::vector<std::size_t> dims_, w_at_, b_at_;
    std::vector<T> params_;
    std::vector<const T*> w_, b_;
};

}  // namespace backprop_core
