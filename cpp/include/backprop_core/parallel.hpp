// A polite pool of worker threads for the large passes: parallel_for(tasks, fn) runs fn(0) ..
// fn(tasks - 1), each once, on the calling thread and whichever workers are free; run_together
// runs several independent task sets as one such call, or on the calling thread when they are
// too small to be worth waking a worker.
//
// Two promises shape it:
// - Results never depend on the number of threads or on the machine's load: callers split their
//   work into tasks by the problem's shape alone, each task's arithmetic is fixed, and any
//   combining of partial results is done by the caller in task order.
// - Idle workers sleep (a condition variable, no spinning), and tasks are handed out one at a time
//   from a shared counter, so on a busy machine whoever gets a core does the work; the caller
//   waits only for tasks a worker has already started.
//
// The number of threads a call may use (the caller's included) starts as the CPUs this process
// may run on (sched_getaffinity), or BACKPROP_CORE_NUM_THREADS when that variable is a positive
// integer, and set_parallel_threads changes it at run time (1 to 256; a Dask worker sizes it to
// its own threads). Workers are started on first need, as many as the current count asks for;
// those beyond it sleep. A process made by fork() starts a pool of its own (with the parent's
// count). A call made while another thread is using the pool, or from inside a task, runs its
// tasks on the calling thread alone (same results).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace backprop_core {

namespace detail {

struct Job {
    void (*run)(const void* fn, std::size_t task);
    const void* fn;
    std::size_t tasks;
    std::atomic<std::size_t> next{0};
    std::mutex error_lock{};
    std::exception_ptr error{};  // the first task's exception, rethrown to the caller

    void work() noexcept {
        for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
            try {
                run(fn, i);
            } catch (...) {  // e.g. std::bad_alloc in a worker: the caller gets it, not terminate
                std::lock_guard<std::mutex> lk(error_lock);
                if (!error) error = std::current_exception();
            }
        }
    }
};

// How many threads (the caller included) the pool may use.
inline unsigned thread_budget() {
    // Digits only, as the Python package checks (it warns about anything else, which is ignored).
    if (const char* env = std::getenv("BACKPROP_CORE_NUM_THREADS")) {
        unsigned long n = 0;
        const char* c = env;
        for (; *c >= '0' && *c <= '9'; ++c) n = std::min(n * 10 + unsigned(*c - '0'), 1000ul);
        if (c != env && *c == '\0' && n >= 1) return unsigned(std::min(n, 256ul));
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return unsigned(CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1);
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return n ? n : 1;
}

inline long process_id() {
#if defined(__linux__)
    return long(getpid());
#else
    return 0;
#endif
}

inline thread_local bool in_task = false;

#if defined(__unix__) || defined(__APPLE__)
// A condition variable on POSIX's own: GCC 12's libstdc++ gave std::condition_variable::wait a
// new symbol version (GLIBCXX_3.4.30), which alone would raise the wheel's manylinux tag.
class CondVar {
  public:
    CondVar() { pthread_cond_init(&c_, nullptr); }
    ~CondVar() { pthread_cond_destroy(&c_); }
    CondVar(const CondVar&) = delete;
    CondVar& operator=(const CondVar&) = delete;

    template <class Pred> void wait(std::unique_lock<std::mutex>& lk, Pred ready) {
        while (!ready()) pthread_cond_wait(&c_, lk.mutex()->native_handle());
    }
    void notify_all() { pthread_cond_broadcast(&c_); }

  private:
    pthread_cond_t c_;
};
#else
using CondVar = std::condition_variable;
#endif

class Pool {
  public:
    Pool() : pid_(process_id()) {}

    // Runs the job on this thread and at most `helpers` free workers (started now if fewer
    // exist); false when another caller holds the pool.
    bool run(Job& job, unsigned helpers) {
        std::unique_lock<std::mutex> caller(callers_, std::try_to_lock);
        if (!caller.owns_lock()) return false;
        start(helpers);
        {
            std::lock_guard<std::mutex> lk(m_);
            job_ = &job;
            joinable_ = helpers;
            ++generation_;
        }
        wake_.notify_all();
        job.work();
        std::unique_lock<std::mutex> lk(m_);
        job_ = nullptr;  // late wakers find nothing to do
        finished_.wait(lk, [this] { return busy_ == 0; });
        return true;
    }

    long pid() const { return pid_; }

  private:
    // Starts workers until there are `workers` (called with callers_ held); stops at the first
    // the system refuses (the pool then works with fewer, or none: callers run their tasks).
    void start(unsigned workers) noexcept {
        try {
            for (; started_ < workers; ++started_) std::thread([this] { serve(); }).detach();
        } catch (...) {
        }
    }

    void serve() {
        in_task = true;
        std::size_t seen = 0;
        std::unique_lock<std::mutex> lk(m_);
        for (;;) {
            wake_.wait(lk, [&] { return job_ != nullptr && generation_ != seen; });
            seen = generation_;
            if (joinable_ == 0) continue;  // the job has the helpers the thread count allows
            --joinable_;
            Job* job = job_;
            ++busy_;
            lk.unlock();
            job->work();
            lk.lock();
            if (--busy_ == 0) finished_.notify_all();
        }
    }

    const long pid_;
    std::mutex callers_;  // one job at a time
    std::mutex m_;
    CondVar wake_, finished_;
    Job* job_ = nullptr;
    std::size_t generation_ = 0;
    unsigned joinable_ = 0;  // workers that may still join the current job
    unsigned busy_ = 0;      // workers inside a job
    unsigned started_ = 0;   // workers started (only ever grows; those not needed sleep)
};

// Guards making the pool. A fork while another thread holds it would leave it locked in the
// child, which then waits forever on its first large call: fork handlers take it around fork().
inline std::mutex& pool_mutex() {
    static std::mutex make;
    return make;
}

// The process's pool, made on first use; never destroyed, so no thread is joined at exit.
inline Pool* pool() {
#if defined(__unix__) || defined(__APPLE__)
    static const bool handlers = (pthread_atfork([] { pool_mutex().lock(); },
                                                 [] { pool_mutex().unlock(); },
                                                 [] { pool_mutex().unlock(); }),
                                  true);
    (void)handlers;
#endif
    static Pool* current = nullptr;
    std::lock_guard<std::mutex> lk(pool_mutex());
    if (current == nullptr || current->pid() != process_id()) {  // a forked child has no workers
        current = new (std::nothrow) Pool();
    }
    return current;
}

inline std::atomic<unsigned>& threads_setting() {
    static std::atomic<unsigned> n{thread_budget()};
    return n;
}

}  // namespace detail

inline constexpr unsigned max_parallel_threads = 256;

// The number of threads parallel_for may use, the calling thread included.
inline unsigned parallel_threads() { return detail::threads_setting().load(std::memory_order_relaxed); }

// Sets that number for the whole process from now on (clamped to [1, max_parallel_threads]);
// calls already running keep the threads they have. Results do not depend on it.
inline void set_parallel_threads(unsigned n) {
    detail::threads_setting().store(std::clamp(n, 1u, max_parallel_threads), std::memory_order_relaxed);
}

// Runs fn(i) for i in [0, tasks), each once, possibly on several threads at once; returns when
// all are done. If tasks throw, every task still runs and the first exception is rethrown here.
template <class F> void parallel_for(std::size_t tasks, const F& fn) {
    const unsigned threads = parallel_threads();
    if (tasks > 1 && threads > 1 && !detail::in_task) {
        detail::Job job{[](const void* f, std::size_t i) { (*static_cast<const F*>(f))(i); }, &fn,
                        tasks};
        bool done = false;
        {
            struct InTask {
                InTask() { detail::in_task = true; }
                ~InTask() { detail::in_task = false; }
            } scope;
            detail::Pool* p = detail::pool();
            done = p != nullptr && p->run(job, threads - 1);
        }
        if (job.error) std::rethrow_exception(job.error);
        if (done) return;
    }
    for (std::size_t i = 0; i < tasks; ++i) fn(i);
}

// ---------------------------------------------------------------------------- a pair
//
// Duo runs a short job made of two halves, many times in a row (a training step's two shards of
// samples): run(fn, waiting) calls fn(0) on the calling thread and fn(1) on a partner thread of
// its own, or on the calling thread when the partner has not claimed it by the time fn(0) is done
// (so a partner that gets no core costs no waiting). The two halves must not depend on each
// other; whoever runs them, the results are the same. While the caller waits for the partner's
// half it calls waiting() again and again (work that may start on the half's partial results;
// not after fn(0) or waiting() threw): it returns whether it did any, which does not count as
// waiting. An exception from either half or from waiting() reaches the caller once both halves
// are done.
//
// The pool's sleeping workers take microseconds to wake, as long as such a job; the partner
// instead spins (with the CPU's pause hint) for up to partner_spin seconds after each half for
// the next job, then sleeps on a condition variable until one is posted. It is made by the
// constructor (none when `partner` is false or the system refuses a thread) and joined by the
// destructor: no lock outlives the Duo. In a child forked meanwhile (from the caller's thread,
// say in a callback) the Duo has no partner: it runs both halves and never touches the
// parent's thread or its lock.
// Both halves run with in_task set: parallel_for inside them runs on their own thread.
//
// A busy machine (another process's threads, a hypervisor taking a core) shows as a partner
// that misses two jobs in a row while awake (eight while waking up), or that the caller waits
// for past caller_spin seconds (it lost its core mid-half; waiting on could take a scheduler's
// time slice). Either makes the caller run both halves itself for a rest: 1 ms, doubled (up to
// 128 ms) each time the partner fails again within 64 jobs after a rest (a lasting load; a
// passing one lets a partner run hundreds of jobs first). The rest is process-wide, so that it
// carries over from one training call to the next. Measured (2-core Zen 4, the benchmark's
// `train` workload, two processes training side by side): 22-25 ms a run each, as with one
// thread each (22 ms), where partners that never rest took 33-37 ms.
namespace detail {
struct DuoRest {
    std::atomic<std::int64_t> until{0};  // steady_clock nanoseconds
    // jobs posted to partners: in all, and when the last rest began (none yet: the maximum)
    std::atomic<std::uint64_t> posted{0}, posted_at_rest{~std::uint64_t(0)};
    std::atomic<unsigned> backoff{0};
    std::atomic<std::uint64_t> partner_halves{0};  // halves partners ran (for tests)
};
inline DuoRest& duo_rest() {
    static DuoRest r;
    return r;
}
// Whether the CPUs this process may run on span two physical cores: not all of them SMT
// siblings of one core, as Linux's sysfs tells (true where it cannot tell). Read once.
inline bool two_physical_cores() {
    static const bool two = [] {
#if defined(__linux__)
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) != 0) return true;
        std::string first;
        int cpus = 0;
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (!CPU_ISSET(cpu, &set)) continue;
            ++cpus;
            char path[96], line[256] = {0};
            std::snprintf(path, sizeof path,
                          "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
            std::FILE* f = std::fopen(path, "r");
            if (!f) return true;
            const bool got = std::fgets(line, sizeof line, f) != nullptr;
            std::fclose(f);
            if (!got) return true;
            if (cpus == 1)
                first = line;
            else if (first != line)
                return true;
        }
        return false;  // one CPU, or every CPU a sibling of the first
#else
        return true;
#endif
    }();
    return two;
}

// How many fork()s this process descends through (the child's count is one more): a Duo made
// before a fork has no partner in the child.
inline std::atomic<unsigned>& fork_generation() {
    static std::atomic<unsigned> generation{0};
#if defined(__unix__) || defined(__APPLE__)
    static const bool handler = (pthread_atfork(nullptr, nullptr, [] {
                                     generation.fetch_add(1, std::memory_order_relaxed);
                                 }) == 0);
    (void)handler;
#endif
    return generation;
}

inline std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
}  // namespace detail

class Duo {
  public:
    static constexpr double partner_spin = 20e-6, caller_spin = 200e-6, first_rest = 1e-3;
    static constexpr unsigned max_backoff = 7;

    // No partner when `partner` is false or the process's CPUs are SMT siblings of one core
    // (the two halves would share its arithmetic units).
    explicit Duo(bool partner) : generation_(detail::fork_generation().load()) {
        if (!partner || !detail::two_physical_cores()) return;
        try {
            sync_.reset(new Sync());
            thread_ = std::thread([this] { serve(); });
        } catch (...) {  // no thread: every half runs on the caller
        }
    }
    ~Duo() {
        if (!thread_.joinable()) return;
        if (!own_partner()) {  // a forked child: the partner is the parent's; leave it be
            // (its handle moved where it is never joined nor destroyed; no allocation, which
            // a child may not be able to make)
            alignas(std::thread) static thread_local unsigned char spare[sizeof(std::thread)];
            new (spare) std::thread(std::move(thread_));
            (void)sync_.release();
            return;
        }
        {
            std::lock_guard<std::mutex> lk(sync_->m);
            stop_.store(true, std::memory_order_seq_cst);
        }
        sync_->wake.notify_all();
        thread_.join();
    }
    Duo(const Duo&) = delete;
    Duo& operator=(const Duo&) = delete;

    template <class F, class Waiting> void run(const F& fn, const Waiting& waiting) {
        const std::uint64_t job = ++jobs_;
        const bool partner = thread_.joinable() && own_partner() && !resting();
        bool asleep = false;  // (a partner waking up, or just started, may well miss a job)
        if (partner) {
            detail::duo_rest().posted.fetch_add(1, std::memory_order_relaxed);
            call_ = [](const void* f, std::size_t half) { (*static_cast<const F*>(f))(half); };
            fn_ = &fn;
            job_ = job;
            error_ = nullptr;
            open_.store(true, std::memory_order_release);  // (after the job's fields)
            posted_.store(job, std::memory_order_seq_cst);
            asleep = sleeping_.load(std::memory_order_seq_cst);
            if (asleep) {
                std::lock_guard<std::mutex> lk(sync_->m);  // (the partner checks posted_ under it)
                sync_->wake.notify_all();
            }
        }
        std::exception_ptr error;
        const bool was_in_task = detail::in_task;
        detail::in_task = true;
        try {
            fn(0);
        } catch (...) {
            error = std::current_exception();
        }
        if (!partner || open_.exchange(false, std::memory_order_acq_rel)) {
            // no core for the partner: twice in a row while awake, or 8 times while waking
            if (partner && (++misses_ >= 8 || (!asleep && ++awake_misses_ >= 2))) rest();
            try {
                fn(1);
            } catch (...) {
                if (!error) error = std::current_exception();
            }
        } else {  // the partner has started the second half: wait for it, spinning a while
            misses_ = awake_misses_ = 0;
            std::int64_t since = detail::now_ns();
            bool spin = true;
            for (unsigned spins = 1; done_.load(std::memory_order_acquire) != job; ++spins) {
                if (!error) {
                    try {
                        if (waiting()) since = detail::now_ns();  // (its work is not waiting)
                    } catch (...) {
                        error = std::current_exception();
                    }
                }
                if (spin && spins % 64 == 0)
                    spin = double(detail::now_ns() - since) < caller_spin * 1e9;
                if (spin)
                    pause();
                else
                    std::this_thread::yield();
            }
            if (!spin) rest();  // the partner lost its core mid-half
            if (!error) error = error_;
        }
        detail::in_task = was_in_task;
        if (error) std::rethrow_exception(error);
    }

  private:
    bool own_partner() const {
        return generation_ == detail::fork_generation().load(std::memory_order_relaxed);
    }

    static bool resting() {
        return detail::duo_rest().until.load(std::memory_order_relaxed) > detail::now_ns();
    }

    void rest() {
        detail::DuoRest& r = detail::duo_rest();
        const std::int64_t now = detail::now_ns();
        const std::uint64_t posted = r.posted.load(std::memory_order_relaxed);
        // failing again within a few jobs after the last rest: the machine is still busy
        const std::uint64_t at = r.posted_at_rest.load(std::memory_order_relaxed);
        const bool again = at != ~std::uint64_t(0) && posted - at < 64;
        const unsigned backoff =
            again ? std::min(r.backoff.load(std::memory_order_relaxed) + 1, max_backoff) : 0;
        r.backoff.store(backoff, std::memory_order_relaxed);
        r.posted_at_rest.store(posted, std::memory_order_relaxed);
        r.until.store(now + std::int64_t(first_rest * 1e9 * double(1u << backoff)),
                      std::memory_order_relaxed);
        misses_ = awake_misses_ = 0;
    }

    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
    }

    void serve() {
        detail::in_task = true;
        sleeping_.store(false, std::memory_order_seq_cst);
        std::uint64_t seen = 0;
        for (;;) {
            // spin for the next job, then sleep
            const std::int64_t since = detail::now_ns();
            for (unsigned spins = 1;; ++spins) {
                if (posted_.load(std::memory_order_acquire) != seen ||
                    stop_.load(std::memory_order_relaxed))
                    break;
                if (spins % 64 == 0 && double(detail::now_ns() - since) > partner_spin * 1e9) {
                    std::unique_lock<std::mutex> lk(sync_->m);
                    sleeping_.store(true, std::memory_order_seq_cst);
                    sync_->wake.wait(lk, [&] {
                        return posted_.load(std::memory_order_seq_cst) != seen ||
                               stop_.load(std::memory_order_seq_cst);
                    });
                    sleeping_.store(false, std::memory_order_relaxed);
                    break;
                }
                pause();
            }
            if (stop_.load(std::memory_order_acquire)) return;
            seen = posted_.load(std::memory_order_acquire);
            if (!open_.exchange(false, std::memory_order_acq_rel)) continue;  // the caller took it
            // open_ was set for the newest job, after its fields
            const std::uint64_t job = job_;
            try {
                call_(fn_, 1);
            } catch (...) {
                error_ = std::current_exception();
            }
            detail::duo_rest().partner_halves.fetch_add(1, std::memory_order_relaxed);
            done_.store(job, std::memory_order_release);
        }
    }

    std::thread thread_;
    unsigned generation_;     // detail::fork_generation() when made
    std::uint64_t jobs_ = 0;  // the caller's count of jobs
    // jobs in a row whose second half the partner did not claim (and of them, while awake)
    unsigned misses_ = 0, awake_misses_ = 0;
    // the current job, written by the caller before open_ is set
    void (*call_)(const void*, std::size_t) = nullptr;
    const void* fn_ = nullptr;
    std::uint64_t job_ = 0;
    std::exception_ptr error_{};  // the partner's exception, read after done_
    std::atomic<bool> open_{false};  // the second half is not yet claimed
    std::atomic<std::uint64_t> posted_{0}, done_{0};
    std::atomic<bool> sleeping_{true}, stop_{false};  // (asleep until it first spins)
    // where the partner sleeps (made with it; a forked child leaves them as they are: the parent's
    // thread may have been waiting there, and destroying them would wait for it)
    struct Sync {
        std::mutex m;
        detail::CondVar wake;
    };
    std::unique_ptr<Sync> sync_;
};

// ---------------------------------------------------------------------------- task sets

// Work cut into `count` independent tasks; run(i) does the i-th. `work` counts its
// multiply-adds (or element operations), to tell whether other threads are worth waking.
template <class F> struct TaskSet {
    std::size_t count;
    F run;
    double work;
};
template <class F> TaskSet<F> task_set(std::size_t count, F run, double work) {
    return {count, std::move(run), work};
}

// Less work than this runs on the calling thread: waking a worker costs more (measured: the
// notebook's 6-wide network, one sample, took 2.8 us alone and 8.8 us through the pool).
inline constexpr double parallel_work = double(1 << 20);

// Runs the tasks of several sets as one parallel region (the first set's tasks are handed out
// first): independent products of one layer share the cores with no wait between them. The
// tasks are the same either way, so are the results.
template <class... Sets> void run_together(const Sets&... sets) {
    const std::size_t total = (sets.count + ... + 0);
    const auto run = [&](std::size_t i) {
        bool done = false;  // find the set task i belongs to, then run it
        ((done || (i < sets.count ? (sets.run(i), done = true) : (i -= sets.count, false))), ...);
    };
    if ((sets.work + ... + 0.0) < parallel_work)
        for (std::size_t i = 0; i < total; ++i) run(i);
    else
        parallel_for(total, run);
}

}  // namespace backprop_core
