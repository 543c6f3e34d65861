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
    using clock = std::chrono::steady_clock;
    const bool two_cores = backprop_core::detail::two_physical_cores();
    for (const bool partner : {true, false}) {
        Duo pair(partner);
        const auto caller = std::this_thread::get_id();
        std::vector<long> out;
        std::size_t elsewhere = 0, waits = 0, jobs = 0;
        // at least 2000 jobs; with a partner, on until it has run halves and been waited for
        // (a loaded machine may rest it a while), for at most 10 s
        const auto until = clock::now() + std::chrono::seconds(10);
        for (std::size_t job = 0; job < 2000 || (partner && two_cores && (!elsewhere || !waits) &&
                                                 clock::now() < until);
             ++job, ++jobs) {
            out.resize(2 * job + 2);
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
                    return false;
                });
            check(ran_on[0] == caller, "the first half runs on the caller");
            elsewhere += ran_on[1] != caller;
        }
        long want[2] = {0, 0};
        for (long h = 0; h < 2; ++h)
            for (long i = 0; i < 2000 + h * 1000; ++i) want[h] += i % 7 == 3 ? i : 1;
        bool same = true;
        for (std::size_t job = 0; job < jobs; ++job)
            same &= out[2 * job] == want[0] + long(job) && out[2 * job + 1] == want[1] + long(job);
        check(same, "every half's result, read by the caller after run()");
        if (partner && two_cores)
            check(elsewhere > 0 && waits > 0, "the partner runs second halves, waited for");
        else
            check(elsewhere == 0 && waits == 0, "without a partner the caller runs both halves");
        // An exception from either half reaches the caller once both ran; after the first
        // half's, waiting() is not called (it may build on the halves' partial results).
        for (const std::size_t bad : {std::size_t(0), std::size_t(1)}) {
            bool caught = false;
            std::atomic<int> ran{0}, waited{0};
            try {
                pair.run(
                    [&](std::size_t half) {
                        if (half == 1 && std::this_thread::get_id() != caller)
                            std::this_thread::sleep_for(std::chrono::microseconds(500));
                        ++ran;
                        if (half == bad) throw std::runtime_error("half");
                    },
                    [&] { return ++waited, false; });
            } catch (const std::runtime_error&) {
                caught = true;
            }
            check(caught && ran == 2, "a half's exception reaches the caller after both ran");
            if (bad == 0) check(waited == 0, "no waiting() after the first half threw");
        }
        // An exception from waiting() too, after the partner's half is done.
        {
            bool caught = false;
            std::atomic<int> ran{0};
            std::atomic<bool> on_partner{false};
            try {
                pair.run(
                    [&](std::size_t half) {
                        if (half == 1 && std::this_thread::get_id() != caller) {
                            on_partner = true;  // (the caller waits for it, calling waiting())
                            std::this_thread::sleep_for(std::chrono::microseconds(500));
                        }
                        ++ran;
                    },
                    [&]() -> bool { throw std::runtime_error("waiting"); });
            } catch (const std::runtime_error& e) {
                caught = std::string(e.what()) == "waiting";
            }
            check(ran == 2, "both halves run when waiting() throws");
            check(caught == on_partner.load(), "waiting()'s exception reaches the caller");
        }
        std::atomic<int> after{0};
        pair.run([&](std::size_t) { ++after; }, [] { return false; });
        check(after == 2, "the pair works after an exception");
    }
    // A partner that takes long over its half (as one that lost its core would) makes the
    // caller keep the next halves for a rest of at least 1 ms.
    if (two_cores) {
        Duo pair(true);
        bool tested = false;
        const auto caller = std::this_thread::get_id();
        const auto slow_first = [&](std::size_t half) {  // time for the partner to claim
            if (half == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
        };
        for (int attempt = 0; attempt < 50 && !tested; ++attempt) {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));  // any rest is over
            std::thread::id slow_on, next_on;
            pair.run([&](std::size_t half) {
                slow_first(half);
                if (half == 0) return;
                slow_on = std::this_thread::get_id();
                if (slow_on != caller) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }, [] { return false; });
            if (slow_on == caller) continue;  // the partner had no core in time: try again
            pair.run([&](std::size_t half) {
                slow_first(half);
                if (half == 1) next_on = std::this_thread::get_id();
            }, [] { return false; });
            check(next_on == caller, "after a long wait for the partner the caller rests it");
            tested = true;
        }
        check(tested, "the partner took a slow half in one of 50 tries");
    }
    // a Duo made and dropped at once, and one whose partner has gone to sleep
    { Duo idle(true); }
    Duo sleepy(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> woke{0};
    for (int i = 0; i < 3; ++i) sleepy.run([&](std::size_t) { ++woke; }, [] { return false; });
    check(woke == 6, "a sleeping partner's pair runs every half");
}

// A Duo made before fork(): in the child (forked from the caller's thread, as a callback
// might) it runs both halves on the caller and its destructor does not wait for the parent's
// partner, spinning or asleep at the fork (a child that hangs is killed by an alarm).
static void duo_in_forked_child(int sleep_ms) {
    pid_t pid = -1;
    bool child_ok = false;
    {
        backprop_core::Duo pair(true);
        pair.run([](std::size_t) {}, [] { return false; });
        std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));  // (5: asleep)
        pid = fork();
        if (pid == 0) {
            alarm(20);
            std::atomic<int> halves{0};
            std::thread::id second_on;
            pair.run(
                [&](std::size_t half) {
                    ++halves;
                    if (half == 1) second_on = std::this_thread::get_id();
                },
                [] { return false; });
            child_ok = halves == 2 && second_on == std::this_thread::get_id();
        }
    }  // (the child's copy of the Duo goes here)
    if (pid == 0) _exit(child_ok ? 0 : 1);
    int status = 0;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "a Duo in a forked child runs both halves and is destroyed without waiting");
}

int main() {
    thread_count_at_run_time();
    duo();
    duo_in_forked_child(0);
    duo_in_forked_child(5);
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
