// How far the fused toy chain over many samples is from the cost of its transcendentals alone
// (issue 14, item 3). Built and run by toy_cycles.py, which writes the samples and reads the
// table this prints; the core is header-only, so this times the same code the package runs.
//
//   toy_cycles X_FILE Y_FILE N REPEATS beta0..beta3 omega0..omega3
//
// Rows (medians of REPEATS, nanoseconds per sample; cycles at the clock measured here):
//   chain: toy_gradients (notebook 7.1's sin, exp, cos), forward and backward, sums only;
//   transcendentals alone: the five vector-math calls the chain makes a sample (sin and cos of
//     f_0, exp of f_1, cos and sin of f_2; exp's derivative is its value), on the chain's own
//     arguments, in the chain's blocks of 256, nothing else;
// each on one thread, then on the pool's threads.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "backprop_core/toy.hpp"

namespace bc = backprop_core;
using clock_type = std::chrono::steady_clock;

static std::vector<double> read_doubles(const char* path, std::size_t n) {
    std::vector<double> v(n);
    std::ifstream in(path, std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * sizeof(double))))
        throw std::runtime_error(std::string("cannot read ") + path);
    return v;
}

template <class F> static double median_seconds(int repeats, const F& f) {
    f();  // warm up: pages, the pool's threads
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = clock_type::now();
        f();
        t.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

// The core clock: a chain of dependent integer multiplications, three cycles each on x86-64
// cores of the last decade (a chain of additions of an immediate can run faster than one a
// cycle: newer cores fold them when renaming).
static double core_ghz() {
    double best = 0;
    for (int r = 0; r < 5; ++r) {
        unsigned long x = 1, one = 1;
        const unsigned long muls = 100'000'000;
        const auto t0 = clock_type::now();
        for (unsigned long i = 0; i < muls / 8; ++i)
            asm volatile("imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0\n\t"
                         "imul %1, %0\n\timul %1, %0\n\timul %1, %0\n\timul %1, %0"
                         : "+r"(x)
                         : "r"(one));
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        best = std::max(best, 3.0 * double(muls) / s / 1e9);
    }
    return best;
}

int main(int argc, char** argv) {
    if (argc != 13) {
        std::fprintf(stderr, "usage: toy_cycles X_FILE Y_FILE N REPEATS beta0..3 omega0..3\n");
        return 2;
    }
    const std::size_t N = std::strtoull(argv[3], nullptr, 10);
    const int repeats = std::atoi(argv[4]);
    double beta[4], omega[4];
    for (int k = 0; k < 4; ++k) beta[k] = std::atof(argv[5 + k]), omega[k] = std::atof(argv[9 + k]);
    const std::vector<double> x = read_doubles(argv[1], N), y = read_doubles(argv[2], N);
    const bc::Activation acts[3] = {bc::Activation::sin, bc::Activation::exp, bc::Activation::cos};
    const bc::ToyChain<double> chain{acts, 3, beta, omega};

    // The chain's own arguments of each transcendental: f_0, f_1, f_2 of every sample.
    std::vector<double> f0(N), f1(N), f2(N), out(N);
    for (std::size_t n = 0; n < N; ++n) {
        f0[n] = beta[0] + omega[0] * x[n];
        f1[n] = beta[1] + omega[1] * std::sin(f0[n]);
        f2[n] = beta[2] + omega[2] * std::exp(f1[n]);
    }
    double dbeta[4], domega[4], loss = 0;
    const auto chain_pass = [&] {
        loss = bc::toy_gradients(chain, x.data(), y.data(), 1, N, dbeta, domega);
    };
    // Five calls a sample, 256 samples a block (toy_sums' blocks), parts as toy_gradients'.
    const auto transcendentals = [&](std::size_t begin, std::size_t end) {
        double t[256];
        for (std::size_t at = begin; at < end; at += 256) {
            const std::size_t n = std::min<std::size_t>(256, end - at);
            bc::vfunc(bc::VFunc::sin, f0.data() + at, out.data() + at, n);  // h_1
            bc::vfunc(bc::VFunc::cos, f0.data() + at, t, n);                // dh_1/df_0
            bc::vfunc(bc::VFunc::exp, f1.data() + at, out.data() + at, n);  // h_2 and dh_2/df_1
            bc::vfunc(bc::VFunc::cos, f2.data() + at, out.data() + at, n);  // h_3
            bc::vfunc(bc::VFunc::sin, f2.data() + at, t, n);                // -dh_3/df_2
        }
    };
    const auto alone = [&] {
        bc::parallel_for(bc::toy_parts(N), [&](std::size_t p) {
            transcendentals(p * bc::toy_part, std::min(N, (p + 1) * bc::toy_part));
        });
    };

    const double ghz = core_ghz();
    const unsigned threads = bc::parallel_threads();
    std::printf("clock %.3f GHz\nthreads %u\n", ghz, threads);
    for (const unsigned use : {1u, threads}) {
        bc::set_parallel_threads(use);
        const double chain_s = median_seconds(repeats, chain_pass);
        const double alone_s = median_seconds(repeats, alone);
        std::printf("row %u %.6e %.6e\n", use, chain_s, alone_s);
        if (threads == 1) break;
    }
    std::printf("loss %.17g\ngradients", loss);
    for (int k = 0; k < 4; ++k) std::printf(" %.17g", dbeta[k]);
    for (int k = 0; k < 4; ++k) std::printf(" %.17g", domega[k]);
    std::printf("\n");
    return 0;
}
