// The native training loop (train.hpp) alone, no Python: its generator against published and
// Python-computed values, its losses against finite differences, and its steps against a
// second, naive implementation written here (one sample at a time, plain loops): SGD with
// momentum and Nesterov, Adam, L2, both losses, shuffled minibatches, early stopping, hooks.
#include "backprop_core/train.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace bc = backprop_core;

static int failures = 0;

static void check(bool ok, const char* what) {
    if (!ok && failures++ < 20) std::fprintf(stderr, "FAILED: %s\n", what);
}

static bool close(double a, double b, double rtol, double atol = 0) {
    return std::fabs(a - b) <= atol + rtol * std::fabs(b);
}

// ------------------------------------------------------------------ a naive second implementation

struct Net {
    std::vector<std::size_t> dims;
    std::vector<std::vector<double>> W, b;  // W[k] row-major (D_{k+1}, D_k)
};

static Net random_net(std::vector<std::size_t> dims, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    Net net{dims, {}, {}};
    for (std::size_t k = 0; k + 1 < dims.size(); ++k) {
        std::vector<double> w(dims[k + 1] * dims[k]), c(dims[k + 1]);
        for (auto& v : w) v = normal(rng) * std::sqrt(2.0 / double(dims[k]));
        for (auto& v : c) v = 0.1 * normal(rng);
        net.W.push_back(w), net.b.push_back(c);
    }
    return net;
}

// Objective and gradients of samples `cols` (mean or sum), one sample at a time.
static double naive_gradients(const Net& net, const std::vector<double>& x, std::size_t N,
                              const std::vector<double>& y,
                              const std::vector<std::int64_t>& labels, bool ce, bool mean,
                              double alpha, const std::vector<std::size_t>& cols,
                              std::vector<std::vector<double>>& dW,
                              std::vector<std::vector<double>>& db) {
    const std::size_t L = net.W.size(), D_o = net.dims.back();
    dW.assign(L, {}), db.assign(L, {});
    for (std::size_t k = 0; k < L; ++k)
        dW[k].assign(net.W[k].size(), 0.0), db[k].assign(net.b[k].size(), 0.0);
    double loss = 0;
    for (std::size_t c : cols) {
        std::vector<std::vector<double>> a(L + 1), pre(L);
        a[0].resize(net.dims[0]);
        for (std::size_t d = 0; d < net.dims[0]; ++d) a[0][d] = x[d * N + c];
        for (std::size_t k = 0; k < L; ++k) {
            pre[k].assign(net.dims[k + 1], 0.0);
            for (std::size_t i = 0; i < net.dims[k + 1]; ++i) {
                double s = net.b[k][i];
                for (std::size_t d = 0; d < net.dims[k]; ++d)
                    s += net.W[k][i * net.dims[k] + d] * a[k][d];
                pre[k][i] = s;
            }
            a[k + 1] = pre[k];
            if (k + 1 < L)
                for (auto& v : a[k + 1]) v = v >= 0 ? v : 0.0;
        }
        std::vector<double> g(D_o);
        if (!ce) {
            for (std::size_t i = 0; i < D_o; ++i) {
                const double diff = a[L][i] - y[i * N + c];
                loss += 0.5 * diff * diff;
                g[i] = diff;
            }
        } else {
            double m = a[L][0], s = 0;
            for (double v : a[L]) m = std::max(m, v);
            for (double v : a[L]) s += std::exp(v - m);
            loss += -(a[L][labels[c]] - m - std::log(s));
            for (std::size_t i = 0; i < D_o; ++i)
                g[i] = std::exp(a[L][i] - m) / s - (std::int64_t(i) == labels[c] ? 1.0 : 0.0);
        }
        for (std::size_t k = L; k-- > 0;) {
            std::vector<double> g_prev(net.dims[k], 0.0);
            for (std::size_t i = 0; i < net.dims[k + 1]; ++i) {
                db[k][i] += g[i];
                for (std::size_t d = 0; d < net.dims[k]; ++d) {
                    dW[k][i * net.dims[k] + d] += g[i] * a[k][d];
                    g_prev[d] += net.W[k][i * net.dims[k] + d] * g[i];
                }
            }
            if (k)
                for (std::size_t d = 0; d < net.dims[k]; ++d)
                    g_prev[d] *= pre[k - 1][d] >= 0 ? 1.0 : 0.0;  // the notebook's ReLU'(0) = 1
            g = g_prev;
        }
    }
    double squares = 0;
    for (std::size_t k = 0; k < L; ++k)
        for (std::size_t e = 0; e < net.W[k].size(); ++e) {
            squares += net.W[k][e] * net.W[k][e];
            dW[k][e] += alpha * net.W[k][e];
        }
    loss += 0.5 * alpha * squares;
    const double n = mean ? double(cols.size()) : 1.0;
    for (std::size_t k = 0; k < L; ++k) {
        for (auto& v : dW[k]) v /= n;
        for (auto& v : db[k]) v /= n;
    }
    return loss / n;
}

struct Native {
    std::vector<std::vector<double>> W, b;
    std::vector<double*> pw, pb;
    explicit Native(const Net& net) : W(net.W), b(net.b) {
        for (auto& w : W) pw.push_back(w.data());
        for (auto& c : b) pb.push_back(c.data());
    }
};

static bool same_params(const Native& a, const Net& e, double rtol) {
    bool ok = true;
    for (std::size_t k = 0; k < e.W.size(); ++k) {
        for (std::size_t i = 0; i < e.W[k].size(); ++i)
            ok &= close(a.W[k][i], e.W[k][i], rtol, 1e-14);
        for (std::size_t i = 0; i < e.b[k].size(); ++i)
            ok &= close(a.b[k][i], e.b[k][i], rtol, 1e-14);
    }
    return ok;
}

// ------------------------------------------------------------------------------------ the tests

static void test_generator() {
    bc::SplitMix64 rng(0, 0);
    rng.state = 0;  // Vigna's splitmix64.c from state 0
    check(rng.next() == 0xE220A8397B1DCDAFull, "splitmix64 output 1");
    check(rng.next() == 0x6E789E6AA1B965F4ull, "splitmix64 output 2");
    check(rng.next() == 0x06C45D188009454Full, "splitmix64 output 3");
    // the same permutations reference.permutation gives (Python integers, computed there)
    std::size_t a[10], b[10];
    for (std::size_t i = 0; i < 10; ++i) a[i] = b[i] = i;
    bc::permute(a, 10, 0, 1);
    bc::permute(b, 10, 1, 1);
    const std::size_t pa[10] = {9, 4, 0, 5, 2, 1, 6, 8, 3, 7},
                      pb[10] = {7, 8, 1, 0, 4, 2, 9, 6, 5, 3};
    check(std::equal(a, a + 10, pa), "permutation(range(10), seed 0, stream 1)");
    check(std::equal(b, b + 10, pb), "permutation(range(10), seed 1, stream 1)");
    // the portable 128-bit product against the compiler's
    std::mt19937_64 r(3);
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t x = r(), y = i % 3 ? r() : r() >> (i % 64);
        std::uint64_t hi, lo;
        bc::mul_64x64(x, y, hi, lo);
        const unsigned __int128 m = (unsigned __int128)x * y;
        check(hi == std::uint64_t(m >> 64) && lo == std::uint64_t(m), "mul_64x64");
    }
    // uniform(s) with s = 2^63 + 1 rejects about half the draws: results stay in range
    bc::SplitMix64 u(5, 0);
    const std::uint64_t s = (std::uint64_t(1) << 63) + 1;
    int low = 0;
    for (int i = 0; i < 2000; ++i) {
        const std::uint64_t d = u.uniform(s);
        check(d < s, "uniform in range");
        low += d < s / 2;
    }
    check(low > 800 && low < 1200, "uniform covers both halves");
}

static void test_losses() {
    // dl/df against central differences of the loss, both losses and reductions
    std::mt19937_64 rng(4);
    std::normal_distribution<double> normal;
    const std::size_t D = 4, N = 5;
    std::vector<double> f(D * N), y(D * N);
    std::vector<std::int64_t> labels(N);
    for (auto& v : f) v = 3 * normal(rng);
    for (auto& v : y) v = normal(rng);
    for (auto& v : labels) v = std::int64_t(rng() % D);
    for (int ce = 0; ce < 2; ++ce)
        for (int mean = 0; mean < 2; ++mean) {
            bc::Targets<double> t;
            if (ce)
                t.labels = labels.data();
            else
                t.y = y.data(), t.strides[0] = N, t.strides[1] = 1;
            const auto loss = ce ? bc::Loss::cross_entropy : bc::Loss::squared_error;
            const auto red = mean ? bc::Reduction::mean : bc::Reduction::sum;
            std::vector<double> g(D * N);
            const double value = bc::loss_and_gradient(loss, red, f.data(), D, N, t, g.data());
            for (std::size_t e = 0; e < D * N; ++e) {
                std::vector<double> up = f, down = f;
                up[e] += 1e-6, down[e] -= 1e-6;
                const double fd =
                    (bc::loss_and_gradient<double>(loss, red, up.data(), D, N, t, nullptr) -
                     bc::loss_and_gradient<double>(loss, red, down.data(), D, N, t, nullptr)) /
                    2e-6;
                check(close(g[e], fd, 1e-6, 1e-8 * std::max(1.0, value)), "dl/df by differences");
            }
        }
    // stable for scores of +-800; by hand: softmax of (0, log 3) is (1/4, 3/4)
    const double big[2] = {800.0, 799.0};
    const std::int64_t first = 0;
    bc::Targets<double> tl;
    tl.labels = &first;
    double g[2];
    const double v =
        bc::loss_and_gradient(bc::Loss::cross_entropy, bc::Reduction::sum, big, 2, 1, tl, g);
    check(close(v, std::log1p(std::exp(-1.0)), 1e-14), "log-sum-exp at 800");
    const double small[2] = {0.0, std::log(3.0)};
    bc::loss_and_gradient(bc::Loss::cross_entropy, bc::Reduction::sum, small, 2, 1, tl, g);
    check(close(g[0], -0.75, 1e-14) && close(g[1], 0.75, 1e-14), "p - onehot by hand");
}

// Minibatch training against the naive implementation, step by step. Minibatches of 32 samples
// or more are taken in two shards (on two threads when the pool may use two).
static void test_against_naive(bool ce, bool mean, bool adam, double momentum, bool nesterov,
                               double alpha, std::size_t batch, bool shuffle,
                               std::size_t N = 11) {
    const std::vector<std::size_t> dims = {2, 5, 4, ce ? std::size_t(3) : std::size_t(2)};
    const std::size_t D_o = dims.back(), epochs = 6;
    Net net = random_net(dims, 9);
    std::mt19937_64 rng(10);
    std::normal_distribution<double> normal;
    std::vector<double> x(2 * N), y(D_o * N);
    std::vector<std::int64_t> labels(N);
    for (auto& v : x) v = normal(rng);
    for (auto& v : y) v = normal(rng);
    for (auto& v : labels) v = std::int64_t(rng() % D_o);

    bc::TrainOptions o;
    o.loss = ce ? bc::Loss::cross_entropy : bc::Loss::squared_error;
    o.reduction = mean ? bc::Reduction::mean : bc::Reduction::sum;
    o.optimizer = adam ? bc::Optimizer::adam : bc::Optimizer::sgd;
    o.learning_rate = adam ? 0.01 : (mean ? 0.1 : 0.02);
    o.momentum = momentum, o.nesterov = nesterov, o.alpha = alpha;
    o.epochs = epochs, o.batch_size = batch, o.shuffle = shuffle, o.seed = 42;
    Native native(net);
    bc::Targets<double> t;
    if (ce)
        t.labels = labels.data();
    else
        t.y = y.data(), t.strides[0] = N, t.strides[1] = 1;
    bc::MLPTrainer<double> trainer(dims.size() - 2, dims.data(), native.pw.data(),
                                   native.pb.data(), x.data(), N, t, o);
    const bc::TrainHistory h = trainer.run();

    // by hand
    std::vector<std::vector<double>> buf_w, buf_b, v_w, v_b;
    for (std::size_t k = 0; k < net.W.size(); ++k) {
        buf_w.emplace_back(net.W[k].size(), 0.0), buf_b.emplace_back(net.b[k].size(), 0.0);
        v_w.emplace_back(net.W[k].size(), 0.0), v_b.emplace_back(net.b[k].size(), 0.0);
    }
    std::size_t step = 0;
    std::vector<double> history;
    for (std::size_t e = 0; e < epochs; ++e) {
        std::vector<std::size_t> order(N);
        for (std::size_t i = 0; i < N; ++i) order[i] = i;
        if (shuffle) bc::permute(order.data(), N, 42, 1 + e);
        double total = 0;
        for (std::size_t s = 0; s < N; s += batch) {
            const std::vector<std::size_t> cols(order.begin() + std::ptrdiff_t(s),
                                                order.begin() +
                                                    std::ptrdiff_t(std::min(N, s + batch)));
            std::vector<std::vector<double>> dW, db;
            const double value =
                naive_gradients(net, x, N, y, labels, ce, mean, alpha, cols, dW, db);
            total += value * double(mean ? cols.size() : 1);
            ++step;
            const auto apply = [&](std::vector<double>& p, const std::vector<double>& g,
                                   std::vector<double>& m, std::vector<double>& v) {
                for (std::size_t i = 0; i < p.size(); ++i) {
                    if (adam) {
                        m[i] = 0.9 * m[i] + 0.1 * g[i];
                        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                        const double mh = m[i] / (1 - std::pow(0.9, double(step)));
                        const double vh = v[i] / (1 - std::pow(0.999, double(step)));
                        p[i] -= o.learning_rate * mh / (std::sqrt(vh) + 1e-8);
                    } else {
                        m[i] = momentum * m[i] + g[i];
                        const double d = momentum == 0 ? g[i]
                                         : nesterov    ? g[i] + momentum * m[i]
                                                       : m[i];
                        p[i] -= o.learning_rate * d;
                    }
                }
            };
            for (std::size_t k = 0; k < net.W.size(); ++k) {
                apply(net.W[k], dW[k], buf_w[k], v_w[k]);
                apply(net.b[k], db[k], buf_b[k], v_b[k]);
            }
        }
        history.push_back(mean ? total / double(N) : total);
    }
    check(h.steps == step && h.epochs == epochs, "steps and epochs counted");
    bool ok = h.loss.size() == history.size();
    for (std::size_t e = 0; ok && e < history.size(); ++e)
        ok &= close(h.loss[e], history[e], 1e-11);
    check(ok, "loss history equals the naive one");
    check(same_params(native, net, 1e-10), "parameters equal the naive steps");
    check(h.loss.back() < h.loss.front(), "the loss goes down");
}

static void test_stopping_and_hooks() {
    const std::vector<std::size_t> dims = {1, 8, 1};
    const std::size_t N = 40;
    Net net = random_net(dims, 11);
    std::vector<double> x(N), y(N);
    for (std::size_t n = 0; n < N; ++n)
        x[n] = -1 + 2.0 * double(n) / double(N), y[n] = std::sin(3 * x[n]);
    bc::Targets<double> t;
    t.y = y.data(), t.strides[0] = N, t.strides[1] = 1;
    bc::TrainOptions o;
    o.learning_rate = 0.3, o.momentum = 0.9, o.batch_size = 8, o.epochs = 40;
    o.early_stopping = true, o.validation_fraction = 0.25;
    {
        Native native(net);
        bc::MLPTrainer<double> trainer(1, dims.data(), native.pw.data(), native.pb.data(),
                                       x.data(), N, t, o);
        check(trainer.n_train() == 30 && trainer.validation_samples().size() == 10,
              "held-out count");
        const bc::TrainHistory h = trainer.run();
        const auto best = std::min_element(h.validation_loss.begin(), h.validation_loss.end());
        check(h.best_epoch == best - h.validation_loss.begin(),
              "best epoch is the lowest held-out loss");
        // the kept weights give that loss again
        std::vector<double> f(10 * 8 + 10), hbuf(8 * 10);
        double* fp[2] = {f.data(), f.data() + 80};
        double* hp[2] = {nullptr, hbuf.data()};
        std::vector<double> xv(10), yv(10);
        for (std::size_t j = 0; j < 10; ++j)
            xv[j] = x[trainer.validation_samples()[j]], yv[j] = y[trainer.validation_samples()[j]];
        const bc::MLPView<double> view{1, dims.data(), native.pw.data(), native.pb.data()};
        bc::mlp_forward(view, xv.data(), 10, fp, hp);
        bc::Targets<double> tv;
        tv.y = yv.data(), tv.strides[0] = 10, tv.strides[1] = 1;
        const double kept = bc::loss_and_gradient<double>(
            bc::Loss::squared_error, bc::Reduction::mean, fp[1], 1, 10, tv, nullptr);
        check(kept == *best, "the best epoch's weights are restored");
    }
    {  // a callback stopping after 3 epochs; an interrupt after 5 steps, between steps
        o.early_stopping = false;
        Native native(net);
        bc::MLPTrainer<double> trainer(1, dims.data(), native.pw.data(), native.pb.data(),
                                       x.data(), N, t, o);
        bc::TrainHooks hooks;
        hooks.on_epoch = [](const bc::TrainHistory& h) {
            return h.epochs == 3 ? bc::EpochAction::stop : bc::EpochAction::proceed;
        };
        const bc::TrainHistory h = trainer.run(hooks);
        check(h.epochs == 3 && h.stop_reason == bc::StopReason::callback, "callback stops");
        Native other(net);
        bc::MLPTrainer<double> t2(1, dims.data(), other.pw.data(), other.pb.data(), x.data(), N, t,
                                  o);
        int polls = 0;
        bc::TrainHooks stop;
        stop.poll_seconds = 0;
        stop.interrupted = [&] { return ++polls == 6; };
        const bc::TrainHistory h2 = t2.run(stop);
        check(h2.steps == 5 && h2.epochs == 1 && h2.stop_reason == bc::StopReason::interrupt,
              "interrupt stops between steps");
    }
    {  // bad arguments are named
        std::vector<std::int64_t> labels(N, 0);
        labels[7] = 2;
        bc::Targets<double> tl;
        tl.labels = labels.data();
        bc::TrainOptions c;
        c.loss = bc::Loss::cross_entropy;
        Native native(random_net({1, 3, 2}, 1));
        const std::size_t d2[3] = {1, 3, 2};
        bool threw = false;
        try {
            bc::MLPTrainer<double> bad(1, d2, native.pw.data(), native.pb.data(), x.data(), N, tl,
                                       c);
        } catch (const std::invalid_argument& e) {
            threw = std::string(e.what()).find("y: class labels must lie in [0, 2)") == 0;
        }
        check(threw, "labels out of range raise, naming y");
    }
}

// The whole objective (for L-BFGS) against the naive gradients of all samples at once.
static void test_objective() {
    const std::vector<std::size_t> dims = {3, 6, 4};
    const std::size_t N = 9;
    const Net net = random_net(dims, 21);
    std::mt19937_64 rng(22);
    std::normal_distribution<double> normal;
    std::vector<double> x(3 * N), y(4 * N);
    std::vector<std::int64_t> labels(N);
    for (auto& v : x) v = normal(rng);
    for (auto& v : y) v = normal(rng);
    for (auto& v : labels) v = std::int64_t(rng() % 4);
    std::vector<std::size_t> all(N);
    for (std::size_t i = 0; i < N; ++i) all[i] = i;
    for (int ce = 0; ce < 2; ++ce)
        for (int mean = 0; mean < 2; ++mean) {
            Native native(net);
            std::vector<std::vector<double>> dW = net.W, db = net.b, eW, eb;
            std::vector<double*> pdW, pdb;
            for (auto& a : dW) pdW.push_back(a.data());
            for (auto& a : db) pdb.push_back(a.data());
            std::vector<const double*> cw(native.pw.begin(), native.pw.end()),
                cb(native.pb.begin(), native.pb.end());
            const bc::MLPView<double> view{1, dims.data(), cw.data(), cb.data()};
            bc::Targets<double> t;
            if (ce)
                t.labels = labels.data();
            else
                t.y = y.data(), t.strides[0] = N, t.strides[1] = 1;
            const double value = bc::mlp_objective(
                view, x.data(), N, t, ce ? bc::Loss::cross_entropy : bc::Loss::squared_error,
                mean ? bc::Reduction::mean : bc::Reduction::sum, 0.05, pdW.data(), pdb.data());
            const double expected =
                naive_gradients(net, x, N, y, labels, ce, mean, 0.05, all, eW, eb);
            bool ok = close(value, expected, 1e-13);
            for (std::size_t k = 0; k < 2; ++k) {
                for (std::size_t i = 0; i < eW[k].size(); ++i)
                    ok &= close(dW[k][i], eW[k][i], 1e-12, 1e-15);
                for (std::size_t i = 0; i < eb[k].size(); ++i)
                    ok &= close(db[k][i], eb[k][i], 1e-12, 1e-15);
            }
            check(ok, "mlp_objective equals the naive full-batch objective");
        }
}

// Longer sharded training (minibatches of 64, the last of 38) on two threads and on one: the
// same bits; with two cores and two threads allowed, the partner thread took shards.
static void test_two_threads_same_bits() {
    const std::vector<std::size_t> dims = {3, 48, 40, 2};
    const std::size_t N = 64 * 20 + 38;
    std::mt19937_64 rng(12);
    std::normal_distribution<double> normal;
    std::vector<double> x(3 * N), y(2 * N);
    for (auto& v : x) v = normal(rng);
    for (auto& v : y) v = normal(rng);
    bc::TrainOptions o;
    o.optimizer = bc::Optimizer::adam;
    o.learning_rate = 1e-3, o.alpha = 1e-3, o.epochs = 10, o.batch_size = 64, o.seed = 5;
    bc::Targets<double> t;
    t.y = y.data(), t.strides[0] = N, t.strides[1] = 1;
    const Net start = random_net(dims, 13);
    const unsigned threads = bc::parallel_threads();
    const auto train = [&](unsigned n) {
        bc::set_parallel_threads(n);
        Native native(start);
        bc::MLPTrainer<double>(dims.size() - 2, dims.data(), native.pw.data(), native.pb.data(),
                               x.data(), N, t, o)
            .run();
        return native;
    };
    const std::uint64_t before = bc::detail::duo_rest().partner_halves.load();
    const Native two = train(std::max(threads, 2u));
    const std::uint64_t taken = bc::detail::duo_rest().partner_halves.load() - before;
    const Native one = train(1);
    bc::set_parallel_threads(threads);
    check(two.W == one.W && two.b == one.b, "two threads give the bits of one");
    if (bc::detail::two_physical_cores())
        check(taken > 0, "the partner thread took shards");
}

int main() {
    test_generator();
    test_losses();
    for (int ce = 0; ce < 2; ++ce)
        for (int mean = 0; mean < 2; ++mean) {
            test_against_naive(ce, mean, false, 0.0, false, 0.0, 4, true);
            test_against_naive(ce, mean, false, 0.9, false, 0.01, 3, true);
            test_against_naive(ce, mean, false, 0.9, true, 0.0, 11, false);
            test_against_naive(ce, mean, true, 0.0, false, 0.001, 5, true);
            // in shards: 40 (24 + 16) and the last 35 (24 + 11); all 75 at once (40 + 35)
            test_against_naive(ce, mean, false, 0.9, true, 0.01, 40, true, 75);
            test_against_naive(ce, mean, true, 0.0, false, 0.001, 75, false, 75);
        }
    test_stopping_and_hooks();
    test_objective();
    test_two_threads_same_bits();
    if (failures)
        std::fprintf(stderr, "%d failures\n", failures);
    else
        std::printf("test_train: all passed\n");
    return failures != 0;
}
