// test-ops cases of cuda::sample_rows against cpu::sample_row, token for token (exact_i32): greedy,
// temperature, top-k, top-p, min-p and their combinations on rows of V = 1000 and the real V = 129280, with
// exact ties, ±0, −inf and +inf entries, and a different seed and position on every row. Rows the GPU hands
// back (top-p candidates over kSampleMaxCandidates) are sampled on the host, as the runtime does.
#include <fmt/format.h>

#include <cmath>
#include <iterator>
#include <vector>

#include "ops/cpu/ops_cpu.h"
#include "op_harness.h"

namespace dsv4::testops {
namespace {

enum class Dist {
    uniform,  // U(−4, 4): flat, large nuclei
    lm,       // N(0, 2.5²) plus 16 peaks in [10, 18]: a language model's row (top-p 0.99 keeps ~2k ids)
    gauss,    // N(0, 3²): top-p 0.9 keeps ~6.7k ids of 129280, 0.99 ~35k (beyond the GPU's cap)
    grid,     // lm rounded to multiples of 0.25, 5% −inf, ±0 mixed: exact ties everywhere
    edge,     // by row: all −inf, one finite id, two +inf, all equal, ±0 and −inf, half −inf
};
const char* dist_name(Dist d) {
    switch (d) {
        case Dist::uniform:
            return "uniform";
        case Dist::lm:
            return "lm";
        case Dist::gauss:
            return "gauss";
        case Dist::grid:
            return "grid";
        case Dist::edge:
            return "edge";
    }
    return "?";
}

// fallback: 0 = every row must be sampled on the GPU, 1 = rows may come back, 2 = some row must come back
struct SampleCase : OpCase {
    struct P {
        int64_t n_rows, V;
        Dist dist;
        float temperature;
        int32_t top_k;
        float top_p, min_p;
        int fallback = 0;
        bool mixed = false;  // each row takes its parameters from kMixed instead
    } p;
    std::vector<float> logits;
    std::vector<SampleParams> sps;
    std::vector<int64_t> positions;

    static constexpr SampleParams kMixed[] = {
        {0.0f, 0, 1.0f, 0.0f, 0}, {1.0f, 0, 1.0f, 0.0f, 0},     {0.8f, 40, 1.0f, 0.0f, 0},
        {1.0f, 0, 0.9f, 0.0f, 0}, {1.0f, 0, 1.0f, 0.05f, 0},    {0.7f, 1000, 0.95f, 0.01f, 0},
        {1.0f, 1, 1.0f, 0.0f, 0}, {1.2f, 10000, 0.9f, 0.0f, 0},
    };

    std::string op() const override { return "sample_rows"; }
    std::string vars() const override {
        if (p.mixed) return fmt::format("rows={},V={},dist={},mixed", p.n_rows, p.V, dist_name(p.dist));
        return fmt::format("rows={},V={},dist={},T={},k={},p={},minp={}", p.n_rows, p.V, dist_name(p.dist),
                           p.temperature, p.top_k, p.top_p, p.min_p);
    }
    static float gauss(Rng& rng) {  // Box–Muller
        const double u1 = (double(rng.next() >> 11) + 0.5) * 0x1.0p-53,
                     u2 = double(rng.next() >> 11) * 0x1.0p-53;
        return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
    void lm_row(Rng& rng, float* x) const {
        for (int64_t i = 0; i < p.V; ++i) x[i] = 2.5f * gauss(rng);
        for (int j = 0; j < 16; ++j) x[rng.below(p.V)] = rng.uniform(10.0f, 18.0f);
    }
    void edge_row(Rng& rng, int64_t r, float* x) const {
        const float inf = INFINITY;
        for (int64_t i = 0; i < p.V; ++i) {
            switch (r % 6) {
                case 0:
                    x[i] = -inf;
                    break;
                case 1:
                    x[i] = -inf;
                    break;
                case 2:
                    x[i] = rng.uniform(-3.0f, 3.0f);
                    break;
                case 3:
                    x[i] = 0.5f;
                    break;
                case 4: {
                    const int64_t c = rng.below(4);
                    x[i] = c < 2 ? -0.0f : (c == 2 ? 0.0f : -inf);
                    break;
                }
                default:
                    x[i] = rng.below(2) ? -inf : rng.uniform(-2.0f, 2.0f);
                    break;
            }
        }
        if (r % 6 == 1) x[rng.below(p.V)] = rng.uniform(-50.0f, 50.0f);
        if (r % 6 == 2) x[rng.below(p.V)] = inf, x[rng.below(p.V)] = inf;
    }
    void init(Rng& rng) override {
        logits.resize(size_t(p.n_rows * p.V));
        sps.resize(size_t(p.n_rows));
        positions.resize(size_t(p.n_rows));
        for (int64_t r = 0; r < p.n_rows; ++r) {
            float* x = logits.data() + r * p.V;
            switch (p.dist) {
                case Dist::uniform:
                    for (int64_t i = 0; i < p.V; ++i) x[i] = rng.uniform(-4.0f, 4.0f);
                    break;
                case Dist::lm:
                    lm_row(rng, x);
                    break;
                case Dist::gauss:
                    for (int64_t i = 0; i < p.V; ++i) x[i] = 3.0f * gauss(rng);
                    break;
                case Dist::grid:
                    lm_row(rng, x);
                    for (int64_t i = 0; i < p.V; ++i) {
                        x[i] = 0.25f * std::round(4.0f * x[i]);
                        if (x[i] == 0.0f && rng.below(2)) x[i] = -0.0f;
                        if (rng.below(20) == 0) x[i] = -INFINITY;
                    }
                    break;
                case Dist::edge:
                    edge_row(rng, r, x);
                    break;
            }
            sps[r] = p.mixed ? kMixed[r % int64_t(std::size(kMixed))]
                             : SampleParams{p.temperature, p.top_k, p.top_p, p.min_p, 0};
            sps[r].seed = rng.next();
            positions[r] = rng.below(1 << 20);
        }
    }
    std::vector<OutSpec> outputs() const override { return {{"token", OutKind::exact_i32, p.n_rows}}; }
    int32_t host_token(int64_t r) const {
        return cpu::sample_row(logits.data() + r * p.V, p.V, sps[r], positions[r]);
    }
    void run_cpu(const Outs& o) override {
        for (int64_t r = 0; r < p.n_rows; ++r) o.i32(0)[r] = host_token(r);
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        DSV4_TRY(cuda::sample_rows(dev.up(logits), p.n_rows, p.V, dev.up(sps), dev.up(positions), o.i32(0),
                                   dev.stream));
        // the runtime's fallback: rows over the GPU's candidate cap are sampled on the host
        std::vector<int32_t> tok(size_t(p.n_rows));
        if (cudaMemcpy(tok.data(), o.i32(0), tok.size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
            return error("sample_rows: cudaMemcpy D2H failed: {}", cudaGetErrorString(cudaGetLastError()));
        int64_t n_back = 0;
        for (int64_t r = 0; r < p.n_rows; ++r)
            if (tok[r] == cuda::kSampleFallback) {
                if (p.fallback == 0)
                    return error("sample_rows: row {} came back to the host (more than {} top-p candidates)",
                                 r, cuda::kSampleMaxCandidates);
                tok[r] = host_token(r);
                n_back++;
            }
        if (p.fallback == 2 && n_back == 0) return error("sample_rows: no row came back to the host");
        if (cudaMemcpy(o.i32(0), tok.data(), tok.size() * 4, cudaMemcpyHostToDevice) != cudaSuccess)
            return error("sample_rows: cudaMemcpy H2D failed");
        return Status::ok();
    }
#endif
};

constexpr int64_t kV = 129280;  // DSV4's vocabulary
using D = Dist;

// V = 1000 and smaller
DSV4_OP_CASES(SampleCase, {4, 1000, D::uniform, 0.0f, 0, 1.0f, 0.0f}, {4, 1000, D::grid, 0.0f, 0, 1.0f, 0.0f},
              {4, 1000, D::uniform, 1.0f, 0, 1.0f, 0.0f}, {3, 1000, D::grid, 0.6f, 1000, 1.0f, 0.0f},
              {4, 1000, D::uniform, 0.7f, 1, 1.0f, 0.0f}, {4, 1000, D::uniform, 1.0f, 40, 1.0f, 0.0f},
              {4, 1000, D::grid, 1.0f, 40, 1.0f, 0.0f}, {3, 1000, D::grid, 1.0f, 999, 1.0f, 0.0f},
              {4, 1000, D::uniform, 1.0f, 0, 0.5f, 0.0f}, {4, 1000, D::uniform, 1.0f, 0, 0.9f, 0.0f},
              {4, 1000, D::uniform, 1.3f, 0, 0.99f, 0.0f}, {4, 1000, D::grid, 1.0f, 0, 0.9f, 0.0f},
              {4, 1000, D::uniform, 1.0f, 0, 1.0f, 0.1f}, {4, 1000, D::grid, 0.8f, 0, 1.0f, 0.05f},
              {4, 1000, D::uniform, 1.0f, 40, 0.9f, 0.05f}, {4, 1000, D::grid, 1.0f, 100, 0.95f, 0.02f},
              {4, 1000, D::uniform, 0.5f, 200, 1.0f, 0.2f}, {2, 1000, D::uniform, 1.0f, 0, 1.0f, 1.5f},
              {2, 1000, D::uniform, 1.0f, 0, 1e-6f, 0.0f}, {2, 1000, D::uniform, 1e-5f, 0, 0.8f, 0.0f},
              {3, 1, D::uniform, 1.0f, 0, 0.9f, 0.0f}, {3, 2, D::uniform, 1.0f, 1, 0.5f, 0.5f},
              {5, 7, D::grid, 1.0f, 3, 0.9f, 0.1f}, {16, 1000, D::lm, 0.0f, 0, 1.0f, 0.0f, 0, true});
// rows with −inf, +inf, ±0 and all-equal values (V = 1000: every candidate set fits)
DSV4_OP_CASES(SampleCase, {12, 1000, D::edge, 0.0f, 0, 1.0f, 0.0f}, {12, 1000, D::edge, 1.0f, 0, 1.0f, 0.0f},
              {12, 1000, D::edge, 1.0f, 5, 1.0f, 0.0f}, {12, 1000, D::edge, 1.0f, 0, 0.9f, 0.0f},
              {12, 1000, D::edge, 1.0f, 0, 1.0f, 0.1f}, {12, 1000, D::edge, 1.0f, 3, 0.8f, 0.1f});
// V = 129280: greedy, temperature, top-k (sorted and counted), top-p (all ids kept, bounded by mass or by
// min-p, near the cap), min-p, combinations, ties, per-row parameters, and rows that must come back
DSV4_OP_CASES(SampleCase, {2, kV, D::lm, 0.0f, 0, 1.0f, 0.0f}, {2, kV, D::grid, 0.0f, 0, 1.0f, 0.0f},
              {2, kV, D::lm, 1.0f, 0, 1.0f, 0.0f}, {2, kV, D::lm, 1.0f, 1, 1.0f, 0.0f},
              {2, kV, D::lm, 1.0f, 40, 1.0f, 0.0f}, {2, kV, D::gauss, 1.0f, 1000, 1.0f, 0.0f},
              {2, kV, D::grid, 1.0f, 1000, 1.0f, 0.0f}, {2, kV, D::gauss, 1.0f, 10000, 1.0f, 0.0f},
              {2, kV, D::lm, 1.0f, 0, 0.5f, 0.0f}, {2, kV, D::lm, 1.0f, 0, 0.9f, 0.0f},
              {2, kV, D::lm, 1.0f, 0, 0.99f, 0.0f}, {2, kV, D::lm, 1.3f, 0, 0.9f, 0.0f},
              {2, kV, D::gauss, 1.0f, 0, 0.5f, 0.0f}, {2, kV, D::gauss, 1.0f, 0, 0.9f, 0.0f},
              {2, kV, D::grid, 1.0f, 0, 0.9f, 0.0f}, {2, kV, D::gauss, 1.0f, 0, 1.0f, 0.05f},
              {2, kV, D::gauss, 1.0f, 0, 1.0f, 0.001f}, {2, kV, D::uniform, 1.0f, 0, 1.0f, 0.3f},
              {2, kV, D::grid, 0.9f, 0, 1.0f, 0.02f}, {2, kV, D::gauss, 1.0f, 1000, 0.9f, 0.0f},
              {2, kV, D::gauss, 0.8f, 1000, 0.9f, 0.02f}, {2, kV, D::gauss, 1.0f, 10000, 0.9f, 0.0f},
              {2, kV, D::grid, 1.0f, 5000, 0.8f, 0.0f}, {2, kV, D::gauss, 1.0f, 0, 0.5f, 0.001f},
              {2, kV, D::gauss, 1.0f, 0, 0.95f, 0.001f}, {2, kV, D::gauss, 1.0f, 20000, 1.0f, 0.001f},
              {8, kV, D::lm, 0.0f, 0, 1.0f, 0.0f, 0, true}, {2, kV, D::gauss, 1.0f, 0, 0.99f, 0.0f, 2},
              {2, kV, D::uniform, 1.0f, 0, 0.9f, 0.0f, 2}, {6, kV, D::edge, 0.0f, 0, 1.0f, 0.0f},
              {6, kV, D::edge, 1.0f, 0, 1.0f, 0.0f}, {6, kV, D::edge, 1.0f, 50, 1.0f, 0.0f},
              {6, kV, D::edge, 1.0f, 0, 1.0f, 0.5f}, {6, kV, D::edge, 1.0f, 0, 0.9f, 0.0f, 1});

}  // namespace
}  // namespace dsv4::testops
