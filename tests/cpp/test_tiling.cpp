// How large products are cut (gemm.hpp), checked over many shapes: tiles cover the output exactly
// once with no empty tile, sample ranges cover the samples exactly once, neither depends on
// anything but the shape, and the counts stay near the aim (about 2^25 multiply-adds a piece).
// Also how the one-call pass cuts samples into blocks (mlp.hpp): every group gets a block.
#include "backprop_core/gemm.hpp"
#include "backprop_core/mlp.hpp"

#include <cstdio>
#include <random>
#include <vector>

using backprop_core::SampleSplit;
using backprop_core::Tiling;

static int failures = 0;

static void check(bool ok, const char* what, std::size_t M, std::size_t N, std::size_t K) {
    if (!ok && failures++ < 10) std::fprintf(stderr, "FAILED: %s (%zu x %zu x %zu)\n", what, M, N, K);
}

int main() {
    std::mt19937_64 rng(7);
    auto dim = [&](unsigned max_log2) {
        const unsigned bits = unsigned(rng() % (max_log2 + 1));
        return std::size_t(rng() % (std::size_t(1) << bits)) + (rng() % 8 == 0 ? 0 : 1);
    };
    std::size_t most_tiles = 0, most_parts = 0;
    for (int trial = 0; trial < 200000; ++trial) {
        const std::size_t M = dim(14), N = dim(16), K = dim(14);
        const Tiling t(M, N, K);
        check(t.rows >= 1 && t.cols >= 1, "tile sides are positive", M, N, K);
        check(t.down == (M + t.rows - 1) / t.rows && t.across == (N + t.cols - 1) / t.cols,
              "the tiles cover the output", M, N, K);
        check(M == 0 || (t.down - 1) * t.rows < M, "no empty row of tiles", M, N, K);
        check(N == 0 || (t.across - 1) * t.cols < N, "no empty column of tiles", M, N, K);
        const double work = double(M) * double(N) * double(K);
        const std::size_t tiles = t.down * t.across;
        if (work < double(1 << 26)) check(tiles <= 1, "small products are one tile", M, N, K);
        const double aim = std::min(64.0, std::max(1.0, work / double(1 << 25)));
        check(tiles <= 64 && double(tiles) <= aim, "no more tiles than the aim", M, N, K);
        // At least half the aim, unless the output has fewer 32 x 32 blocks than that (sides
        // are multiples of 32, so three tiles' worth may round to two).
        const double blocks = double((M + 31) / 32) * double((N + 31) / 32);
        check(2.0 * double(tiles) >= std::min(std::floor(aim), blocks), "at least half the aim", M, N, K);
        most_tiles = std::max(most_tiles, tiles);

        const SampleSplit s(M, K, N);  // a weight gradient (M, K) summed over N samples
        check(s.parts >= 1 && s.len >= 1, "ranges are positive", M, N, K);
        check(N == 0 || (s.parts - 1) * s.len < N, "no empty range", M, N, K);
        check(s.parts * s.len >= N, "the ranges cover the samples", M, N, K);
        most_parts = std::max(most_parts, s.parts);
        const Tiling again(M, N, K);
        check(again.rows == t.rows && again.cols == t.cols, "the same shape, the same tiles", M, N, K);
    }
    std::size_t most_blocks = 0;
    for (int trial = 0; trial < 200000; ++trial) {
        const std::size_t K = rng() % 5, N = dim(18);
        std::vector<std::size_t> dims(K + 2);
        for (auto& d : dims) d = dim(12);
        const std::size_t elem = trial % 2 ? 8 : 4, panel = 256 / elem;
        const backprop_core::BlockPlan p(K, dims.data(), N, elem);
        const std::size_t D = dims[0], M = dims[K + 1];  // (reported as the shape)
        check(p.block >= panel && p.block % panel == 0 && p.block <= 1024,
              "blocks of whole 256-byte panels, at most 1024 samples", D, N, M);
        check(p.blocks * p.block >= N, "the blocks cover the samples", D, N, M);
        check(N == 0 || (p.blocks - 1) * p.block < N, "no empty block", D, N, M);
        check(p.groups <= 8 && p.groups <= p.blocks && (N == 0 || p.groups >= 1),
              "1 to 8 groups, none without a block", D, N, M);
        check(!p.use || p.blocks >= 2, "the blocked pass has blocks to share", D, N, M);
        const backprop_core::BlockPlan again(K, dims.data(), N, elem);
        check(again.block == p.block && again.groups == p.groups, "the same shape, the same plan", D, N, M);
        most_blocks = std::max(most_blocks, p.blocks);
    }
    std::printf("tiling: %s (at most %zu tiles, %zu sample ranges, %zu blocks)\n",
                failures ? "FAILED" : "all checks passed", most_tiles, most_parts, most_blocks);
    return failures ? 1 : 0;
}
