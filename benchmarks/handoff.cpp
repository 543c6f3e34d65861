// What handing data between two cores costs on this machine, the measurement behind training's
// minibatch steps staying on one core (benchmarks/README.md, "Two cores in one training step").
// Built and run by handoff.py. Two threads take turns: each reads the n doubles the other just
// wrote (a sum), writes n of its own, and passes the turn through one atomic, spinning with the
// CPU's pause while it waits. Prints "n round_trip_ns" per size: one round trip is two hand-offs
// of n doubles each, the least a step split over two cores must pay (the updated parameters one
// way, the gradients the other).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif

static double round_trip_ns(std::size_t n, std::size_t rounds) {
    std::vector<double> a(n + 1, 1.0), b(n + 1, 1.0);  // (n + 1: no empty vector for n = 0)
    std::atomic<std::size_t> turn{0};
    double sink = 0;
    std::thread partner([&] {
        for (std::size_t r = 1; r < 2 * rounds; r += 2) {
            while (turn.load(std::memory_order_acquire) != r) PAUSE();
            double s = 0;
            for (std::size_t i = 0; i < n; ++i) s += a[i];
            for (std::size_t i = 0; i < n; ++i) b[i] = s + double(i);
            turn.store(r + 1, std::memory_order_release);
        }
    });
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t r = 0; r < 2 * rounds; r += 2) {
        double s = 0;
        for (std::size_t i = 0; i < n; ++i) s += b[i];
        for (std::size_t i = 0; i < n; ++i) a[i] = s - double(i);
        turn.store(r + 1, std::memory_order_release);
        while (turn.load(std::memory_order_acquire) != r + 2) PAUSE();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    partner.join();
    sink += a[0] + b[0];
    return sink == -1.0 ? 0.0 : s / double(rounds) * 1e9;
}

int main(int argc, char** argv) {
    const std::size_t rounds = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
    for (const std::size_t n : {std::size_t(0), std::size_t(8), std::size_t(2145), std::size_t(8192)}) {
        double best = 1e30;
        for (int repeat = 0; repeat < 5; ++repeat) best = std::min(best, round_trip_ns(n, rounds));
        std::printf("%zu %.1f\n", n, best);
    }
    return 0;
}
