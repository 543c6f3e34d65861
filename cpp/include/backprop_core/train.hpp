// Training the ReLU MLP of mlp.hpp natively: losses, the package's shuffling generator, and a
// minibatch loop (SGD with momentum or Nesterov, Adam, an L2 penalty, learning-rate schedules,
// early stopping) whose state lives in buffers allocated once, before the first step.
//
// It follows backprop_core.reference.fit step for step; the definitions are written there (and
// in the README) and repeated at each piece below. Every scalar coefficient is computed in
// double, as the reference's Python floats are, and cast to T where the reference's numpy
// arithmetic would cast it (a Python float meeting a float32 array becomes float32).
//
// Threads: MLPTrainer::run() calls mlp_forward and mlp_backward, which may use the pool; its own
// loops are sequential. It writes the parameters in place; nothing else may use them meanwhile.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mlp.hpp"

namespace backprop_core {

// ------------------------------------------------------------------------------ the generator
//
// SplitMix64 (Steele, Lea and Flood 2014). Stream k of a seed starts from
// mix64(mix64(seed) + k); stream 0 picks the held-out samples, stream 1 + e shuffles epoch e.
// uniform(s) is Lemire's multiply-shift with rejection (unbiased); permutations are Fisher-Yates
// from the end. The same three functions are in reference.py: the same order on every machine.

inline std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The 128-bit product a * b as (high, low) 64-bit halves, in portable 32-bit pieces.
inline void mul_64x64(std::uint64_t a, std::uint64_t b, std::uint64_t& hi, std::uint64_t& lo) {
    const std::uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
    const std::uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const std::uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    lo = (mid << 32) | (p00 & 0xFFFFFFFFu);
    hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

struct SplitMix64 {
    std::uint64_t state;
    SplitMix64(std::uint64_t seed, std::uint64_t stream) : state(mix64(mix64(seed) + stream)) {}
    std::uint64_t next() { return mix64(state += 0x9E3779B97F4A7C15ull); }
    // uniform in [0, s), 1 <= s
    std::uint64_t uniform(std::uint64_t s) {
        std::uint64_t hi, lo;
        mul_64x64(next(), s, hi, lo);
        if (lo < s) {
            const std::uint64_t threshold = (0 - s) % s;  // 2^64 mod s
            while (lo < threshold) mul_64x64(next(), s, hi, lo);
        }
        return hi;
    }
};

// a[0..n) shuffled in place by Fisher-Yates with stream `stream` of `seed`.
template <class Index>
void permute(Index* a, std::size_t n, std::uint64_t seed, std::uint64_t stream) {
    SplitMix64 rng(seed, stream);
    for (std::size_t i = n; i-- > 1;) std::swap(a[i], a[rng.uniform(i + 1)]);
}

// ------------------------------------------------------------------------------------ losses
//
// On the output f = f_K (D_o, N): the loss and dl/df. "sum" adds over samples (and outputs);
// "mean" divides that sum by N, the number of samples (not N * D_o). N = 0 gives 0.

enum class Loss { squared_error, cross_entropy };
enum class Reduction { sum, mean };

// Targets of N samples: dense values y[i * strides[0] + n * strides[1]] (strides of 0
// broadcast), or for cross-entropy class labels[n] in [0, D_o).
template <class T> struct Targets {
    const T* y = nullptr;
    std::size_t strides[2] = {0, 0};
    const std::int64_t* labels = nullptr;
    T at(std::size_t i, std::size_t n) const { return y[i * strides[0] + n * strides[1]]; }
};

// The loss (accumulated in double) of f (D_o, N); g (D_o, N), when not null, gets dl/df. "mean"
// divides by `of` samples when given (a part of a minibatch of `of`), else by N.
template <class T>
double loss_and_gradient(Loss loss, Reduction reduction, const T* f, std::size_t D_o,
                         std::size_t N, const Targets<T>& y, T* g, std::size_t of = 0) {
    double total = 0;
    const std::size_t divisor = std::max<std::size_t>(of ? of : N, 1);
    const T n_div = T(divisor);
    const bool mean = reduction == Reduction::mean;
    if (loss == Loss::squared_error) {
        for (std::size_t i = 0; i < D_o; ++i)
            for (std::size_t n = 0; n < N; ++n) {
                const T diff = f[i * N + n] - y.at(i, n);  // d 0.5 (f - y)^2 / df
                total += 0.5 * double(diff) * double(diff);
                if (g) g[i * N + n] = mean ? diff / n_div : diff;
            }
    } else {
        if (D_o == 0) throw std::invalid_argument("cross-entropy needs at least one output");
        // exp(f_i - m) of up to 64 outputs kept from the sum for p (the same values; more
        // outputs take them again)
        T kept[64];
        const bool keep = D_o <= 64;
        for (std::size_t n = 0; n < N; ++n) {
            // the stable log-sum-exp form: log p_i = (f_i - m) - log sum_j exp(f_j - m)
            T m = f[n];
            for (std::size_t i = 1; i < D_o; ++i) m = std::max(m, f[i * N + n]);
            T s = 0;
            for (std::size_t i = 0; i < D_o; ++i) {
                const T e = std::exp(f[i * N + n] - m);
                if (keep) kept[i] = e;
                s += e;
            }
            const T log_s = std::log(s);
            T y_sum = 0;
            if (!y.labels)
                for (std::size_t i = 0; i < D_o; ++i) y_sum += y.at(i, n);
            for (std::size_t i = 0; i < D_o; ++i) {
                const T z = f[i * N + n] - m;
                const T log_p = z - log_s;
                const T p = (keep ? kept[i] : std::exp(z)) / s;
                T d;
                if (y.labels) {
                    const bool hit = std::size_t(y.labels[n]) == i;
                    if (hit) total -= double(log_p);
                    d = hit ? p - T(1) : p;  // p - onehot(y)
                } else {
                    total -= double(y.at(i, n) * log_p);
                    d = p * y_sum - y.at(i, n);  // p sum(y) - y: p - y for one-hot y
                }
                if (g) g[i * N + n] = mean ? d / n_div : d;
            }
        }
    }
    return mean ? total / double(divisor) : total;
}

// The L2 penalty's part for one layer's weights W (size of them): dW += c W (c = alpha, over the
// batch for the mean); returns ||W||^2, summed in double. The objective and the training step
// both penalise through it, layer by layer.
template <class T> double l2_penalise(const T* W, std::size_t size, T c, T* dW) {
    double squares = 0;
    for (std::size_t e = 0; e < size; ++e) {
        squares += double(W[e]) * double(W[e]);
        dW[e] = dW[e] + c * W[e];
    }
    return squares;
}

// ------------------------------------------------------------------------- the whole objective
//
// The objective of all N samples at once (for full-batch optimizers such as L-BFGS): the loss
// plus alpha/2 sum_k ||W_k||^2 (weights only), the whole divided by N for "mean", and its
// gradients into dW[k] (D_{k+1}, D_k) and db[k] (D_{k+1}). The scratch is allocated per call.
template <class T>
double mlp_objective(const MLPView<T>& net, const T* x, std::size_t N, const Targets<T>& y,
                     Loss loss, Reduction reduction, double alpha, T* const* dW, T* const* db) {
    const std::size_t K = net.K;
    const std::size_t* dims = net.dims;
    // hidden layers keep h = relu_marked(f) alone (f[k] == h[k + 1], see mlp_forward)
    std::size_t h_size = 0;
    for (std::size_t k = 1; k <= K; ++k) h_size += padded<T>(dims[k] * N);
    AlignedVector<T> f_store(dims[K + 1] * N), h_store(h_size), g(dims[K + 1] * N);
    AlignedVector<T> work(mlp_workspace_size(K, dims, N));
    std::vector<T*> f(K + 1), h(K + 1), f_grad(K + 1);
    for (std::size_t k = 1, at = 0; k <= K; at += padded<T>(dims[k] * N), ++k)
        h[k] = f[k - 1] = h_store.data() + at;
    f[K] = f_store.data();
    h[0] = const_cast<T*>(x);  // read only
    mlp_forward(net, x, N, f.data(), h.data());
    const double value = loss_and_gradient(loss, reduction, f[K], dims[K + 1], N, y, g.data());
    f_grad = f;
    f_grad[K] = g.data();  // dl/df_K in place of f_K, a target of 0: see MLPTrainer::step
    const T zero = T(0);
    const std::size_t zero_strides[2] = {0, 0};
    mlp_backward(net, const_cast<const T* const*>(f_grad.data()),
                 const_cast<const T* const*>(h.data()), &zero, zero_strides, N, dW, db,
                 work.data());
    const double scale = reduction == Reduction::mean ? 1.0 / double(std::max<std::size_t>(N, 1))
                                                      : 1.0;
    double squares = 0;
    if (alpha != 0)
        for (std::size_t k = 0; k <= K; ++k)
            squares += l2_penalise(net.weights[k], dims[k + 1] * dims[k], T(alpha * scale), dW[k]);
    return value + 0.5 * alpha * squares * scale;
}

// ------------------------------------------------------------------------------ the training
//
// * Objective of a minibatch of B samples: its loss plus alpha/2 sum_k ||W_k||^2 (weights only),
//   the whole divided by B for "mean" (scikit-learn's penalty).
// * SGD (PyTorch's, dampening 0): buf = momentum buf + g; step = buf, or g + momentum buf
//   (Nesterov); W -= lr step. Adam (PyTorch's): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g g,
//   W -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
// * Schedules (scikit-learn's): constant; invscaling lr = lr0 / (samples seen + 1)^power_t after
//   each epoch; adaptive lr / 5 when the plateau rule fires, stopping once lr <= 1e-6.
// * Plateau rule (n_iter_no_change > 0): the watched loss (held-out with early stopping, else the
//   epoch's training objective) above best - tol counts one epoch without improvement; more than
//   n_iter_no_change in a row stop (or trigger adaptive). Early stopping holds out
//   ceil(validation_fraction N) samples, the first of stream 0's permutation of 0..N-1, and
//   restores the weights of the epoch with the lowest held-out loss at the end.
// * Epoch e takes the training samples (in index order) permuted by stream 1 + e, or in index
//   order without shuffling, batch_size at a time; the last minibatch holds the remainder.

enum class Optimizer { sgd, adam };
enum class Schedule { constant, invscaling, adaptive };

struct TrainOptions {
    Loss loss = Loss::squared_error;
    Reduction reduction = Reduction::mean;
    Optimizer optimizer = Optimizer::sgd;
    double learning_rate = 0.01;
    std::size_t epochs = 10;
    std::size_t batch_size = 0;  // 0: every training sample in one minibatch
    bool shuffle = true;
    std::uint64_t seed = 0;
    double momentum = 0, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
    bool nesterov = false;
    double alpha = 0;
    Schedule schedule = Schedule::constant;
    double power_t = 0.5;
    bool early_stopping = false;
    double validation_fraction = 0.1;
    std::size_t n_iter_no_change = 0;  // 0: no plateau rule
    double tol = 1e-4;
};

enum class StopReason { epochs, no_improvement, callback, interrupt };

struct TrainHistory {
    std::vector<double> loss, validation_loss;  // per epoch (validation: with early stopping)
    std::size_t epochs = 0, steps = 0;
    double learning_rate = 0;
    StopReason stop_reason = StopReason::epochs;
    std::ptrdiff_t best_epoch = -1;  // with early stopping, the epoch whose weights were kept
};

// What the epoch hook asks for: go on; stop (as the plateau rule would: early stopping's best
// weights are restored); or abort (stop as an interrupt does: the parameters stay at their last
// step, for an error raised in a callback).
enum class EpochAction { proceed, stop, abort };

struct TrainHooks {
    // After each epoch, with the history so far.
    std::function<EpochAction(const TrainHistory&)> on_epoch;
    // Polled between steps, at most every poll_seconds; true stops at once, the parameters at
    // their last completed step (a Ctrl-C check).
    std::function<bool()> interrupted;
    double poll_seconds = 0.05;
};

inline std::size_t held_out_count(std::size_t N, double validation_fraction) {
    return std::size_t(std::ceil(validation_fraction * double(N)));
}

template <class T> class MLPTrainer {
  public:
    // The network (K hidden layers, dims D_0..D_{K+1}, parameters written in place), the
    // samples x (D_0, N) and their targets; every buffer is allocated here.
    MLPTrainer(std::size_t K, const std::size_t* dims, T* const* weights, T* const* biases,
               const T* x, std::size_t N, const Targets<T>& y, const TrainOptions& options,
               T relu_grad_at_zero = T(1))
        : K_(K), dims_(dims, dims + K + 2), W_(weights, weights + K + 1),
          b_(biases, biases + K + 1), x_(x), N_(N), y_(y), o_(options),
          relu_grad_at_zero_(relu_grad_at_zero) {
        check_options();
        const std::size_t D_in = dims_[0], D_o = dims_[K + 1];
        // the split: train and held-out samples, each in index order
        std::vector<std::size_t> all(N);
        std::iota(all.begin(), all.end(), std::size_t(0));
        std::size_t n_val = 0;
        if (o_.early_stopping) {
            n_val = held_out_count(N, o_.validation_fraction);
            permute(all.data(), N, o_.seed, 0);
            std::sort(all.begin(), all.begin() + std::ptrdiff_t(n_val));
            std::sort(all.begin() + std::ptrdiff_t(n_val), all.end());
        }
        val_.assign(all.begin(), all.begin() + std::ptrdiff_t(n_val));
        train_.assign(all.begin() + std::ptrdiff_t(n_val), all.end());
        order_ = train_;
        const std::size_t n_train = train_.size();
        B_ = o_.batch_size ? std::min(o_.batch_size, n_train) : n_train;
        const std::size_t last = n_train % B_ ? n_train % B_ : B_;
        // gradients and optimizer state, one flat array each, laid out weights then biases
        for (std::size_t k = 0; k <= K; ++k) {
            w_at_.push_back(P_), P_ += dims_[k + 1] * dims_[k];
            b_at_.push_back(P_), P_ += dims_[k + 1];
        }
        grad_.resize(P_);
        // each shard's buffers, sized for the largest part of a minibatch it takes
        std::size_t most[2] = {0, 0}, work[2] = {0, 0};
        for (const std::size_t n : {B_, last})
            for (std::size_t s = 0; s < shards(n); ++s) {
                most[s] = std::max(most[s], part(n, s).second);
                work[s] = std::max(work[s], mlp_workspace_size(K, dims, part(n, s).second));
            }
        shard_[0].allocate(*this, most[0], work[0], grad_.data());
        if (most[1]) {
            shard_grad_.resize(P_);
            shard_[1].allocate(*this, most[1], work[1], shard_grad_.data());
        }
        if (o_.optimizer == Optimizer::adam || o_.momentum != 0) m_.assign(P_, T(0));
        if (o_.optimizer == Optimizer::adam) v_.assign(P_, T(0));
        // the held-out samples, gathered once, with their own f and h
        if (n_val) {
            xv_.resize(D_in * n_val);
            gather(x_, N, D_in, val_.data(), n_val, xv_.data());
            if (y_.labels) {
                lv_.resize(n_val);
                for (std::size_t j = 0; j < n_val; ++j) lv_[j] = y_.labels[val_[j]];
            } else {
                yv_.resize(D_o * n_val);
                for (std::size_t i = 0; i < D_o; ++i)
                    for (std::size_t j = 0; j < n_val; ++j) yv_[i * n_val + j] = y_.at(i, val_[j]);
            }
            layer_buffers(n_val, fv_store_, hv_store_, fv_, hv_);
            best_.resize(P_);
        }
        history_.loss.reserve(o_.epochs);
        history_.validation_loss.reserve(n_val ? o_.epochs : 0);
    }

    // A minibatch of n samples is split in two shards, each taken forward and back on its own
    // (on two threads when the pool may use two), when n >= 32 and every layer's step is below
    // 4 parallel_work multiply-adds (2 D_{k+1} D_k n; larger ones use the pool's tasks inside
    // each pass instead): steps of microseconds, which waking the pool's workers would cost as
    // much as. The number depends on the shapes alone, so the results do not depend on the
    // threads.
    std::size_t shards(std::size_t n) const {
        if (n < 32) return 1;
        for (std::size_t k = 0; k <= K_; ++k)
            if (double(dims_[k + 1]) * double(n) * double(2 * dims_[k] + 1) >= 4 * parallel_work)
                return 1;
        return 2;
    }
    // Shard s of a minibatch of n: (first sample, count). The first takes half rounded up to
    // whole 8-sample panels.
    std::pair<std::size_t, std::size_t> part(std::size_t n, std::size_t s) const {
        if (shards(n) == 1) return s == 0 ? std::make_pair(std::size_t(0), n)
                                          : std::make_pair(n, std::size_t(0));
        const std::size_t first = std::min(n, ((n + 1) / 2 + 7) / 8 * 8);
        return s == 0 ? std::make_pair(std::size_t(0), first) : std::make_pair(first, n - first);
    }

    std::size_t n_train() const { return train_.size(); }
    const std::vector<std::size_t>& validation_samples() const { return val_; }

    TrainHistory run(const TrainHooks& hooks = {}) {
        using clock = std::chrono::steady_clock;
        const bool mean = o_.reduction == Reduction::mean;
        const std::size_t n_train = train_.size();
        const MLPView<T> net{K_, dims_.data(), cW(), cb(), relu_grad_at_zero_};
        double lr = o_.learning_rate, best = std::numeric_limits<double>::infinity();
        std::size_t t = 0, no_improvement = 0;
        auto last_poll = clock::now();
        history_.learning_rate = lr;
        Duo duo(!shard_grad_.empty() && parallel_threads() >= 2);
        for (std::size_t epoch = 0; epoch < o_.epochs; ++epoch) {
            order_ = train_;
            if (o_.shuffle) permute(order_.data(), n_train, o_.seed, 1 + epoch);
            double total = 0;
            for (std::size_t start = 0; start < n_train; start += B_) {
                if (hooks.interrupted &&
                    std::chrono::duration<double>(clock::now() - last_poll).count() >=
                        hooks.poll_seconds) {
                    last_poll = clock::now();
                    if (hooks.interrupted()) return finish(StopReason::interrupt, lr, false);
                }
                const std::size_t n = std::min(B_, n_train - start);
                total += step(net, duo, order_.data() + start, n, ++t, lr) * double(mean ? n : 1);
                history_.steps = t;
            }
            history_.loss.push_back(mean ? total / double(n_train) : total);
            history_.epochs = epoch + 1;
            // the watched loss: held-out with early stopping, else the training objective
            double watched = history_.loss.back();
            if (!val_.empty()) {
                watched = validation_loss(net);
                history_.validation_loss.push_back(watched);
            }
            no_improvement = watched > best - o_.tol ? no_improvement + 1 : 0;
            if (watched < best) {
                best = watched;
                if (!val_.empty()) {
                    save_parameters(best_.data());
                    history_.best_epoch = std::ptrdiff_t(epoch);
                }
            }
            if (o_.schedule == Schedule::invscaling)
                lr = o_.learning_rate / std::pow(double((epoch + 1) * n_train + 1), o_.power_t);
            bool stop = false;
            if (o_.n_iter_no_change && no_improvement > o_.n_iter_no_change) {
                if (o_.schedule == Schedule::adaptive && lr > 1e-6) {
                    lr = lr / 5;
                    no_improvement = 0;
                } else {
                    history_.stop_reason = StopReason::no_improvement;
                    stop = true;
                }
            }
            history_.learning_rate = lr;
            const EpochAction action =
                hooks.on_epoch ? hooks.on_epoch(history_) : EpochAction::proceed;
            if (action == EpochAction::abort) return finish(StopReason::callback, lr, false);
            if (action == EpochAction::stop && !stop) {
                history_.stop_reason = StopReason::callback;
                stop = true;
            }
            if (stop) break;
        }
        return finish(history_.stop_reason, lr, true);
    }

  private:
    std::size_t K_;
    std::vector<std::size_t> dims_;
    std::vector<T*> W_, b_;
    const T* x_;
    std::size_t N_;
    Targets<T> y_;
    TrainOptions o_;
    T relu_grad_at_zero_ = T(1);
    std::size_t B_ = 0, P_ = 0;
    std::vector<std::size_t> train_, val_, order_, w_at_, b_at_;
    std::vector<T> grad_, shard_grad_, m_, v_, yv_, best_;
    std::vector<double> squares_;  // a step's ||W_k||^2, layer by layer
    AlignedVector<T> xv_, fv_store_, hv_store_;
    std::vector<std::int64_t> lv_;
    std::vector<T*> fv_, hv_;

    // One shard's minibatch part: its inputs, targets, every layer's f and h, dl/df_K, the
    // backward scratch and where its gradients go (the first shard's into grad_).
    struct Shard {
        AlignedVector<T> xb, ht, f_store, h_store, g_out, work;
        std::vector<T> yb;
        std::vector<std::int64_t> lb;
        std::vector<T*> f, h, f_grad, dW, db;
        double value = 0;  // the loss of its part (divided by the whole minibatch for "mean")

        void allocate(MLPTrainer& t, std::size_t n, std::size_t workspace, T* grad) {
            const std::size_t K = t.K_, D_o = t.dims_[K + 1];
            const std::size_t* dims = t.dims_.data();
            xb.resize(dims[0] * n);
            ht.resize(*std::max_element(dims, dims + K + 1) * n);  // (a layer's input)
            if (t.y_.labels)
                lb.resize(n);
            else
                yb.resize(D_o * n);
            t.layer_buffers(n, f_store, h_store, f, h);
            g_out.resize(D_o * n);
            // mlp_backward starts from f_K - y: given dl/df_K in place of f_K and a target of 0
            // it gets dl/df_K exactly (x - 0 == x), whatever the loss. (Its loss is not ours.)
            f_grad = f;
            f_grad[K] = g_out.data();
            work.resize(workspace);
            for (std::size_t k = 0; k <= K; ++k) {
                dW.push_back(grad + t.w_at_[k]);
                db.push_back(grad + t.b_at_[k]);
            }
        }
    };
    Shard shard_[2];
    TrainHistory history_;

    const T* const* cW() const { return const_cast<const T* const*>(W_.data()); }
    const T* const* cb() const { return const_cast<const T* const*>(b_.data()); }

    void check_options() const {
        const auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
        if (N_ == 0) bad("net_input: training needs at least one sample, got 0");
        if (!(o_.learning_rate >= 0)) bad("learning_rate: expected a number >= 0");
        if (!(o_.momentum >= 0 && o_.momentum < 1)) bad("momentum: expected a number in [0, 1)");
        if (!(o_.beta1 >= 0 && o_.beta1 < 1)) bad("beta1: expected a number in [0, 1)");
        if (!(o_.beta2 >= 0 && o_.beta2 < 1)) bad("beta2: expected a number in [0, 1)");
        if (!(o_.epsilon > 0)) bad("epsilon: expected a number > 0");
        if (!(o_.alpha >= 0)) bad("alpha: expected a number >= 0");
        if (o_.nesterov && o_.momentum == 0) bad("nesterov: needs momentum > 0");
        if (o_.schedule == Schedule::adaptive && !o_.n_iter_no_change)
            bad("schedule: 'adaptive' needs n_iter_no_change (the plateau rule)");
        if (o_.loss == Loss::cross_entropy && dims_[K_ + 1] == 0)
            bad("loss: cross-entropy needs at least one output");
        if (o_.loss == Loss::squared_error && y_.labels)
            bad("y: class labels are for loss='cross_entropy'");
        if (o_.early_stopping) {
            const std::size_t n_val = held_out_count(N_, o_.validation_fraction);
            if (!(o_.validation_fraction > 0 && o_.validation_fraction < 1) || n_val < 1 ||
                n_val >= N_)
                bad("validation_fraction: " + std::to_string(o_.validation_fraction) + " of " +
                    std::to_string(N_) + " samples leaves no held-out or no training sample");
        }
        if (y_.labels)
            for (std::size_t n = 0; n < N_; ++n)
                if (y_.labels[n] < 0 || std::size_t(y_.labels[n]) >= dims_[K_ + 1])
                    bad("y: class labels must lie in [0, " + std::to_string(dims_[K_ + 1]) +
                        "), got " + std::to_string(y_.labels[n]) + " at sample " +
                        std::to_string(n));
    }

    // Each layer's block starts on a 64-byte line (see AlignedVector); hidden layers keep
    // h = relu_marked(f) alone (f[k] == h[k + 1], see mlp_forward), f_store holds f_K.
    void layer_buffers(std::size_t n, AlignedVector<T>& f_store, AlignedVector<T>& h_store,
                       std::vector<T*>& f, std::vector<T*>& h) {
        std::size_t h_size = 0;
        for (std::size_t k = 1; k <= K_; ++k) h_size += padded<T>(dims_[k] * n);
        f_store.resize(dims_[K_ + 1] * n);
        h_store.resize(h_size);
        f.assign(K_ + 1, nullptr);
        h.assign(K_ + 1, nullptr);
        for (std::size_t k = 1, at = 0; k <= K_; at += padded<T>(dims_[k] * n), ++k)
            h[k] = f[k - 1] = h_store.data() + at;
        f[K_] = f_store.data();
    }

    static void gather(const T* src, std::size_t N, std::size_t D, const std::size_t* cols,
                       std::size_t n, T* dst) {
        for (std::size_t d = 0; d < D; ++d)
            for (std::size_t j = 0; j < n; ++j) dst[d * n + j] = src[d * N + cols[j]];
    }

    void save_parameters(T* to) const {
        for (std::size_t k = 0; k <= K_; ++k) {
            std::copy_n(W_[k], dims_[k + 1] * dims_[k], to + w_at_[k]);
            std::copy_n(b_[k], dims_[k + 1], to + b_at_[k]);
        }
    }
    void load_parameters(const T* from) {
        for (std::size_t k = 0; k <= K_; ++k) {
            std::copy_n(from + w_at_[k], dims_[k + 1] * dims_[k], W_[k]);
            std::copy_n(from + b_at_[k], dims_[k + 1], b_[k]);
        }
    }

    // One minibatch: each shard's forward pass, loss and dl/df_K and backward pass, the shards'
    // gradients added (the first's plus the second's), the L2 penalty, the optimizer step.
    // Returns the minibatch's objective.
    double step(const MLPView<T>& net, Duo& duo, const std::size_t* cols, std::size_t n,
                std::size_t t, double lr) {
        // L2: alpha/2 ||W||^2, over n for the mean; its gradient alpha W (over n) joins dl/dW.
        // Each layer is penalised and updated as soon as its gradients are complete (in cache,
        // with one shard); the layers' sums of squares are added in layer order after.
        const double scale = o_.reduction == Reduction::mean ? 1.0 / double(n) : 1.0;
        const T c = T(o_.alpha * scale);
        squares_.assign(K_ + 1, 0.0);
        const auto update_layer = [&](std::size_t k) {
            const std::size_t size = dims_[k + 1] * dims_[k];
            if (o_.alpha != 0) squares_[k] = l2_penalise(W_[k], size, c, grad_.data() + w_at_[k]);
            update(W_[k], w_at_[k], size, t, lr);
            update(b_[k], b_at_[k], dims_[k + 1], t, lr);
        };
        double value = 0;
        if (shards(n) == 1) {
            shard_pass(net, shard_[0], cols, n, n, update_layer);
            value = shard_[0].value;
        } else {
            // Layer k's gradients are the first shard's plus the second's; it is updated once
            // both shards are past it (layers K, K-1, .., 0), the first while the second still
            // works on the layers below when the two run at once.
            std::atomic<std::size_t> second_done{0};  // the second shard's layers K.. complete
            std::size_t updated = 0;
            const auto catch_up = [&] {  // (whether it updated a layer)
                const std::size_t before = updated;
                for (const std::size_t done = second_done.load(std::memory_order_acquire);
                     updated < done; ++updated) {
                    const std::size_t k = K_ - updated;
                    const std::size_t from = w_at_[k], to = b_at_[k] + dims_[k + 1];
                    with_widest_vectors([g = grad_.data() + from,
                                         g1 = shard_grad_.data() + from, size = to - from] {
                        for (std::size_t e = 0; e < size; ++e) g[e] = g[e] + g1[e];
                    });
                    update_layer(k);
                }
                return updated != before;
            };
            const auto layer_done = [&](std::size_t k) {
                second_done.store(K_ + 1 - k, std::memory_order_release);
            };
            duo.run([&](std::size_t s) {
                const auto [first, count] = part(n, s);
                if (s == 0)
                    shard_pass(net, shard_[0], cols + first, count, n, NoLayerHook{});
                else
                    shard_pass(net, shard_[1], cols + first, count, n, layer_done);
            }, catch_up);
            catch_up();
            value = shard_[0].value + shard_[1].value;
        }
        double squares = 0;
        for (std::size_t k = 0; k <= K_; ++k) squares += squares_[k];
        const double penalty = o_.alpha != 0 ? 0.5 * o_.alpha * squares * scale : 0.0;
        return value + penalty;
    }

    // One shard's part of a minibatch of `of` samples: the n samples cols[0..n) forward, the
    // loss (its value into sh.value) and back, the gradients into sh.dW and sh.db;
    // layer_done(k) as in mlp_backward.
    template <class LayerDone>
    void shard_pass(const MLPView<T>& net, Shard& sh, const std::size_t* cols, std::size_t n,
                    std::size_t of, const LayerDone& layer_done) {
        const std::size_t D_o = dims_[K_ + 1];
        gather(x_, N_, dims_[0], cols, n, sh.xb.data());
        Targets<T> yb;
        if (y_.labels) {
            for (std::size_t j = 0; j < n; ++j) sh.lb[j] = y_.labels[cols[j]];
            yb.labels = sh.lb.data();
        } else {
            for (std::size_t i = 0; i < D_o; ++i)
                for (std::size_t j = 0; j < n; ++j) sh.yb[i * n + j] = y_.at(i, cols[j]);
            yb.y = sh.yb.data(), yb.strides[0] = n, yb.strides[1] = 1;
        }
        sh.h[0] = sh.xb.data();
        mlp_forward(net, sh.xb.data(), n, sh.f.data(), sh.h.data());
        sh.value = loss_and_gradient(o_.loss, o_.reduction, sh.f[K_], D_o, n, yb, sh.g_out.data(), of);
        const T zero = T(0);
        const std::size_t zero_strides[2] = {0, 0};
        mlp_backward(net, const_cast<const T* const*>(sh.f_grad.data()),
                     const_cast<const T* const*>(sh.h.data()), &zero, zero_strides, n,
                     sh.dW.data(), sh.db.data(), sh.work.data(), sh.ht.data(), layer_done);
    }

    // The optimizer on one parameter array p (its gradient and state at offset `at`).
    void update(T* p, std::size_t at, std::size_t size, std::size_t t, double lr) {
        const T* g = grad_.data() + at;
        const T r = T(lr);
        if (o_.optimizer == Optimizer::sgd) {
            T* const buf = m_.data() + at;
            const T mu = T(o_.momentum);
            const bool plain = o_.momentum == 0, nesterov = o_.nesterov;
            with_widest_vectors([=] {
                // (locals, not the closure's fields: the stores through p cannot alias them)
                T* const p_ = p;
                const T* const g_ = g;
                T* const b_ = buf;
                const T r_ = r, mu_ = mu;
                const std::size_t n = size;
                if (plain) {
                    for (std::size_t e = 0; e < n; ++e) p_[e] = p_[e] - r_ * g_[e];
                    return;
                }
                for (std::size_t e = 0; e < n; ++e) {
                    b_[e] = mu_ * b_[e] + g_[e];
                    const T s = nesterov ? g_[e] + mu_ * b_[e] : b_[e];
                    p_[e] = p_[e] - r_ * s;
                }
            });
            return;
        }
        T* const m = m_.data() + at;
        T* const v = v_.data() + at;
        const T b1 = T(o_.beta1), b2 = T(o_.beta2), c1 = T(1 - o_.beta1), c2 = T(1 - o_.beta2);
        const T bias1 = T(1 - std::pow(o_.beta1, double(t)));
        const T bias2 = T(1 - std::pow(o_.beta2, double(t)));
        const T eps = T(o_.epsilon);
        // (vectorised: the build's -fno-math-errno lets sqrt vectorise; IEEE's sqrt and
        // division are correctly rounded either way)
        with_widest_vectors([=] {
            T* const p_ = p;  // (locals: the stores cannot alias them)
            const T* const g_ = g;
            T* const m_v = m;
            T* const v_v = v;
            const T b1_ = b1, b2_ = b2, c1_ = c1, c2_ = c2, bias1_ = bias1, bias2_ = bias2;
            const T eps_ = eps, r_ = r;
            const std::size_t n = size;
            for (std::size_t e = 0; e < n; ++e) {
                m_v[e] = b1_ * m_v[e] + c1_ * g_[e];
                v_v[e] = b2_ * v_v[e] + c2_ * g_[e] * g_[e];
                const T m_hat = m_v[e] / bias1_;
                const T v_hat = v_v[e] / bias2_;
                p_[e] = p_[e] - r_ * m_hat / (std::sqrt(v_hat) + eps_);
            }
        });
    }

    double validation_loss(const MLPView<T>& net) {
        const std::size_t n = val_.size();
        hv_[0] = xv_.data();
        mlp_forward(net, xv_.data(), n, fv_.data(), hv_.data());
        Targets<T> yv;
        if (y_.labels)
            yv.labels = lv_.data();
        else
            yv.y = yv_.data(), yv.strides[0] = n, yv.strides[1] = 1;
        return loss_and_gradient<T>(o_.loss, o_.reduction, fv_[K_], dims_[K_ + 1], n, yv, nullptr);
    }

    TrainHistory finish(StopReason reason, double lr, bool restore_best) {
        if (restore_best && history_.best_epoch >= 0) load_parameters(best_.data());
        history_.stop_reason = reason;
        history_.learning_rate = lr;
        return history_;
    }
};

}  // namespace backprop_core
