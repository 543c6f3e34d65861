// Splitting a pass over the rows of a large matrix across the machine's cores: plain threads,
// started for the pass and joined at its end, so no thread spins between calls.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace backprop_core {

inline unsigned pass_threads() {
    static const unsigned n = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
    return n;
}

// fn(first_row, end_row) over [0, rows); in parallel when the pass is large enough to repay
// starting threads (about 2^18 elements per extra thread).
template <class F> void for_rows(std::size_t rows, std::size_t cols, F&& fn) {
    const std::size_t per_thread = std::size_t(1) << 18;
    const std::size_t parts =
        std::min<std::size_t>({pass_threads(), rows, std::max<std::size_t>(1, rows * cols / per_thread)});
    if (parts <= 1) return fn(std::size_t(0), rows);
    std::vector<std::thread> pool;
    pool.reserve(parts - 1);
    for (std::size_t p = 1; p < parts; ++p)
        pool.emplace_back([&fn, p, parts, rows] { fn(rows * p / parts, rows * (p + 1) / parts); });
    fn(std::size_t(0), rows / parts);
    for (auto& t : pool) t.join();
}

}  // namespace backprop_core
