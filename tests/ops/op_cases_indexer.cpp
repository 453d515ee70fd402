// test-ops cases of cuda::indexer_scores_gemm (the prefill path of the indexer scores): against
// cpu::indexer_scores, with a row stride wider than the computed keys and queries that see none, some
// or all keys.
#include <fmt/format.h>

#include <cmath>

#include "ops/cpu/ops_cpu.h"
#include "op_harness.h"

namespace dsv4::testops {
namespace {

struct IndexerGemmCase : OpCase {
    struct P {
        int64_t n, Hi, di, n_keys, ld;
    } p;
    std::vector<float> qi, w, keys;
    std::vector<int64_t> n_avail;
    std::string op() const override { return "indexer_scores_gemm"; }
    std::string vars() const override {
        return fmt::format("n={},Hi={},di={},keys={},ld={}", p.n, p.Hi, p.di, p.n_keys, p.ld);
    }
    void init(Rng& rng) override {
        qi = rng.uniform_vec(p.n * p.Hi * p.di, -1.0f, 1.0f);
        w = rng.uniform_vec(p.n * p.Hi, -1.0f, 1.0f);
        keys = rng.uniform_vec(p.n_keys * p.di, -1.0f, 1.0f);
        n_avail.resize(size_t(p.n));
        for (int64_t t = 0; t < p.n; ++t)  // none, all, more than computed, then random
            n_avail[t] = t == 0 ? 0 : t == 1 ? p.n_keys : t == 2 ? p.ld : rng.below(p.n_keys + 1);
    }
    std::vector<OutSpec> outputs() const override { return {{"scores", OutKind::f32, p.n * p.ld}}; }
    void run_cpu(const Outs& o) override {
        std::vector<float> sc(size_t(p.n * p.n_keys));
        cpu::indexer_scores(qi.data(), w.data(), p.n, p.Hi, p.di, keys.data(), p.n_keys, n_avail.data(),
                            sc.data());
        for (int64_t t = 0; t < p.n; ++t)
            for (int64_t s = 0; s < p.ld; ++s)
                o.f(0)[t * p.ld + s] = s < p.n_keys ? sc[t * p.n_keys + s] : -INFINITY;
    }
    double max_err() const override { return 1e-4; }  // as indexer_scores: cancellation across heads
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        auto* work = static_cast<float*>(
            dev.alloc(size_t(cuda::indexer_gemm_work_floats(p.n, p.Hi, p.n_keys)) * sizeof(float)));
        return cuda::indexer_scores_gemm(dev.up(qi), dev.up(w), p.n, p.Hi, p.di, dev.up(keys), p.n_keys,
                                         dev.up(n_avail), o.f(0), p.ld, work, dev.stream);
    }
#endif
};
DSV4_OP_CASES(IndexerGemmCase, {3, 1, 1, 1, 1}, {5, 16, 128, 37, 40}, {70, 64, 128, 300, 300},
              {4, 3, 7, 0, 5});

}  // namespace
}  // namespace dsv4::testops
