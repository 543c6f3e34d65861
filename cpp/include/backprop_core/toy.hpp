// The scalar chain of notebook 7.1, generalised to L activations and a batch of N samples:
//   f_0 = beta_0 + omega_0 x,  h_k = a_k(f_{k-1}),  f_k = beta_k + omega_k h_k  (k = 1..L),
//   loss = sum_n (f_L - y)^2.
// Arrays are row-major with one row per stage: f is (L+1, N), h is (L, N) with row k-1 holding h_k.
//
// Notebook 7.1's equations, each in one function that every pass calls:
//   f_k = beta_k + omega_k h_k (h_0 = x)        toy_affine()
//   h_k = a_k(f_{k-1}), dh_k/df_{k-1}           activate_block(), activate_grad_block()
//                                               (the rules themselves: activations.hpp)
//   l = sum (f_L - y)^2, dl/df_L = 2 (f_L - y)  toy_loss()
//   dl/dbeta_k = sum dl/df_k,
//   dl/domega_k = sum dl/df_k h_k               toy_param_sums()
//   dl/dh_k = omega_k dl/df_k,
//   dl/df_{k-1} = dh_k/df_{k-1} dl/dh_k         toy_back_step()
// Whole passes: toy_forward(), toy_forward_backward() (every intermediate kept) and
// toy_gradients() (blocks in cache, only the sums kept).
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "activations.hpp"
#include "parallel.hpp"
#include "vmath.hpp"

namespace backprop_core {


template <class T> struct ToyChain {
    const Activation* activations;  // L entries
    std::size_t L;
    const T* beta;   // L + 1 entries
    const T* omega;  // L + 1 entries
    T relu_grad_at_zero = T(1);
};

// h = a(f) over n samples; sin, cos and exp go through the vector math functions.
template <class T> void activate_block(Activation a, const T* f, T* h, std::size_t n) {
    if (a == Activation::sin) return vfunc(VFunc::sin, f, h, n);
    if (a == Activation::cos) return vfunc(VFunc::cos, f, h, n);
    if (a == Activation::exp) return vfunc(VFunc::exp, f, h, n);
    // one loop per rule, so that each vectorises (a switch per element does not)
    const auto each = [&](auto rule) {
        for (std::size_t i = 0; i < n; ++i) h[i] = rule(f[i]);
    };
    switch (a) {
    case Activation::identity: return each([](T v) { return activate(Activation::identity, v); });
    case Activation::tanh: return each([](T v) { return activate(Activation::tanh, v); });
    case Activation::sigmoid: return each([](T v) { return activate(Activation::sigmoid, v); });
    case Activation::relu: return each([](T v) { return activate(Activation::relu, v); });
    default: break;
    }
    for (std::size_t i = 0; i < n; ++i) h[i] = activate(a, f[i]);
}

// t = dh/df over n samples, given f and h = a(f).
template <class T>
void activate_grad_block(Activation a, const T* f, const T* h, T* t, std::size_t n, T relu0) {
    if (a == Activation::sin) return vfunc(VFunc::cos, f, t, n);
    if (a == Activation::cos) {
        vfunc(VFunc::sin, f, t, n);
        for (std::size_t i = 0; i < n; ++i) t[i] = -t[i];
        return;
    }
    const auto each = [&](auto rule) {
        for (std::size_t i = 0; i < n; ++i) t[i] = rule(f[i], h[i]);
    };
    switch (a) {
    case Activation::identity:
        return each([](T, T) { return T(1); });
    case Activation::exp:
        return each([relu0](T v, T hv) { return activate_grad(Activation::exp, v, hv, relu0); });
    case Activation::tanh:
        return each([relu0](T v, T hv) { return activate_grad(Activation::tanh, v, hv, relu0); });
    case Activation::sigmoid:
        return each(
            [relu0](T v, T hv) { return activate_grad(Activation::sigmoid, v, hv, relu0); });
    case Activation::relu:
        return each([relu0](T v, T hv) { return activate_grad(Activation::relu, v, hv, relu0); });
    default: break;
    }
    for (std::size_t i = 0; i < n; ++i) t[i] = activate_grad(a, f[i], h[i], relu0);
}

// out = beta + omega * in over n samples: f_k from h_k (f_0 from x).
template <class T> void toy_affine(T beta, T omega, const T* in, T* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = beta + omega * in[i];
}

// Sums over samples, in double: eight interleaved partial sums (lane j takes the samples at
// i % 8 == j, so the additions do not wait on each other and vectorise), combined in a fixed
// order, ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), as gemm.hpp's sum_rows. A lone sample's
// sum is 0.0 + its value, as toy_gradients_one's. Measured on notebook 7.1's chain over 10^6
// samples (AVX-512, benchmarks/toy_cycles.py): 25 cycles a sample, against 31 with one running
// sum a quantity (each addition waits four cycles on the last); its transcendentals alone take 14.
typedef double ToyLanes __attribute__((vector_size(64)));

inline double toy_lanes_total(const ToyLanes& l) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// loss += sum (f_L - y)^2 and g = dl/df_L = 2 (f_L - y) over n samples; sample i's target is
// y[i * y_stride].
template <class T>
void toy_loss(const T* f_L, const T* y, std::size_t y_stride, std::size_t n, double& loss, T* g) {
    ToyLanes sum{};
    with_widest_vectors([&] {
        ToyLanes acc{};
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            ToyLanes d;
            for (std::size_t j = 0; j < 8; ++j) {
                const T diff = f_L[i + j] - y[(i + j) * y_stride];
                g[i + j] = T(2) * diff;  // d(f - y)^2 / df
                d[j] = double(diff);
            }
            acc += d * d;
        }
        for (std::size_t j = 0; i + j < n; ++j) {
            const T diff = f_L[i + j] - y[(i + j) * y_stride];
            g[i + j] = T(2) * diff;
            acc[j] += double(diff) * diff;
        }
        sum = acc;
    });
    loss += toy_lanes_total(sum);
}

// dbeta += sum g (df_k/dbeta_k = 1) and domega += sum g * in (df_k/domega_k = h_k, x for k = 0).
template <class T>
void toy_param_sums(const T* g, const T* in, std::size_t n, double& dbeta, double& domega) {
    ToyLanes sb{}, sw{};
    with_widest_vectors([&] {
        ToyLanes b{}, w{};
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            ToyLanes gv, iv;
            for (std::size_t j = 0; j < 8; ++j) gv[j] = double(g[i + j]), iv[j] = double(in[i + j]);
            b += gv;
            w += gv * iv;
        }
        for (std::size_t j = 0; i + j < n; ++j) {
            b[j] += double(g[i + j]);
            w[j] += double(g[i + j]) * in[i + j];
        }
        sb = b, sw = w;
    });
    dbeta += toy_lanes_total(sb);
    domega += toy_lanes_total(sw);
}

// dl/dh_k = omega_k g (into dh when not null) and g_prev = t * dl/dh_k, where t = dh_k/df_{k-1}
// and g = dl/df_k. Element by element, so g_prev may be g or t.
template <class T>
void toy_back_step(T omega, const T* t, const T* g, T* dh, T* g_prev, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const T d = omega * g[i];
        if (dh) dh[i] = d;
        g_prev[i] = t[i] * d;
    }
}

// Samples are cut into parts of this many, run on the thread pool; sums over samples are made
// per part and combined in order, so results do not depend on the number of threads.
inline constexpr std::size_t toy_part = std::size_t(1) << 15;

inline std::size_t toy_parts(std::size_t N) {
    return std::max<std::size_t>(1, (N + toy_part - 1) / toy_part);
}

// Partial sums of one range of samples: loss, then dl/dbeta_k and dl/domega_k for k = 0..L.
struct ToySums {
    double loss = 0;
    std::vector<double> dbeta, domega;

    ToySums() = default;
    explicit ToySums(std::size_t L) : dbeta(L + 1, 0.0), domega(L + 1, 0.0) {}
};

// Forward pass of samples [n0, n1): fills those columns of f (L+1, N) and h (L, N).
template <class T>
void toy_forward_part(const ToyChain<T>& c, const T* x, std::size_t N, std::size_t n0,
                      std::size_t n1, T* f, T* h) {
    const std::size_t L = c.L, n = n1 - n0;
    toy_affine(c.beta[0], c.omega[0], x + n0, f + n0, n);
    for (std::size_t k = 1; k <= L; ++k) {
        T* h_k = h + (k - 1) * N + n0;
        activate_block(c.activations[k - 1], f + (k - 1) * N + n0, h_k, n);
        toy_affine(c.beta[k], c.omega[k], h_k, f + k * N + n0, n);
    }
}

// Forward pass: fills f (L+1, N) and h (L, N).
template <class T>
void toy_forward(const ToyChain<T>& c, const T* x, std::size_t N, T* f, T* h) {
    parallel_for(toy_parts(N), [&](std::size_t p) {
        toy_forward_part(c, x, N, p * toy_part, std::min(N, (p + 1) * toy_part), f, h);
    });
}

// Backward pass of samples [n0, n1) from a forward pass's f and h: fills those columns of dl_df
// and dl_dh and returns their sums.
template <class T>
ToySums toy_backward_part(const ToyChain<T>& c, const T* x, const T* y, std::size_t y_stride,
                          std::size_t N, std::size_t n0, std::size_t n1, const T* f, const T* h,
                          T* dl_df, T* dl_dh) {
    const std::size_t L = c.L;
    ToySums s(L);  // sums in double: float32 rounds once, at the end
    const std::size_t n = n1 - n0;
    toy_loss(f + L * N + n0, y + n0 * y_stride, y_stride, n, s.loss, dl_df + L * N + n0);
    for (std::size_t k = L + 1; k-- > 0;) {
        const T* g_k = dl_df + k * N + n0;                        // dl/df_k
        const T* in_k = (k == 0 ? x : h + (k - 1) * N) + n0;      // what omega_k multiplies
        toy_param_sums(g_k, in_k, n, s.dbeta[k], s.domega[k]);
        if (k == 0) break;
        T* g_prev = dl_df + (k - 1) * N + n0;
        activate_grad_block(c.activations[k - 1], f + (k - 1) * N + n0, in_k, g_prev, n,
                            c.relu_grad_at_zero);  // dh_k/df_{k-1}
        toy_back_step(c.omega[k], g_prev, g_k, dl_dh + (k - 1) * N + n0, g_prev, n);
    }
    return s;
}

// Adds up the parts' sums in order into dl_dbeta and dl_domega (L+1 each); returns the loss.
template <class T>
T combine(const std::vector<ToySums>& sums, std::size_t L, T* dl_dbeta, T* dl_domega) {
    double loss = 0;
    for (std::size_t k = 0; k <= L; ++k) {
        double db = 0, dw = 0;
        for (const auto& s : sums) {
            db += s.dbeta[k];
            dw += s.domega[k];
        }
        dl_dbeta[k] = T(db);
        dl_domega[k] = T(dw);
    }
    for (const auto& s : sums) loss += s.loss;
    return T(loss);
}

// Forward and backward pass; sample n's target is y[n * y_stride] (a stride of 0 broadcasts one
// target). Fills f (L+1, N), h (L, N), dl_df (L+1, N), dl_dh (L, N), dl_dbeta and dl_domega
// (L+1 each); returns the loss. Each part's backward runs right after its forward, while its
// rows are in cache.
template <class T>
T toy_forward_backward(const ToyChain<T>& c, const T* x, const T* y, std::size_t y_stride,
                       std::size_t N, T* f, T* h, T* dl_df, T* dl_dh, T* dl_dbeta, T* dl_domega) {
    std::vector<ToySums> sums(toy_parts(N));
    parallel_for(sums.size(), [&](std::size_t p) {
        const std::size_t n0 = p * toy_part, n1 = std::min(N, n0 + toy_part);
        toy_forward_part(c, x, N, n0, n1, f, h);
        sums[p] = toy_backward_part(c, x, y, y_stride, N, n0, n1, f, h, dl_df, dl_dh);
    });
    return combine(sums, c.L, dl_dbeta, dl_domega);
}

// ---------------------------------------------------------------------------- gradients only

// The chain's forward and backward pass over samples [begin, end), a cache-sized block at a time,
// keeping only the sums.
template <class T>
ToySums toy_sums(const ToyChain<T>& c, const T* x, const T* y, std::size_t y_stride,
                 std::size_t begin, std::size_t end) {
    const std::size_t B = std::min<std::size_t>(256, std::max<std::size_t>(1, end - begin));
    const std::size_t L = c.L;
    ToySums s(L);
    std::vector<T> buf((2 * L + 3) * B);
    T* f = buf.data();            // rows f_0 .. f_L
    T* h = f + (L + 1) * B;       // rows h_1 .. h_L
    T* g = h + L * B;             // dl/df_k of the current stage
    T* t = g + B;                 // dh_k/df_{k-1}
    for (std::size_t at = begin; at < end; at += B) {
        const std::size_t n = std::min(B, end - at);
        const T* xb = x + at;
        toy_affine(c.beta[0], c.omega[0], xb, f, n);
        for (std::size_t k = 1; k <= L; ++k) {
            T* hk = h + (k - 1) * B;
            activate_block(c.activations[k - 1], f + (k - 1) * B, hk, n);
            toy_affine(c.beta[k], c.omega[k], hk, f + k * B, n);
        }
        toy_loss(f + L * B, y + at * y_stride, y_stride, n, s.loss, g);
        for (std::size_t k = L + 1; k-- > 0;) {
            const T* in = k == 0 ? xb : h + (k - 1) * B;
            double db = 0, dw = 0;  // this block's sums, then added to the part's
            toy_param_sums(g, in, n, db, dw);
            s.dbeta[k] += db;
            s.domega[k] += dw;
            if (k == 0) break;
            activate_grad_block(c.activations[k - 1], f + (k - 1) * B, in, t, n,
                                c.relu_grad_at_zero);
            toy_back_step<T>(c.omega[k], t, g, nullptr, g, n);
        }
    }
    return s;
}

// One sample, forward and back, on the stack: the same operations in the same order as
// toy_sums over a block of one (whose vector functions fall back to the scalar ones for so few
// samples), so the same bits, without the thread pool, the parts' sums or any allocation.
inline constexpr std::size_t toy_one_max_L = 32;

template <class T>
T toy_gradients_one(const ToyChain<T>& c, T x, T y, T* dl_dbeta, T* dl_domega) {
    const std::size_t L = c.L;
    T f[toy_one_max_L + 1], h[toy_one_max_L + 1];  // h[k] is h_k, h[0] = x
    h[0] = x;
    f[0] = c.beta[0] + c.omega[0] * x;
    for (std::size_t k = 1; k <= L; ++k) {
        h[k] = activate(c.activations[k - 1], f[k - 1]);
        f[k] = c.beta[k] + c.omega[k] * h[k];
    }
    const T diff = f[L] - y;
    const double loss = 0.0 + double(diff) * diff;
    T g = T(2) * diff;  // dl/df_k, from k = L down
    for (std::size_t k = L + 1; k-- > 0;) {
        dl_dbeta[k] = T(0.0 + double(g));  // (sums start from +0: a -0 gradient reads +0)
        dl_domega[k] = T(0.0 + double(g) * h[k]);
        if (k == 0) break;
        const T t = activate_grad(c.activations[k - 1], f[k - 1], h[k], c.relu_grad_at_zero);
        g = t * (c.omega[k] * g);
    }
    return T(loss);
}

// Loss and parameter gradients only (no per-sample output), in parts on the thread pool.
template <class T>
T toy_gradients(const ToyChain<T>& c, const T* x, const T* y, std::size_t y_stride, std::size_t N,
                T* dl_dbeta, T* dl_domega) {
    if (N == 1 && c.L <= toy_one_max_L) return toy_gradients_one(c, *x, *y, dl_dbeta, dl_domega);
    std::vector<ToySums> sums(toy_parts(N));
    parallel_for(sums.size(), [&](std::size_t p) {
        sums[p] = toy_sums(c, x, y, y_stride, p * toy_part, std::min(N, (p + 1) * toy_part));
    });
    return combine(sums, c.L, dl_dbeta, dl_domega);
}

// A chain that holds its activations and parameters (beta then omega, packed), as the MLP's
// Model does: parsed and checked once, then used by every call.
template <class T> class Chain {
  public:
    Chain(const Activation* activations, std::size_t L, const T* beta, const T* omega)
        : activations_(activations, activations + L), params_(2 * (L + 1)) {
        std::copy(beta, beta + L + 1, params_.begin());
        std::copy(omega, omega + L + 1, params_.begin() + std::ptrdiff_t(L + 1));
    }
    std::size_t L() const { return activations_.size(); }
    const std::vector<Activation>& activations() const { return activations_; }
    T* beta() { return params_.data(); }
    T* omega() { return params_.data() + L() + 1; }
    const T* data() const { return params_.data(); }
    std::size_t size() const { return params_.size(); }
    ToyChain<T> view(T relu_grad_at_zero = T(1)) const {
        return {activations_.data(), L(), params_.data(), params_.data() + L() + 1,
                relu_grad_at_zero};
    }

  private:
    std::vector<Activation> activations_;
    std::vector<T> params_;
};

}  // namespace backprop_core
