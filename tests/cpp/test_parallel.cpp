// The thread pool under ThreadSanitizer (scripts/test_cpp.sh): several callers at once, each
// task run exactly once, a call from inside a task, a task that throws, a forked child that
// must start its own workers rather than wait for its parent's, and the thread count changed at
// run time (never more threads at once than it allows, also while other callers run); and Duo,
// the pair of threads of a training step's two shards. Exits non-zero on any wrong result.
#include "backprop_core/parallel.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

using backprop_core::parallel_for;

static std::atomic<int> failures{0};

static void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++failures;
    }
}

// Each task writes its own slot with a value that takes some work to compute.
static void triangle_numbers(std::size_t tasks) {
    std::vector<long> out(tasks, -1);
    std::vector<std::atomic<int>> runs(tasks);
    parallel_for(tasks, [&](std::size_t i) {
        long s = 0;
        for (long k = 0; k <= long(i) * 100; ++k) s += k;
        out[i] = s;
        ++runs[i];
    });
    for (std::size_t i = 0; i < tasks; ++i) {
        const long n = long(i) * 100;
        check(out[i] == n * (n + 1) / 2, "every task's result");
        check(runs[i] == 1, "every task runs once");
    }
}

// The most tasks running at once in one call of tasks that sleep (so every allowed thread joins
// in, however loaded the machine).
static int most_at_once(std::size_t tasks) {
    std::atomic<int> active{0}, most{0};
    parallel_for(tasks, [&](std::size_t) {
        const int now = ++active;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        --active;
    });
    return most.load();
}

static void thread_count_at_run_time() {
    using backprop_core::parallel_threads;
    using backprop_core::set_parallel_threads;
    const unsigned start = parallel_threads();
    set_parallel_threads(4);  // starts 3 workers
    check(parallel_threads() == 4, "set_parallel_threads(4)");
    check(most_at_once(64) <= 4, "at most 4 threads at once with 4");
    set_parallel_threads(2);  // the workers stay, one may join
    check(most_at_once(64) <= 2, "at most 2 threads at once with 2 after 4");
    set_parallel_threads(1);
    check(most_at_once(64) == 1, "one thread with 1");
    set_parallel_threads(0);
    check(parallel_threads() == 1, "0 is clamped to 1");
    set_parallel_threads(100000);
    check(parallel_threads() == backprop_core::max_parallel_threads, "clamped to the maximum");
    // changed while other threads call: every task still runs once (and no data race)
    std::atomic<bool> stop{false};
    std::thread changer([&] {
        for (unsigned n = 0; !stop; ++n) set_parallel_threads(1 + n % 5);
    });
    std::vector<std::thread> callers;
    for (int c = 0; c < 3; ++c)
        callers.emplace_back([c] {
            for (int rep = 0; rep < 50; ++rep) triangle_numbers(std::size_t(1 + rep % 30 + c));
        });
    for (auto& t : callers) t.join();
    stop = true;
    changer.join();
    set_parallel_threads(start);
}

// Duo: many jobs in a row, each half writing its own slots and the caller reading them after;
// halves that throw; a Duo without a partner; waiting() called only while the partner works.
static void duo() {
    using backprop_core::Duo;
    for (const bool partner : {true, false}) {
        Duo pair(partner);
        const auto caller = std::this_thread::get_id();
        std::vector<long> out(2 * 2000);
        std::size_t elsewhere = 0, waits = 0;
        for (std::size_t job = 0; job < 2000; ++job) {
            std::thread::id ran_on[2];
            std::atomic<bool> first_done{false}, second_on_caller{false};
            pair.run(
                [&](std::size_t half) {
                    long v = 0;  // some work, so that the partner has time to claim its half
                    for (long i = 0; i < 2000 + long(half) * 1000; ++i) v += i % 7 == 3 ? i : 1;
                    out[2 * job + half] = v + long(job);
                    ran_on[half] = std::this_thread::get_id();
                    if (half == 0) first_done = true;
                    if (half == 1 && ran_on[1] == caller) second_on_caller = true;
                },
                [&] {
                    ++waits;
                    check(first_done && !second_on_caller,
                          "waiting() runs after the first half, while the partner has the second");
                });
            check(ran_on[0] == caller, "the first half runs on the caller");
            elsewhere += ran_on[1] != caller;
        }
        long want[2] = {0, 0};
        for (long h = 0; h < 2; ++h)
            for (long i = 0; i < 2000 + h * 1000; ++i) want[h] += i % 7 == 3 ? i : 1;
        bool same = true;
        for (std::size_t job = 0; job < 2000; ++job)
            same &= out[2 * job] == want[0] + long(job) && out[2 * job + 1] == want[1] + long(job);
        check(same, "every half's result, read by the caller after run()");
        if (partner && backprop_core::detail::two_physical_cores()) {
            check(elsewhere > 0, "the partner runs second halves");
        } else {
            check(elsewhere == 0 && waits == 0, "without a partner the caller runs both halves");
        }
        for (const std::size_t bad : {std::size_t(0), std::size_t(1)}) {
            bool caught = false;
            std::atomic<int> ran{0};
            try {
                pair.run([&](std::size_t half) {
                    ++ran;
                    if (half == bad) throw std::runtime_error("half");
                }, [] {});
            } catch (const std::runtime_error&) {
                caught = true;
            }
            check(caught && ran == 2, "a half's exception reaches the caller after both ran");
        }
        std::atomic<int> after{0};
        pair.run([&](std::size_t) { ++after; }, [] {});
        check(after == 2, "the pair works after an exception");
    }
    // A partner that takes long over its half (as one that lost its core would) makes the
    // caller keep the next halves for a rest of at least 1 ms.
    if (backprop_core::detail::two_physical_cores()) {
        Duo pair(true);
        for (int attempt = 0; attempt < 50; ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));  // any rest is over
            std::thread::id slow_on, next_on;
            const auto caller = std::this_thread::get_id();
            pair.run([&](std::size_t half) {
                if (half == 0) {  // give the partner time to claim its half
                    std::this_thread::sleep_for(std::chrono::microseconds(300));
                    return;
                }
                slow_on = std::this_thread::get_id();
                if (slow_on != caller) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }, [] {});
            if (slow_on == caller) continue;  // the partner had no core in time: try again
            pair.run([&](std::size_t half) {
                if (half == 1) next_on = std::this_thread::get_id();
            }, [] {});
            check(next_on == caller, "after a long wait for the partner the caller rests it");
            break;
        }
    }
    // a Duo made and dropped at once, and one whose partner has gone to sleep
    { Duo idle(true); }
    Duo sleepy(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> woke{0};
    for (int i = 0; i < 3; ++i) sleepy.run([&](std::size_t) { ++woke; }, [] {});
    check(woke == 6, "a sleeping partner's pair runs every half");
}

int main() {
    thread_count_at_run_time();
    duo();
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; ++c)
        callers.emplace_back([c] {
            for (int rep = 0; rep < 100; ++rep) triangle_numbers(std::size_t(1 + rep % 40 + c));
        });
    for (auto& t : callers) t.join();

    std::atomic<int> inner{0};
    parallel_for(8, [&](std::size_t) { parallel_for(4, [&](std::size_t) { ++inner; }); });
    check(inner == 32, "a call from inside a task runs all its tasks");

    std::atomic<int> ran{0};
    bool caught = false;
    try {
        parallel_for(20, [&](std::size_t i) {
            ++ran;
            if (i == 7) throw std::runtime_error("task 7");
        });
    } catch (const std::runtime_error& e) {
        caught = std::string(e.what()) == "task 7";
    }
    check(caught, "a task's exception reaches the caller");
    check(ran == 20, "the other tasks still run when one throws");
    triangle_numbers(30);  // and the pool still works afterwards

    const pid_t pid = fork();
    if (pid == 0) {
        triangle_numbers(50);
        _exit(failures == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child computes and returns");

    std::printf("%s\n", failures == 0 ? "parallel_for: all checks passed" : "parallel_for: FAILED");
    return failures == 0 ? 0 : 1;
}
