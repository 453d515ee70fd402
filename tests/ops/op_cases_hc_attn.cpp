// test-ops cases of the split-KV path of cuda::sink_attention against cpu::sink_attention (decode shapes
// of V4-Flash: H 64, d 512, 640 keys over two pools, and odd ones), of the fused cuda::hc_post_pre and
// hc_pre + RMSNorm against compositions of the cpu ops, and the workspace checks shared with the K-split
// hc_pre / hc_head cases of op_cases.cpp. The CUDA run poisons the workspace (NaN) behind a
// guard band, runs the launcher twice and requires bitwise-equal outputs (determinism).
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>

#include "op_harness.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::testops {
#if DSV4_HAVE_CUDA
namespace {
constexpr int64_t kWorkGuard = 1024;  // floats after the workspace that no kernel may touch

}  // namespace

// A workspace of `floats` floats, poisoned with NaN (0xffffffff), then the guard band.
float* poisoned_work(Dev& dev, int64_t floats) {
    const size_t bytes = size_t(floats + kWorkGuard) * sizeof(float);
    void* p = dev.alloc(bytes);
    if (cudaMemset(p, 0xff, bytes) != cudaSuccess) throw std::runtime_error("cudaMemset failed");
    return static_cast<float*>(p);
}

static Status check_guard(const float* work, int64_t floats) {
    std::vector<uint32_t> g(static_cast<size_t>(kWorkGuard));
    if (cudaMemcpy(g.data(), work + floats, g.size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        return error("cudaMemcpy of the workspace guard failed");
    for (size_t i = 0; i < g.size(); ++i)
        if (g[i] != 0xffffffffu)
            return error("workspace written out of bounds at float {} (size {})", floats + int64_t(i),
                         floats);
    return Status::ok();
}

// Runs `launch` twice (outputs re-poisoned in between); the two results must be bitwise equal.
Status run_twice(Dev& dev, const Outs& o, const std::vector<OutSpec>& specs, const float* work,
                 int64_t work_floats, const std::function<Status()>& launch) {
    std::vector<std::vector<uint32_t>> first(specs.size()), second(specs.size());
    for (int pass = 0; pass < 2; ++pass) {
        if (pass == 1)
            for (size_t i = 0; i < specs.size(); ++i)
                if (cudaMemset(o.p[i], 0xff, size_t(specs[i].count) * 4) != cudaSuccess)
                    return error("cudaMemset failed");
        if (Status st = launch(); !st.is_ok()) return st;
        if (cudaStreamSynchronize(dev.stream) != cudaSuccess)
            return error("kernel failed: {}", cudaGetErrorString(cudaGetLastError()));
        auto& v = pass == 0 ? first : second;
        for (size_t i = 0; i < specs.size(); ++i) {
            v[i].resize(size_t(specs[i].count));
            if (cudaMemcpy(v[i].data(), o.p[i], v[i].size() * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
                return error("cudaMemcpy failed");
        }
    }
    for (size_t i = 0; i < specs.size(); ++i)
        for (size_t e = 0; e < first[i].size(); ++e)
            if (first[i][e] != second[i][e])
                return error("output '{}' differs between two runs at [{}]: {:#x} vs {:#x}", specs[i].name, e,
                             first[i][e], second[i][e]);
    return work ? check_guard(work, work_floats) : Status::ok();
}
#endif

namespace {

using cpu_vec = std::vector<float>;

// ------------------------------------------------------------------------------ sink_attention (split-KV)
// Pool rows [0, pool) are kv (the window pool), [pool, pool + pool2) kv2 (compressed entries, passed as
// the second segment with split = pool; pool2 = 0: one pool). The first min(keys, pool) slots of a query
// pick window rows, the rest compressed ones; ~1/5 of the slots are −1. Query 1 has no keys at all,
// query 2 no holes. misalign: kv2 starts 4 bytes past a 16 B boundary (the 4-byte copy path). rope: the
// output's inverse RoPE on its last `rope` dims (pairs from an offset, positions 7, 1007, ...) against
// cpu::rope after cpu::sink_attention (fused into the merge kernel, or a rope launch after).
struct SinkAttentionSplitCase : OpCase {
    struct P {
        int64_t n, H, d, pool, pool2, max_keys;
        bool misalign;
        int64_t rope = 0;
    } p;
    cpu_vec q, kv, sink, inv_freq;  // kv: both pools, [pool + pool2, d]
    std::vector<int64_t> pos;
    std::vector<int32_t> idx;
    std::string op() const override { return "sink_attention"; }
    std::string vars() const override {
        return fmt::format("n={},H={},d={},pool={}+{},keys={},path=split{}{}", p.n, p.H, p.d, p.pool, p.pool2,
                           p.max_keys, p.misalign ? ",misaligned" : "",
                           p.rope ? fmt::format(",rope={}", p.rope) : "");
    }
    void init(Rng& rng) override {
        q = rng.uniform_vec(p.n * p.H * p.d, -1.0f, 1.0f);
        kv = rng.uniform_vec((p.pool + p.pool2) * p.d, -1.0f, 1.0f);
        sink = rng.uniform_vec(p.H, -1.0f, 1.0f);
        inv_freq = rng.uniform_vec(std::max<int64_t>(p.rope / 2, 1), 0.0001f, 1.0f);
        for (int64_t t = 0; t < p.n; ++t) pos.push_back(7 + 1000 * t);
        idx.assign(size_t(p.n * p.max_keys), -1);
        for (int64_t t = 0; t < p.n; ++t) {
            if (t == 1) continue;
            for (int64_t j = 0; j < p.max_keys; ++j) {
                if (t != 2 && rng.below(5) == 0) continue;
                const bool window = j < p.pool || p.pool2 == 0;
                idx[t * p.max_keys + j] = int32_t(window ? rng.below(p.pool) : p.pool + rng.below(p.pool2));
            }
        }
    }
    std::vector<OutSpec> outputs() const override { return {{"out", OutKind::f32, p.n * p.H * p.d}}; }
    void run_cpu(const Outs& o) override {
        HostWeight s = f32_weight(sink, 1, p.H);
        cpu::sink_attention(q.data(), p.n, p.H, p.d, kv.data(), idx.data(), p.max_keys, s.ref,
                            1.0f / std::sqrt(float(p.d)), o.f(0));
        if (p.rope)
            cpu::rope(o.f(0), p.n, p.H, p.d, p.d - p.rope, p.rope / 2, pos.data(), inv_freq.data(), true);
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const float* dkv = dev.up(cpu_vec(kv.begin(), kv.begin() + p.pool * p.d));
        const float* dkv2 = nullptr;
        int64_t split = INT64_MAX;
        if (p.pool2 > 0) {
            cpu_vec second(kv.begin() + p.pool * p.d, kv.end());
            if (p.misalign) second.insert(second.begin(), 0.0f);
            dkv2 = dev.up(second) + (p.misalign ? 1 : 0);
            split = p.pool;
        }
        const int64_t wf = cuda::sink_attention_work_floats(p.n, p.H, p.d, p.max_keys);
        float* work = poisoned_work(dev, wf);
        const float *dq = dev.up(q), *dsink = dev.up(sink);
        const int32_t* didx = dev.up(idx);
        cuda::OutRope ro;
        if (p.rope)
            ro.off = p.d - p.rope, ro.n_pairs = p.rope / 2, ro.pos = dev.up(pos),
            ro.inv_freq = dev.up(inv_freq);
        return run_twice(dev, o, outputs(), work, wf, [&] {
            return cuda::sink_attention(dq, p.n, p.H, p.d, dkv, dkv2, split, didx, p.max_keys, dsink,
                                        1.0f / std::sqrt(float(p.d)), o.f(0), dev.stream, work,
                                        p.rope ? &ro : nullptr);
        });
    }
#endif
};
// (rope: the fused de-rotation at decode shapes, odd shapes, an odd offset and one split: a rope launch)
// decode CSA (window 128 + top-k 512 over two pools), 3 queries, an SWA layer (window only), odd heads
// and widths with keys not a multiple of the 16-key tile (aligned and misaligned second pool), several
// tiles per split (2100 and 400 keys), two head groups with a partial one (H 17), one split (n·groups ≥ 264:
// no merge), one key, no keys, and widths the split kernel leaves to phase A (d % 4 ≠ 0, d > 512)
DSV4_OP_CASES(SinkAttentionSplitCase, {1, 64, 512, 128, 700, 640, false}, {3, 64, 512, 128, 300, 640, false},
              {1, 64, 512, 128, 0, 128, false}, {2, 5, 72, 30, 50, 45, false}, {4, 5, 72, 30, 50, 45, true},
              {1, 16, 512, 128, 3000, 2100, false}, {20, 5, 72, 30, 500, 400, false},
              {3, 17, 12, 5, 5, 33, true}, {17, 8, 64, 40, 40, 100, false}, {80, 64, 64, 100, 60, 96, false},
              {2, 3, 8, 1, 0, 1, false}, {2, 64, 512, 10, 5, 0, false}, {2, 4, 70, 20, 10, 12, false},
              {1, 2, 1024, 20, 10, 40, false}, {1, 64, 512, 128, 700, 640, false, 64},
              {3, 64, 512, 128, 300, 640, false, 64}, {2, 5, 72, 30, 50, 45, false, 6},
              {17, 8, 64, 40, 40, 100, false, 10}, {2, 4, 70, 20, 10, 12, false, 8},
              {2, 5, 72, 30, 50, 45, false, 7}, {80, 64, 64, 100, 60, 96, false, 16});

// ------------------------------------------------------------------------- hc_post_pre, hc_pre + norm
// The fused site boundary against the composition of the CPU ops: Xout = cpu::hc_post(X, F, post, comb),
// (y, post', comb') = cpu::hc_pre(Xout) of the next site, y = cpu::rms_norm(y, w). alias: post'/comb' are
// written over post/comb (as the forward does; the launch re-uploads them before each run). defer: the
// kernel leaves the comb logits and cuda::hc_sinkhorn projects them (the forward's decode branches).
struct HcPostPreCase : OpCase {
    struct P {
        int64_t n, hc, D;
        bool alias, defer = false;
    } p;
    cpu_vec X, F, post, comb, fn, base, scale, w;
    std::string op() const override { return "hc_post_pre"; }
    std::string vars() const override {
        return fmt::format("n={},hc={},D={}{}{}", p.n, p.hc, p.D, p.alias ? ",alias" : "",
                           p.defer ? ",defer" : "");
    }
    void init(Rng& rng) override {
        const int64_t M = (2 + p.hc) * p.hc;
        X = rng.uniform_vec(p.n * p.hc * p.D, -1.0f, 1.0f);
        F = rng.uniform_vec(p.n * p.D, -1.0f, 1.0f);
        post = rng.uniform_vec(p.n * p.hc, 0.0f, 2.0f);
        comb = rng.uniform_vec(p.n * p.hc * p.hc, 0.0f, 1.0f);
        fn = rng.uniform_vec(M * p.hc * p.D, -0.05f, 0.05f);
        base = rng.uniform_vec(M, -1.0f, 1.0f);
        scale = rng.uniform_vec(3, 0.5f, 2.0f);
        w = rng.uniform_vec(p.D, 0.5f, 1.5f);
    }
    std::vector<OutSpec> outputs() const override {
        return {{"Xout", OutKind::f32, p.n * p.hc * p.D},
                {"y", OutKind::f32, p.n * p.D},
                {"post", OutKind::f32, p.n * p.hc},
                {"comb", OutKind::f32, p.n * p.hc * p.hc}};
    }
    void run_cpu(const Outs& o) override {
        const int64_t M = (2 + p.hc) * p.hc;
        HostWeight f = f32_weight(fn, M, p.hc * p.D), b = f32_weight(base, 1, M), s = f32_weight(scale, 1, 3),
                   nw = f32_weight(w, 1, p.D);
        cpu::hc_post(X.data(), F.data(), post.data(), comb.data(), p.n, p.hc, p.D, o.f(0));
        cpu::hc_pre(o.f(0), p.n, p.hc, p.D, f.ref, b.ref, s.ref, 20, 1e-6, 1e-6, o.f(1), o.f(2), o.f(3));
        cpu::rms_norm(o.f(1), p.n, p.D, &nw.ref, 1e-6, o.f(1));
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const int64_t wf = cuda::hc_work_floats(p.n, p.hc, p.D);
        float* work = poisoned_work(dev, wf);
        const float *dX = dev.up(X), *dF = dev.up(F), *dpost = dev.up(post), *dcomb = dev.up(comb);
        const float *dfn = dev.up(fn), *db = dev.up(base), *ds = dev.up(scale), *dw = dev.up(w);
        return run_twice(dev, o, outputs(), work, wf, [&]() -> Status {
            const float *pin = dpost, *cin = dcomb;
            if (p.alias) {
                if (cudaMemcpyAsync(o.f(2), dpost, size_t(p.n * p.hc) * 4, cudaMemcpyDeviceToDevice,
                                    dev.stream) != cudaSuccess ||
                    cudaMemcpyAsync(o.f(3), dcomb, size_t(p.n * p.hc * p.hc) * 4, cudaMemcpyDeviceToDevice,
                                    dev.stream) != cudaSuccess)
                    return error("cudaMemcpyAsync failed");
                pin = o.f(2), cin = o.f(3);
            }
            DSV4_TRY(cuda::hc_post_pre(dX, dF, pin, cin, p.n, p.hc, p.D, o.f(0), dfn, db, ds, 20, 1e-6, 1e-6,
                                       dw, o.f(1), o.f(2), o.f(3), work, dev.stream, p.defer));
            if (p.defer) return cuda::hc_sinkhorn(o.f(3), p.n, p.hc, 20, 1e-6, dev.stream);
            return Status::ok();
        });
    }
#endif
};
// decode at the real width (n 1 and 5), n 300 (38 tiles of 8, 7 slices, one arrival counter per tile),
// hc 2 with D not a multiple of the 32-column pass (1000, 333: two tiles, the second of one token), D not a
// multiple of 4 (scalar y path), 2 tokens (y warps beside the Sinkhorn warps), hc 8 (tiles of 4, 64
// Sinkhorn elements on 32 lanes), hc 3, hc 1 at D 1, D < 32, one slice per tile (n 2200: ≥ 264 tiles);
// deferred Sinkhorn on the cooperative (n 1, 3) and the last-CTA paths, hc 8 (two elements per lane); the
// one-token kernel at hc 8 (D 1024: at D 4096 the 8×8 Sinkhorn of random logits ~±16 amplifies the f32
// reordering of the 32768-term dots to ~1.1e-5 on comb, over the 1e-5 budget) and with a slice count not a
// multiple of 4 (D 200: 7 slices, scalar reduction)
DSV4_OP_CASES(HcPostPreCase, {1, 4, 4096, true}, {5, 4, 4096, false}, {300, 4, 4096, true},
              {3, 2, 1000, false}, {9, 2, 333, true}, {7, 4, 4095, false}, {2, 4, 100, false},
              {5, 8, 129, true}, {3, 3, 50, false}, {1, 1, 1, false}, {1, 4, 7, true}, {2200, 4, 40, false},
              {1, 4, 4096, true, true}, {3, 4, 4096, false, true}, {300, 4, 4096, true, true},
              {5, 8, 129, true, true}, {2, 8, 4096, false, true}, {40, 8, 4096, false, true},
              {1, 8, 1024, false, true}, {1, 3, 200, true}, {1, 4, 200, false, true});

// hc_pre with the sublayer RMSNorm folded in (norm_w): the one-launch split path (split) or phase A +
// cuda::rms_norm (no workspace), against cpu::hc_pre then cpu::rms_norm.
struct HcPreNormCase : OpCase {
    struct P {
        int64_t n, hc, D;
        bool split, defer = false;  // defer: as HcPostPreCase
    } p;
    cpu_vec X, fn, base, scale, w;
    std::string op() const override { return "hc_pre"; }
    std::string vars() const override {
        return fmt::format("n={},hc={},D={},norm{}{}", p.n, p.hc, p.D, p.split ? ",path=split" : "",
                           p.defer ? ",defer" : "");
    }
    void init(Rng& rng) override {
        const int64_t M = (2 + p.hc) * p.hc;
        X = rng.uniform_vec(p.n * p.hc * p.D, -1.0f, 1.0f);
        fn = rng.uniform_vec(M * p.hc * p.D, -0.05f, 0.05f);
        base = rng.uniform_vec(M, -1.0f, 1.0f);
        scale = rng.uniform_vec(3, 0.5f, 2.0f);
        w = rng.uniform_vec(p.D, 0.5f, 1.5f);
    }
    std::vector<OutSpec> outputs() const override {
        return {{"y", OutKind::f32, p.n * p.D},
                {"post", OutKind::f32, p.n * p.hc},
                {"comb", OutKind::f32, p.n * p.hc * p.hc}};
    }
    void run_cpu(const Outs& o) override {
        const int64_t M = (2 + p.hc) * p.hc;
        HostWeight f = f32_weight(fn, M, p.hc * p.D), b = f32_weight(base, 1, M), s = f32_weight(scale, 1, 3),
                   nw = f32_weight(w, 1, p.D);
        cpu::hc_pre(X.data(), p.n, p.hc, p.D, f.ref, b.ref, s.ref, 20, 1e-6, 1e-6, o.f(0), o.f(1), o.f(2));
        cpu::rms_norm(o.f(0), p.n, p.D, &nw.ref, 1e-6, o.f(0));
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const int64_t wf = p.split ? cuda::hc_work_floats(p.n, p.hc, p.D) : 0;
        float* work = p.split ? poisoned_work(dev, wf) : nullptr;
        const float *dX = dev.up(X), *dfn = dev.up(fn), *db = dev.up(base), *ds = dev.up(scale),
                    *dw = dev.up(w);
        return run_twice(dev, o, outputs(), work, wf, [&]() -> Status {
            DSV4_TRY(cuda::hc_pre(dX, p.n, p.hc, p.D, dfn, db, ds, 20, 1e-6, 1e-6, o.f(0), o.f(1), o.f(2),
                                  dev.stream, work, dw, p.defer));
            if (p.defer) return cuda::hc_sinkhorn(o.f(2), p.n, p.hc, 20, 1e-6, dev.stream);
            return Status::ok();
        });
    }
#endif
};
// layer 0's first site at decode (n 1, 5) and a batch of 300, odd n / D / hc (the scalar y path at D 1001),
// and phase A + rms_norm; deferred Sinkhorn at decode and at 300 tokens
DSV4_OP_CASES(HcPreNormCase, {1, 4, 4096, true}, {5, 4, 4096, true}, {300, 4, 4096, true}, {3, 2, 1001, true},
              {4, 8, 96, true}, {7, 4, 129, false}, {1, 4, 4096, true, true}, {300, 4, 4096, true, true});

}  // namespace
}  // namespace dsv4::testops
