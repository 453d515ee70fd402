// test-ops cases of cuda::topk_lower_index (the indexer's top-k) against cpu::topk_lower_index, index for
// index (exact_i32): real widths (rows of 5000 / 8191 compressed entries, k 512 and 1024), k not a power of
// two, massive ties (a handful of distinct values, all-equal rows, ±0 and denormal mixes), rows whose valid
// length sits on the kernel's boundaries (0, 1, k − 1, k, k + 1, the sort-only capacity, beyond n_cols), rows
// longer than the kernel's shared-memory key cache, and k above the radix kernel's limit (rank fallback).
// Rows are few: the CPU reference sorts every row.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <numeric>
#include <vector>

#include "op_harness.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::testops {
namespace {

enum class Dist {
    uniform,  // U(−4, 4), every 97th entry ±0: (almost) no ties
    grid,     // 0.5·{−2 .. 2}, zeros of both signs: five distinct values
    equal,    // by row: all 1.25, all ±0 (signs mixed), all −3
    zeros,    // mostly ±0, a few ±denormals and ±FLT_MIN: the key map around zero
    edge,     // by row: one max + one min in a flat row, ascending ramp, descending ramp, ±inf sprinkled,
              // two values with the threshold in the lower one, random bit patterns (every finite float)
};
enum class NValid {
    full,  // n_valid = n_cols (every third row n_cols + 3: clamped)
    vary,  // by row from {0, 1, k − 1, k, k + 1, cap − 1, cap, cap + 1, 2k, random, n_cols}
};

const char* dist_name(Dist d) {
    switch (d) {
        case Dist::uniform:
            return "uniform";
        case Dist::grid:
            return "grid";
        case Dist::equal:
            return "equal";
        case Dist::zeros:
            return "zeros";
        case Dist::edge:
            return "edge";
    }
    return "?";
}

struct TopkTiesCase : OpCase {
    struct P {
        int64_t n, n_cols, k;
        Dist dist;
        NValid nvm;
    } p;
    std::vector<float> scores;
    std::vector<int64_t> n_valid;

    std::string op() const override { return "topk_lower_index"; }
    std::string vars() const override {
        return fmt::format("n={},cols={},k={},dist={},nv={}", p.n, p.n_cols, p.k, dist_name(p.dist),
                           p.nvm == NValid::full ? "full" : "vary");
    }

    static float signed_zero(Rng& rng) { return rng.below(2) ? -0.0f : 0.0f; }
    void fill_row(Rng& rng, int64_t t, float* x) const {
        const int64_t m = p.n_cols;
        switch (p.dist) {
            case Dist::uniform:
                for (int64_t i = 0; i < m; ++i)
                    x[i] = i % 97 == 0 ? signed_zero(rng) : rng.uniform(-4.0f, 4.0f);
                break;
            case Dist::grid:
                for (int64_t i = 0; i < m; ++i) {
                    const int64_t v = rng.below(5) - 2;
                    x[i] = v == 0 ? signed_zero(rng) : 0.5f * float(v);
                }
                break;
            case Dist::equal:
                for (int64_t i = 0; i < m; ++i)
                    x[i] = t % 3 == 0 ? 1.25f : (t % 3 == 1 ? signed_zero(rng) : -3.0f);
                break;
            case Dist::zeros: {
                const float few[] = {1e-45f, -1e-45f, 1.17549435e-38f, -1.17549435e-38f};
                for (int64_t i = 0; i < m; ++i)
                    x[i] = rng.below(8) == 0 ? few[rng.below(4)] : signed_zero(rng);
                break;
            }
            case Dist::edge:
                for (int64_t i = 0; i < m; ++i) {
                    switch (t % 6) {
                        case 0:
                            x[i] = 2.0f;
                            break;
                        case 1:
                            x[i] = 0.001f * float(i);
                            break;
                        case 2:
                            x[i] = -float(i);
                            break;
                        case 3: {
                            const int64_t r = rng.below(10);
                            x[i] = r == 0 ? INFINITY : (r == 1 ? -INFINITY : 0.5f * float(rng.below(5) - 2));
                            break;
                        }
                        case 4:
                            x[i] = -1.0f;
                            break;
                        default: {
                            uint32_t u;
                            do u = uint32_t(rng.next());
                            while ((u & 0x7f800000u) == 0x7f800000u);  // no inf / NaN
                            std::memcpy(&x[i], &u, 4);
                        }
                    }
                }
                if (t % 6 == 0 && m > 0) {
                    x[rng.below(m)] = 3.0f;
                    x[rng.below(m)] = -0.0f;
                }
                if (t % 6 == 4)  // k/2 ones at random places: the k-th best is a −1, taken in index order
                    for (int64_t j = 0; j < p.k / 2 && m > 0; ++j) x[rng.below(m)] = 1.0f;
                break;
        }
    }
    // the GPU kernel's capacity of its sort-only path (topk_sm90.cu): pow2 ≥ max(2k, 512)
    int64_t gpu_cap() const {
        int64_t cap = 512;
        while (cap < 2 * p.k) cap <<= 1;
        return cap;
    }
    void init(Rng& rng) override {
        scores.resize(size_t(p.n * p.n_cols));
        for (int64_t t = 0; t < p.n; ++t) fill_row(rng, t, scores.data() + t * p.n_cols);
        n_valid.resize(size_t(p.n));
        const int64_t cap = gpu_cap();
        const int64_t vary[] = {0, 1, p.k - 1, p.k, p.k + 1, cap - 1, cap, cap + 1, 2 * p.k, -1, p.n_cols};
        for (int64_t t = 0; t < p.n; ++t) {
            if (p.nvm == NValid::full) {
                n_valid[t] = t % 3 == 2 ? p.n_cols + 3 : p.n_cols;
            } else {
                const int64_t v = vary[t % int64_t(std::size(vary))];
                n_valid[t] = v < 0 ? rng.below(p.n_cols + 1) : std::max<int64_t>(0, v);
            }
        }
    }
    std::vector<OutSpec> outputs() const override { return {{"sel", OutKind::exact_i32, p.n * p.k}}; }
    void run_cpu(const Outs& o) override {
        cpu::topk_lower_index(scores.data(), p.n, p.n_cols, n_valid.data(), p.k, o.i32(0));
    }
    bool run_naive(const Outs& o) override {  // full sort on (score desc, index asc), −0 == +0 by float ==
        for (int64_t t = 0; t < p.n; ++t) {
            const float* row = scores.data() + t * p.n_cols;
            const int64_t nv = std::min(n_valid[t], p.n_cols);
            std::vector<int32_t> idx(static_cast<size_t>(nv));
            std::iota(idx.begin(), idx.end(), 0);
            std::sort(idx.begin(), idx.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
            for (int64_t j = 0; j < p.k; ++j) o.i32(0)[t * p.k + j] = j < nv ? idx[size_t(j)] : -1;
        }
        return true;
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        return cuda::topk_lower_index(dev.up(scores), p.n, p.n_cols, dev.up(n_valid), p.k, o.i32(0),
                                      dev.stream);
    }
#endif
};

using D = Dist;
using V = NValid;
DSV4_OP_CASES(TopkTiesCase,
              // real widths (V4-Flash k 512, V4-Pro k 1024; 8191 = one short of 32k context / 4)
              {4, 5000, 512, D::uniform, V::full}, {11, 8191, 512, D::uniform, V::vary},
              {11, 8191, 1024, D::uniform, V::vary}, {4, 5000, 1024, D::uniform, V::full},
              // massive ties: the k-th value is shared by thousands, filled in index order
              {11, 5000, 1024, D::grid, V::vary}, {3, 8191, 512, D::grid, V::full},
              {3, 8191, 1024, D::equal, V::full}, {3, 5000, 512, D::equal, V::full},
              {11, 5000, 512, D::zeros, V::vary}, {3, 8191, 1024, D::zeros, V::full},
              // k not a power of two, edge rows
              {6, 3000, 300, D::edge, V::full}, {11, 4097, 777, D::edge, V::vary},
              {12, 2500, 1000, D::grid, V::vary}, {6, 8191, 512, D::edge, V::full},
              // rows longer than the kernel's key cache (16384 columns, ~40960 for ≤ 128 rows); 17 index bits
              {130, 17000, 512, D::uniform, V::full}, {3, 20000, 1024, D::grid, V::full},
              {2, 50000, 1024, D::uniform, V::full}, {2, 65537, 64, D::equal, V::full},
              // the radix kernel's largest k, and the rank fallback above it
              {11, 6000, 2048, D::grid, V::vary}, {3, 3000, 2049, D::grid, V::vary},
              // tiny: k = 1, 8 / 9 index bits (256 / 257 columns), one column, k > n_cols
              {11, 64, 1, D::grid, V::vary}, {6, 256, 5, D::zeros, V::full}, {6, 257, 5, D::zeros, V::full},
              {3, 1, 1, D::uniform, V::full}, {4, 700, 1024, D::grid, V::full});

}  // namespace
}  // namespace dsv4::testops
