// The op cases of test-ops: one struct per op of ops/cpu/ops_cpu.h, each with odd shapes (length-1,
// not a multiple of any tile, real DSV4 widths), input ranges like the real op's, the naive fp64
// reference where cheap, and its error budget (fp32 ops: 1e-5 relative).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "op_harness.h"
#include "ops/cpu/ops_cpu.h"

namespace dsv4::testops {

namespace {

using cpu_vec = std::vector<float>;

#if DSV4_HAVE_CUDA
#define DSV4_CUDA_RUN(body)                             \
    Status run_cuda(Dev& dev, const Outs& o) override { \
        body                                            \
    }
#else
#define DSV4_CUDA_RUN(body)
#endif

// ---------------------------------------------------------------------------------------------- linear
struct LinearCase : OpCase {
    struct P {
        DType dt;
        int64_t n, N, K;
    } p;
    HostWeight w;
    cpu_vec x;
    std::string op() const override { return "linear"; }
    std::string vars() const override {
        return fmt::format("type={},n={},N={},K={}", dtype_name(p.dt), p.n, p.N, p.K);
    }
    void init(Rng& rng) override {
        w = random_weight(rng, p.dt, p.N, p.K);
        x = rng.uniform_vec(p.n * p.K, -1.0f, 1.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"y", OutKind::f32, p.n * p.N}}; }
    void run_cpu(const Outs& o) override { cpu::linear(x.data(), p.n, w.ref, o.f(0)); }
    bool run_naive(const Outs& o) override {
        const cpu_vec W = w.dequant();
        for (int64_t i = 0; i < p.n; ++i)
            for (int64_t r = 0; r < p.N; ++r) {
                double acc = 0.0;
                for (int64_t k = 0; k < p.K; ++k) acc += double(x[i * p.K + k]) * W[r * p.K + k];
                o.f(0)[i * p.N + r] = float(acc);
            }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::linear(dev.up(x), p.n, p.K, dev.weight(w), o.f(0), p.N, dev.stream);)
};
DSV4_OP_CASES(LinearCase, {DType::f32, 1, 7, 33}, {DType::f32, 5, 129, 256}, {DType::bf16, 1, 1, 1},
              {DType::bf16, 3, 257, 129}, {DType::bf16, 9, 64, 1024}, {DType::f16, 2, 33, 72},
              {DType::f8_e4m3, 1, 130, 260}, {DType::f8_e4m3, 4, 256, 512}, {DType::f8_e4m3, 13, 300, 1024},
              {DType::fp4_e2m1, 1, 33, 64}, {DType::fp4_e2m1, 6, 256, 512}, {DType::fp4_e2m1, 11, 129, 1056},
              {DType::fp4_e2m1, 1, 17, 4096});
// Flash decode shapes of the 16-byte GEMV kernel (every row-group width G = 32..256, 1/2/4/8-token passes,
// rows not a multiple of a CTA's): wq_a, wq_b, wo_b, an expert's w1/w2, the bf16 compressor/head width.
DSV4_OP_CASES(LinearCase, {DType::f8_e4m3, 1, 1024, 4096}, {DType::f8_e4m3, 2, 4100, 1024},
              {DType::f8_e4m3, 1, 300, 8192}, {DType::fp4_e2m1, 1, 2048, 4096},
              {DType::fp4_e2m1, 3, 4096, 2048}, {DType::fp4_e2m1, 8, 250, 1024}, {DType::bf16, 1, 1030, 4096},
              {DType::bf16, 7, 77, 8192}, {DType::f32, 4, 65, 2048}, {DType::f8_e4m3, 12, 130, 512},
              {DType::f16, 1, 40, 4096});
// One token with x rows longer than the GEMV's shared-memory copy (kGemvSxMaxBytes: x read from global).
DSV4_OP_CASES(LinearCase, {DType::f8_e4m3, 1, 40, 32768}, {DType::fp4_e2m1, 1, 24, 25600});

// A row view starting inside a scale block (grouped wo_a: 64-row groups of 128-row FP8 blocks).
struct LinearRowViewCase : LinearCase {
    struct P {
        DType dt;
        int64_t n, r0, N, K;
    } p;
    HostWeight full;
    std::string op() const override { return "linear"; }
    std::string vars() const override {
        return fmt::format("type={},n={},rows={}+{},K={}", dtype_name(p.dt), p.n, p.r0, p.N, p.K);
    }
    void init(Rng& rng) override {
        full = random_weight(rng, p.dt, p.r0 + p.N + 5, p.K);
        LinearCase::p = {p.dt, p.n, p.N, p.K};
        w = full;  // the bytes; the view below points into w's copies
        w.ref = full.ref;
        w.ref.data = w.data.data();
        w.ref.scale = w.scale.empty() ? nullptr : w.scale.data();
        w.ref = w.ref.rows(p.r0, p.N);
        x = rng.uniform_vec(p.n * p.K, -1.0f, 1.0f);
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        WeightRef d = dev.weight(full).rows(p.r0, p.N);
        return cuda::linear(dev.up(x), p.n, p.K, d, o.f(0), p.N, dev.stream);
    }
#endif
};
DSV4_OP_CASES(LinearRowViewCase, {DType::f8_e4m3, 3, 64, 64, 256}, {DType::f8_e4m3, 1, 192, 64, 384},
              {DType::bf16, 2, 7, 9, 64});

// -------------------------------------------------------------------------------------------- rms_norm
struct RmsNormCase : OpCase {
    struct P {
        int64_t rows, d;
        bool weighted;
    } p;
    cpu_vec x, w;
    std::string op() const override { return "rms_norm"; }
    std::string vars() const override {
        return fmt::format("rows={},d={},w={}", p.rows, p.d, int(p.weighted));
    }
    void init(Rng& rng) override {
        x = rng.uniform_vec(p.rows * p.d, -2.0f, 2.0f);
        w = rng.uniform_vec(p.d, 0.5f, 1.5f);
    }
    std::vector<OutSpec> outputs() const override { return {{"out", OutKind::f32, p.rows * p.d}}; }
    void run_cpu(const Outs& o) override {
        HostWeight hw = f32_weight(w, 1, p.d);
        cpu::rms_norm(x.data(), p.rows, p.d, p.weighted ? &hw.ref : nullptr, 1e-6, o.f(0));
    }
    bool run_naive(const Outs& o) override {
        for (int64_t r = 0; r < p.rows; ++r) {
            double ss = 0.0;
            for (int64_t i = 0; i < p.d; ++i) ss += double(x[r * p.d + i]) * x[r * p.d + i];
            const double inv = 1.0 / std::sqrt(ss / double(p.d) + 1e-6);
            for (int64_t i = 0; i < p.d; ++i)
                o.f(0)[r * p.d + i] = float(x[r * p.d + i] * inv * (p.weighted ? w[i] : 1.0));
        }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::rms_norm(dev.up(x), p.rows, p.d, p.weighted ? dev.up(w) : nullptr, 1e-6,
                                        o.f(0), dev.stream);)
};
DSV4_OP_CASES(RmsNormCase, {1, 1, true}, {7, 129, true}, {33, 4096, true}, {64, 512, false}, {3, 8192, true},
              {1, 1024, false}, {2, 16388, true});  // the last: longer than the float4 kernel takes

// ------------------------------------------------------------------------------------------------ rope
struct RopeCase : OpCase {
    struct P {
        int64_t rows, heads, head_stride, off, n_pairs;
        bool inverse;
        int64_t max_pos;
    } p;
    cpu_vec x, inv;
    std::vector<int64_t> pos;
    std::string op() const override { return "rope"; }
    std::string vars() const override {
        return fmt::format("rows={},heads={},hs={},off={},pairs={},inv={},maxpos={}", p.rows, p.heads,
                           p.head_stride, p.off, p.n_pairs, int(p.inverse), p.max_pos);
    }
    void init(Rng& rng) override {
        x = rng.uniform_vec(p.rows * p.heads * p.head_stride, -1.0f, 1.0f);
        inv.resize(size_t(p.n_pairs));
        for (int64_t i = 0; i < p.n_pairs; ++i)
            inv[i] = std::pow(10000.0f, -2.0f * float(i) / float(2 * p.n_pairs));
        pos.resize(size_t(p.rows));
        for (auto& q : pos) q = rng.below(p.max_pos);
    }
    std::vector<OutSpec> outputs() const override { return {{"x", OutKind::f32, int64_t(x.size())}}; }
    void run_cpu(const Outs& o) override {
        std::copy(x.begin(), x.end(), o.f(0));
        cpu::rope(o.f(0), p.rows, p.heads, p.head_stride, p.off, p.n_pairs, pos.data(), inv.data(),
                  p.inverse);
    }
    bool run_naive(const Outs& o) override {
        std::copy(x.begin(), x.end(), o.f(0));
        for (int64_t r = 0; r < p.rows; ++r)
            for (int64_t i = 0; i < p.n_pairs; ++i) {
                const float angle = float(pos[r]) * inv[i];  // the op defines an fp32 angle
                const double c = std::cos(double(angle)),
                             s = (p.inverse ? -1.0 : 1.0) * std::sin(double(angle));
                for (int64_t h = 0; h < p.heads; ++h) {
                    float* q = o.f(0) + (r * p.heads + h) * p.head_stride + p.off + 2 * i;
                    const double x0 = q[0], x1 = q[1];
                    q[0] = float(x0 * c - x1 * s);
                    q[1] = float(x0 * s + x1 * c);
                }
            }
        return true;
    }
    DSV4_CUDA_RUN(float* dx = dev.up(x);
                  DSV4_TRY(cuda::rope(dx, p.rows, p.heads, p.head_stride, p.off, p.n_pairs, dev.up(pos),
                                      dev.up(inv), p.inverse, dev.stream));
                  return cudaMemcpyAsync(o.f(0), dx, x.size() * 4, cudaMemcpyDeviceToDevice, dev.stream) ==
                                 cudaSuccess
                             ? Status::ok()
                             : error("copy failed");)
};
DSV4_OP_CASES(RopeCase, {1, 1, 8, 0, 4, false, 10}, {5, 3, 128, 64, 32, true, 5000},
              {17, 64, 512, 448, 32, false, 1 << 20}, {9, 1, 128, 64, 32, true, 1 << 20});

// ----------------------------------------------------------------------------------- rms_norm_rope
// cuda::rms_norm_rope = cpu::rms_norm then cpu::rope on the rows (tokens × heads, one head per row): the
// attention's q heads (64 × 512, no weight, pairs from 448) and kv head (weighted), a compressor entry,
// and shapes the fused kernel refuses (odd d, off not a multiple of 4: the two-launch fallback).
struct RmsNormRopeCase : OpCase {
    struct P {
        int64_t tokens, heads, d, off, n_pairs;
        bool weighted;
    } p;
    cpu_vec x, w, inv;
    std::vector<int64_t> pos;
    int64_t rows() const { return p.tokens * p.heads; }
    std::string op() const override { return "rms_norm_rope"; }
    std::string vars() const override {
        return fmt::format("tok={},heads={},d={},off={},pairs={},w={}", p.tokens, p.heads, p.d, p.off,
                           p.n_pairs, int(p.weighted));
    }
    void init(Rng& rng) override {
        x = rng.uniform_vec(rows() * p.d, -2.0f, 2.0f);
        w = rng.uniform_vec(p.d, 0.5f, 1.5f);
        inv.resize(size_t(p.n_pairs));
        for (int64_t i = 0; i < p.n_pairs; ++i)
            inv[size_t(i)] = std::pow(10000.0f, -2.0f * float(i) / float(2 * p.n_pairs));
        pos.resize(size_t(p.tokens));
        for (auto& q : pos) q = rng.below(1 << 20);
    }
    std::vector<OutSpec> outputs() const override { return {{"x", OutKind::f32, rows() * p.d}}; }
    void run_cpu(const Outs& o) override {
        HostWeight hw = f32_weight(w, 1, p.d);
        cpu::rms_norm(x.data(), rows(), p.d, p.weighted ? &hw.ref : nullptr, 1e-6, o.f(0));
        cpu::rope(o.f(0), p.tokens, p.heads, p.d, p.off, p.n_pairs, pos.data(), inv.data(), false);
    }
    DSV4_CUDA_RUN(float* dx = dev.up(x);
                  DSV4_TRY(cuda::rms_norm_rope(dx, rows(), p.d, p.weighted ? dev.up(w) : nullptr, 1e-6,
                                               p.heads, p.off, p.n_pairs, dev.up(pos), dev.up(inv),
                                               dev.stream));
                  return cudaMemcpyAsync(o.f(0), dx, x.size() * 4, cudaMemcpyDeviceToDevice, dev.stream) ==
                                 cudaSuccess
                             ? Status::ok()
                             : error("copy failed");)
};
DSV4_OP_CASES(RmsNormRopeCase, {1, 64, 512, 448, 32, false}, {3, 1, 512, 448, 32, true},
              {2, 64, 512, 448, 32, false}, {5, 1, 128, 64, 32, true}, {4, 2, 130, 66, 32, true},
              {2, 3, 136, 70, 33, false}, {1, 1, 8, 0, 4, true});

// ----------------------------------------------------------------------------------------- hc_pre/post
struct HcPreCase : OpCase {  // DeepseekV4HyperConnection, pre-mix
    struct P {
        int64_t n, hc, D;
    } p;
    cpu_vec X, fn, base, scale;
    std::string op() const override { return "hc_pre"; }
    std::string vars() const override { return fmt::format("n={},hc={},D={}", p.n, p.hc, p.D); }
    void init(Rng& rng) override {
        const int64_t M = (2 + p.hc) * p.hc;
        X = rng.uniform_vec(p.n * p.hc * p.D, -1.0f, 1.0f);
        fn = rng.uniform_vec(M * p.hc * p.D, -0.05f, 0.05f);
        base = rng.uniform_vec(M, -1.0f, 1.0f);
        scale = rng.uniform_vec(3, 0.5f, 2.0f);
    }
    std::vector<OutSpec> outputs() const override {
        return {{"y", OutKind::f32, p.n * p.D},
                {"post", OutKind::f32, p.n * p.hc},
                {"comb", OutKind::f32, p.n * p.hc * p.hc}};
    }
    void run_cpu(const Outs& o) override {
        const int64_t M = (2 + p.hc) * p.hc;
        HostWeight f = f32_weight(fn, M, p.hc * p.D), b = f32_weight(base, 1, M), s = f32_weight(scale, 1, 3);
        cpu::hc_pre(X.data(), p.n, p.hc, p.D, f.ref, b.ref, s.ref, 20, 1e-6, 1e-6, o.f(0), o.f(1), o.f(2));
    }
    bool run_naive(const Outs& o) override {
        const int64_t hc = p.hc, D = p.D, M = (2 + hc) * hc, len = hc * D;
        auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
        const double eps = 1e-6;
        for (int64_t t = 0; t < p.n; ++t) {
            const float* Xt = X.data() + t * len;
            double ss = 0.0;
            for (int64_t i = 0; i < len; ++i) ss += double(Xt[i]) * Xt[i];
            const double rho = 1.0 / std::sqrt(ss / double(len) + 1e-6);
            std::vector<double> mu(static_cast<size_t>(M)), pre(static_cast<size_t>(hc)),
                P(static_cast<size_t>(hc * hc));
            for (int64_t m = 0; m < M; ++m) {
                double acc = 0.0;
                for (int64_t i = 0; i < len; ++i) acc += double(fn[m * len + i]) * Xt[i];
                mu[m] = acc * rho;
            }
            for (int64_t j = 0; j < hc; ++j) {
                pre[j] = sig(scale[0] * mu[j] + base[j]) + eps;
                o.f(1)[t * hc + j] = float(2.0 * sig(scale[1] * mu[hc + j] + base[hc + j]));
            }
            for (int64_t j = 0; j < hc; ++j) {
                double mx = -INFINITY, sum = 0.0;
                for (int64_t k = 0; k < hc; ++k)
                    mx = std::max(mx, scale[2] * mu[2 * hc + j * hc + k] + base[2 * hc + j * hc + k]);
                for (int64_t k = 0; k < hc; ++k)
                    sum += (P[j * hc + k] = std::exp(scale[2] * mu[2 * hc + j * hc + k] +
                                                     base[2 * hc + j * hc + k] - mx));
                for (int64_t k = 0; k < hc; ++k) P[j * hc + k] = P[j * hc + k] / sum + eps;
            }
            for (int it = 0; it < 20; ++it) {
                if (it > 0)
                    for (int64_t j = 0; j < hc; ++j) {
                        double s = 0.0;
                        for (int64_t k = 0; k < hc; ++k) s += P[j * hc + k];
                        for (int64_t k = 0; k < hc; ++k) P[j * hc + k] /= s + eps;
                    }
                for (int64_t k = 0; k < hc; ++k) {
                    double s = 0.0;
                    for (int64_t j = 0; j < hc; ++j) s += P[j * hc + k];
                    for (int64_t j = 0; j < hc; ++j) P[j * hc + k] /= s + eps;
                }
            }
            for (int64_t e = 0; e < hc * hc; ++e) o.f(2)[t * hc * hc + e] = float(P[e]);
            for (int64_t d = 0; d < D; ++d) {
                double acc = 0.0;
                for (int64_t j = 0; j < hc; ++j) acc += pre[j] * Xt[j * D + d];
                o.f(0)[t * D + d] = float(acc);
            }
        }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::hc_pre(dev.up(X), p.n, p.hc, p.D, dev.up(fn), dev.up(base), dev.up(scale), 20,
                                      1e-6, 1e-6, o.f(0), o.f(1), o.f(2), dev.stream);)
};
DSV4_OP_CASES(HcPreCase, {1, 4, 1}, {1, 4, 7}, {17, 4, 129}, {5, 4, 4096}, {3, 2, 300});

struct HcPreSplitCase : HcPreCase {  // the K-split path (a workspace), poisoned and run twice
    std::string vars() const override { return HcPreCase::vars() + ",path=split"; }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const int64_t wf = cuda::hc_work_floats(p.n, p.hc, p.D);
        float* work = poisoned_work(dev, wf);
        const float *dX = dev.up(X), *dfn = dev.up(fn), *db = dev.up(base), *ds = dev.up(scale);
        return run_twice(dev, o, outputs(), work, wf, [&] {
            return cuda::hc_pre(dX, p.n, p.hc, p.D, dfn, db, ds, 20, 1e-6, 1e-6, o.f(0), o.f(1), o.f(2),
                                dev.stream, work);
        });
    }
#endif
};
// decode (n 1..3 at the real width), token tiles of 8 with a tail (n 11), one slice per tile with two
// passes (n 2200, hc·D 256), hc 8 (80 mix rows), hc 2/3 at D 1000, D = 1
DSV4_OP_CASES(HcPreSplitCase, {1, 4, 4096}, {2, 4, 4096}, {3, 4, 4096}, {1, 2, 1000}, {3, 3, 1000},
              {11, 4, 300}, {1, 8, 129}, {2200, 4, 64}, {1, 1, 1}, {9, 4, 1});

struct HcPostCase : OpCase {
    struct P {
        int64_t n, hc, D;
    } p;
    cpu_vec X, F, post, comb;
    std::string op() const override { return "hc_post"; }
    std::string vars() const override { return fmt::format("n={},hc={},D={}", p.n, p.hc, p.D); }
    void init(Rng& rng) override {
        X = rng.uniform_vec(p.n * p.hc * p.D, -1.0f, 1.0f);
        F = rng.uniform_vec(p.n * p.D, -1.0f, 1.0f);
        post = rng.uniform_vec(p.n * p.hc, 0.0f, 2.0f);
        comb = rng.uniform_vec(p.n * p.hc * p.hc, 0.0f, 1.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"Xout", OutKind::f32, p.n * p.hc * p.D}}; }
    void run_cpu(const Outs& o) override {
        cpu::hc_post(X.data(), F.data(), post.data(), comb.data(), p.n, p.hc, p.D, o.f(0));
    }
    bool run_naive(const Outs& o) override {
        for (int64_t t = 0; t < p.n; ++t)
            for (int64_t k = 0; k < p.hc; ++k)
                for (int64_t d = 0; d < p.D; ++d) {
                    double acc = double(post[t * p.hc + k]) * F[t * p.D + d];
                    for (int64_t j = 0; j < p.hc; ++j)
                        acc += double(comb[t * p.hc * p.hc + j * p.hc + k]) * X[(t * p.hc + j) * p.D + d];
                    o.f(0)[(t * p.hc + k) * p.D + d] = float(acc);
                }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::hc_post(dev.up(X), dev.up(F), dev.up(post), dev.up(comb), p.n, p.hc, p.D,
                                       o.f(0), dev.stream);)
};
DSV4_OP_CASES(HcPostCase, {1, 4, 1}, {19, 4, 257}, {3, 4, 4096});

struct HcHeadCase : OpCase {
    struct P {
        int64_t n, hc, D;
    } p;
    cpu_vec X, fn, base, scale;
    std::string op() const override { return "hc_head"; }
    std::string vars() const override { return fmt::format("n={},hc={},D={}", p.n, p.hc, p.D); }
    void init(Rng& rng) override {
        X = rng.uniform_vec(p.n * p.hc * p.D, -1.0f, 1.0f);
        fn = rng.uniform_vec(p.hc * p.hc * p.D, -0.05f, 0.05f);
        base = rng.uniform_vec(p.hc, -1.0f, 1.0f);
        scale = rng.uniform_vec(1, 0.5f, 2.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"z", OutKind::f32, p.n * p.D}}; }
    void run_cpu(const Outs& o) override {
        HostWeight f = f32_weight(fn, p.hc, p.hc * p.D), b = f32_weight(base, 1, p.hc),
                   s = f32_weight(scale, 1, 1);
        cpu::hc_head(X.data(), p.n, p.hc, p.D, f.ref, b.ref, s.ref, 1e-6, 1e-6, o.f(0));
    }
    bool run_naive(const Outs& o) override {
        const int64_t len = p.hc * p.D;
        for (int64_t t = 0; t < p.n; ++t) {
            const float* Xt = X.data() + t * len;
            double ss = 0.0;
            for (int64_t i = 0; i < len; ++i) ss += double(Xt[i]) * Xt[i];
            const double rho = 1.0 / std::sqrt(ss / double(len) + 1e-6);
            std::vector<double> mu(static_cast<size_t>(p.hc));
            for (int64_t j = 0; j < p.hc; ++j) {
                double acc = 0.0;
                for (int64_t i = 0; i < len; ++i) acc += double(fn[j * len + i]) * Xt[i];
                mu[j] = 1.0 / (1.0 + std::exp(-(scale[0] * acc * rho + base[j]))) + 1e-6;
            }
            for (int64_t d = 0; d < p.D; ++d) {
                double acc = 0.0;
                for (int64_t j = 0; j < p.hc; ++j) acc += mu[j] * Xt[j * p.D + d];
                o.f(0)[t * p.D + d] = float(acc);
            }
        }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::hc_head(dev.up(X), p.n, p.hc, p.D, dev.up(fn), dev.up(base), dev.up(scale),
                                       1e-6, 1e-6, o.f(0), dev.stream);)
};
DSV4_OP_CASES(HcHeadCase, {1, 4, 3}, {13, 4, 1000}, {2, 4, 4096});

struct HcHeadSplitCase : HcHeadCase {  // the K-split path (a workspace), poisoned and run twice
    std::string vars() const override { return HcHeadCase::vars() + ",path=split"; }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const int64_t wf = cuda::hc_work_floats(p.n, p.hc, p.D);
        float* work = poisoned_work(dev, wf);
        const float *dX = dev.up(X), *dfn = dev.up(fn), *db = dev.up(base), *ds = dev.up(scale);
        return run_twice(dev, o, outputs(), work, wf, [&] {
            return cuda::hc_head(dX, p.n, p.hc, p.D, dfn, db, ds, 1e-6, 1e-6, o.f(0), dev.stream, work);
        });
    }
#endif
};
DSV4_OP_CASES(HcHeadSplitCase, {1, 4, 4096}, {3, 4, 4096}, {2, 3, 1000}, {2, 2, 1000}, {17, 4, 300},
              {1, 8, 77}, {1500, 4, 64});

// ---------------------------------------------------------------------------------------- sink_attention
struct SinkAttentionCase : OpCase {  // includes a query with no keys and −1 holes
    struct P {
        int64_t n, H, d, pool, max_keys;
    } p;
    cpu_vec q, kv, sink;
    std::vector<int32_t> idx;
    std::string op() const override { return "sink_attention"; }
    std::string vars() const override {
        return fmt::format("n={},H={},d={},pool={},keys={}", p.n, p.H, p.d, p.pool, p.max_keys);
    }
    void init(Rng& rng) override {
        q = rng.uniform_vec(p.n * p.H * p.d, -1.0f, 1.0f);
        kv = rng.uniform_vec(p.pool * p.d, -1.0f, 1.0f);
        sink = rng.uniform_vec(p.H, -1.0f, 1.0f);
        idx.assign(size_t(p.n * p.max_keys), -1);
        for (int64_t t = 0; t < p.n; ++t) {
            if (t == 1) continue;  // query 1 has no keys at all
            for (int64_t j = 0; j < p.max_keys; ++j)
                if (rng.below(5) != 0) idx[t * p.max_keys + j] = int32_t(rng.below(p.pool));
        }
    }
    std::vector<OutSpec> outputs() const override { return {{"out", OutKind::f32, p.n * p.H * p.d}}; }
    void run_cpu(const Outs& o) override {
        HostWeight s = f32_weight(sink, 1, p.H);
        cpu::sink_attention(q.data(), p.n, p.H, p.d, kv.data(), idx.data(), p.max_keys, s.ref,
                            1.0f / std::sqrt(float(p.d)), o.f(0));
    }
    bool run_naive(const Outs& o) override {
        const double scale = 1.0 / std::sqrt(double(p.d));
        for (int64_t t = 0; t < p.n; ++t)
            for (int64_t h = 0; h < p.H; ++h) {
                const int32_t* keys = idx.data() + t * p.max_keys;
                std::vector<double> l(static_cast<size_t>(p.max_keys));
                double mx = sink[h];
                for (int64_t j = 0; j < p.max_keys; ++j) {
                    if (keys[j] < 0) continue;
                    double acc = 0.0;
                    for (int64_t i = 0; i < p.d; ++i)
                        acc += double(q[(t * p.H + h) * p.d + i]) * kv[keys[j] * p.d + i];
                    mx = std::max(mx, l[j] = acc * scale);
                }
                double den = std::exp(sink[h] - mx);
                std::vector<double> acc(static_cast<size_t>(p.d), 0.0);
                for (int64_t j = 0; j < p.max_keys; ++j) {
                    if (keys[j] < 0) continue;
                    const double e = std::exp(l[j] - mx);
                    den += e;
                    for (int64_t i = 0; i < p.d; ++i) acc[i] += e * kv[keys[j] * p.d + i];
                }
                for (int64_t i = 0; i < p.d; ++i) o.f(0)[(t * p.H + h) * p.d + i] = float(acc[i] / den);
            }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::sink_attention(dev.up(q), p.n, p.H, p.d, dev.up(kv), nullptr, INT64_MAX,
                                              dev.up(idx), p.max_keys, dev.up(sink),
                                              1.0f / std::sqrt(float(p.d)), o.f(0), dev.stream);)
};
DSV4_OP_CASES(SinkAttentionCase, {2, 1, 8, 1, 1}, {3, 4, 128, 20, 12}, {5, 8, 512, 300, 640},
              {2, 3, 64, 70, 2100});

// ---------------------------------------------------------------------------------------- compress_pool
struct CompressPoolCase : OpCase {
    struct P {
        int64_t slots, d, lda, ldz;
    } p;
    cpu_vec a, z;
    std::string op() const override { return "compress_pool"; }
    std::string vars() const override {
        return fmt::format("slots={},d={},lda={},ldz={}", p.slots, p.d, p.lda, p.ldz);
    }
    void init(Rng& rng) override {
        a = rng.uniform_vec(p.slots * p.lda, -1.0f, 1.0f);
        z = rng.uniform_vec(p.slots * p.ldz, -4.0f, 4.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"C", OutKind::f32, p.d}}; }
    void run_cpu(const Outs& o) override {
        cpu::compress_pool(a.data(), z.data(), p.slots, p.lda, p.ldz, p.d, o.f(0));
    }
    bool run_naive(const Outs& o) override {
        for (int64_t i = 0; i < p.d; ++i) {
            double mx = -INFINITY, sum = 0.0, acc = 0.0;
            for (int64_t s = 0; s < p.slots; ++s) mx = std::max(mx, double(z[s * p.ldz + i]));
            for (int64_t s = 0; s < p.slots; ++s) {
                const double e = std::exp(z[s * p.ldz + i] - mx);
                sum += e;
                acc += e * a[s * p.lda + i];
            }
            o.f(0)[i] = float(acc / sum);
        }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::compress_pool(dev.up(a), dev.up(z), p.slots, p.lda, p.ldz, p.d, o.f(0),
                                             dev.stream);)
};
DSV4_OP_CASES(CompressPoolCase, {1, 1, 1, 1}, {4, 129, 258, 129}, {8, 512, 512, 1024}, {128, 512, 512, 512});

// --------------------------------------------------------------------------------------- indexer_scores
struct IndexerScoresCase : OpCase {
    struct P {
        int64_t n, Hi, di, n_keys;
    } p;
    cpu_vec qi, w, keys;
    std::vector<int64_t> n_avail;
    std::string op() const override { return "indexer_scores"; }
    std::string vars() const override {
        return fmt::format("n={},Hi={},di={},keys={}", p.n, p.Hi, p.di, p.n_keys);
    }
    void init(Rng& rng) override {
        qi = rng.uniform_vec(p.n * p.Hi * p.di, -1.0f, 1.0f);
        w = rng.uniform_vec(p.n * p.Hi, -1.0f, 1.0f);
        keys = rng.uniform_vec(p.n_keys * p.di, -1.0f, 1.0f);
        n_avail.resize(size_t(p.n));
        for (int64_t t = 0; t < p.n; ++t)
            n_avail[t] = t == 0 ? 0 : (t == 1 ? p.n_keys : rng.below(p.n_keys + 1));
    }
    std::vector<OutSpec> outputs() const override { return {{"scores", OutKind::f32, p.n * p.n_keys}}; }
    void run_cpu(const Outs& o) override {
        cpu::indexer_scores(qi.data(), w.data(), p.n, p.Hi, p.di, keys.data(), p.n_keys, n_avail.data(),
                            o.f(0));
    }
    bool run_naive(const Outs& o) override {
        for (int64_t t = 0; t < p.n; ++t)
            for (int64_t s = 0; s < p.n_keys; ++s) {
                double acc = 0.0;
                for (int64_t h = 0; h < p.Hi; ++h) {
                    double dot = 0.0;
                    for (int64_t i = 0; i < p.di; ++i)
                        dot += double(qi[(t * p.Hi + h) * p.di + i]) * keys[s * p.di + i];
                    acc += w[t * p.Hi + h] * std::max(dot, 0.0);
                }
                o.f(0)[t * p.n_keys + s] = s < n_avail[t] ? float(acc) : -INFINITY;
            }
        return true;
    }
    // budget: scores are sums of ReLU'd dots with weights of both signs, so cancellation makes the
    // relative error of the whole row larger than fp32 rounding of one dot
    double max_err() const override { return 1e-4; }
    DSV4_CUDA_RUN(return cuda::indexer_scores(dev.up(qi), dev.up(w), p.n, p.Hi, p.di, dev.up(keys), p.n_keys,
                                              dev.up(n_avail), o.f(0), dev.stream);)
};
DSV4_OP_CASES(IndexerScoresCase, {2, 1, 1, 1}, {3, 16, 128, 37}, {4, 64, 128, 1000},
              {2, 11, 40, 50});  // heads not a multiple of the 8 per group of indexer_score_warp

// ------------------------------------------------------------------------------- indexer_scores_decode
// The decode-batch form (decode_batch_sm90.cu): B sequences, each with its own index keys (DecodeSeq.idx:
// n_entries before this step, position p: the step's emit adds one when (p + 1) % 4 == 0, the query sees
// (p + 1) / 4), scores [B, max_keys] (−inf past each sequence's keys). Reference: cpu::indexer_scores per
// sequence. Shapes: the Flash indexer (64 heads × 128) at decode key counts, heads not a multiple of 32,
// more than 128 heads (the unstaged fallback), more keys than one pass of the CTAs covers.
struct IndexerScoresDecodeCase : OpCase {
    struct P {
        int64_t B, Hi, di, max_keys;
    } p;
    cpu_vec qi, w, keys;              // [B, Hi, di], [B, Hi], [B, max_keys, di]
    std::vector<int64_t> n_ent, pos;  // per sequence
    int64_t n_avail(int64_t b) const {
        const int64_t n_keys = n_ent[size_t(b)] + ((pos[size_t(b)] + 1) % 4 == 0 ? 1 : 0);
        return std::min(n_keys, (pos[size_t(b)] + 1) / 4);
    }
    std::string op() const override { return "indexer_scores_decode"; }
    std::string vars() const override {
        return fmt::format("B={},Hi={},di={},keys={}", p.B, p.Hi, p.di, p.max_keys);
    }
    void init(Rng& rng) override {
        qi = rng.uniform_vec(p.B * p.Hi * p.di, -1.0f, 1.0f);
        w = rng.uniform_vec(p.B * p.Hi, -1.0f, 1.0f);
        keys = rng.uniform_vec(p.B * p.max_keys * p.di, -1.0f, 1.0f);
        n_ent.resize(size_t(p.B)), pos.resize(size_t(p.B));
        for (int64_t b = 0; b < p.B; ++b) {  // b = 0: every key visible; b = 1: none yet
            n_ent[size_t(b)] = b == 1 ? 0 : p.max_keys - 1 - (b == 0 ? 0 : rng.below(p.max_keys));
            pos[size_t(b)] =
                b == 0 ? 4 * p.max_keys - 1 : (b == 1 ? 2 : int64_t(rng.below(4 * p.max_keys + 8)));
        }
    }
    std::vector<OutSpec> outputs() const override { return {{"scores", OutKind::f32, p.B * p.max_keys}}; }
    void run_cpu(const Outs& o) override {
        for (int64_t b = 0; b < p.B; ++b) {
            const int64_t na = n_avail(b);
            cpu::indexer_scores(qi.data() + b * p.Hi * p.di, w.data() + b * p.Hi, 1, p.Hi, p.di,
                                keys.data() + b * p.max_keys * p.di, p.max_keys, &na,
                                o.f(0) + b * p.max_keys);
        }
    }
    double max_err() const override { return 1e-4; }  // as indexer_scores
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        float* dk = dev.up(keys);
        std::vector<cuda::DecodeSeq> t(size_t(p.B));
        for (int64_t b = 0; b < p.B; ++b) {
            cuda::DecodeSeq& q = t[size_t(b)];
            q = {};
            q.p = pos[size_t(b)];
            q.idx.entries = dk + b * p.max_keys * p.di;
            q.idx.n_entries = n_ent[size_t(b)];
        }
        return cuda::indexer_scores_decode(dev.up(qi), dev.up(w), p.B, p.Hi, p.di, dev.up(t), p.max_keys,
                                           o.f(0), dev.stream);
    }
#endif
};
DSV4_OP_CASES(IndexerScoresDecodeCase, {1, 64, 128, 256}, {3, 64, 128, 37}, {4, 11, 40, 50}, {2, 160, 16, 20},
              {2, 64, 128, 4000}, {5, 33, 128, 9});

// ------------------------------------------------------------------------------------- topk_lower_index
struct TopkCase : OpCase {  // many ties (scores on a coarse grid, ±0) so the tie rule decides
    struct P {
        int64_t n, n_cols, k;
    } p;
    cpu_vec scores;
    std::vector<int64_t> n_valid;
    std::string op() const override { return "topk_lower_index"; }
    std::string vars() const override { return fmt::format("n={},cols={},k={}", p.n, p.n_cols, p.k); }
    void init(Rng& rng) override {
        scores.resize(size_t(p.n * p.n_cols));
        for (auto& s : scores) {
            const int64_t v = rng.below(17) - 8;
            s = v == 0 ? (rng.below(2) ? -0.0f : 0.0f) : 0.25f * float(v);
        }
        n_valid.resize(size_t(p.n));
        for (int64_t t = 0; t < p.n; ++t)
            n_valid[t] = t == 0 ? 0 : (t == 1 ? p.n_cols : rng.below(p.n_cols + 1));  // all-invalid row first
    }
    std::vector<OutSpec> outputs() const override { return {{"sel", OutKind::exact_i32, p.n * p.k}}; }
    void run_cpu(const Outs& o) override {
        cpu::topk_lower_index(scores.data(), p.n, p.n_cols, n_valid.data(), p.k, o.i32(0));
    }
    bool run_naive(const Outs& o) override {  // k rounds of "first maximum among the unchosen"
        for (int64_t t = 0; t < p.n; ++t) {
            const int64_t nv = std::min(n_valid[t], p.n_cols);
            std::vector<bool> used(static_cast<size_t>(nv), false);
            for (int64_t j = 0; j < p.k; ++j) {
                int64_t best = -1;
                for (int64_t i = 0; i < nv; ++i)
                    if (!used[i] && (best < 0 || scores[t * p.n_cols + i] > scores[t * p.n_cols + best]))
                        best = i;
                if (best >= 0) used[best] = true;
                o.i32(0)[t * p.k + j] = int32_t(best);
            }
        }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::topk_lower_index(dev.up(scores), p.n, p.n_cols, dev.up(n_valid), p.k, o.i32(0),
                                                dev.stream);)
};
DSV4_OP_CASES(TopkCase, {2, 1, 1}, {3, 37, 4}, {4, 1000, 512}, {3, 5000, 512}, {3, 300, 512});

// ------------------------------------------------------------------------------------------- moe_route
struct MoeRouteCase : OpCase {
    struct P {
        int64_t n, E, k;
        bool hash;
    } p;
    cpu_vec logits, bias;
    std::vector<int32_t> ids;
    std::vector<int64_t> tid2eid;
    static constexpr int64_t kVocab = 97;
    std::string op() const override { return "moe_route"; }
    std::string vars() const override {
        return fmt::format("n={},E={},k={},hash={}", p.n, p.E, p.k, int(p.hash));
    }
    void init(Rng& rng) override {
        logits = rng.uniform_vec(p.n * p.E, -4.0f, 4.0f);
        for (int64_t i = 0; i < p.n * p.E; i += 7)
            logits[i] = 25.0f + float(i % 3);  // softplus threshold branch
        bias = rng.uniform_vec(p.E, -0.5f, 0.5f);
        ids.resize(size_t(p.n));
        for (auto& id : ids) id = int32_t(rng.below(kVocab));
        tid2eid.resize(size_t(kVocab * p.k));
        for (int64_t v = 0; v < kVocab; ++v) {
            std::vector<int64_t> perm(size_t(p.E));
            std::iota(perm.begin(), perm.end(), 0);
            for (int64_t j = 0; j < p.k; ++j) {
                std::swap(perm[j], perm[j + rng.below(p.E - j)]);
                tid2eid[v * p.k + j] = perm[j];
            }
        }
    }
    std::vector<OutSpec> outputs() const override {
        return {{"idx", OutKind::exact_i32, p.n * p.k}, {"w", OutKind::f32, p.n * p.k}};
    }
    void run_cpu(const Outs& o) override {
        WeightRef t{DType::i64, tid2eid.data(), kVocab, p.k};
        HostWeight b = f32_weight(bias, 1, p.E);
        cpu::moe_route(logits.data(), p.n, p.E, p.k, ids.data(), p.hash ? &t : nullptr,
                       p.hash ? nullptr : &b.ref, 1.5, o.i32(0), o.f(1));
    }
    DSV4_CUDA_RUN(return cuda::moe_route(dev.up(logits), p.n, p.E, p.k, dev.up(ids),
                                         p.hash ? dev.up(tid2eid) : nullptr, kVocab,
                                         p.hash ? nullptr : dev.up(bias), 1.5, o.i32(0), o.f(1), dev.stream);)
};
DSV4_OP_CASES(MoeRouteCase, {1, 8, 2, false}, {7, 256, 6, false}, {5, 256, 6, true}, {3, 9, 9, false});

// The one-token grouped form: moe_route also writes moe_group's table (perm, chunks {expert, start, count},
// n_chunks) of the token's k pairs; reference: the CPU route, its pairs sorted stably by expert, chunks of ≤
// tok. The hash table gives repeated experts where rep is set (two pairs on one expert: one chunk of 2, or
// two chunks with tok = 1).
struct MoeRouteGroupCase : MoeRouteCase {
    int tok = 8;
    bool rep = false;
    std::string op() const override { return "moe_route_group"; }
    std::string vars() const override {
        return MoeRouteCase::vars() + fmt::format(",tok={},rep={}", tok, int(rep));
    }
    void init(Rng& rng) override {
        MoeRouteCase::init(rng);
        if (rep)
            for (int64_t v = 0; v < kVocab; ++v) tid2eid[v * p.k + p.k - 1] = tid2eid[v * p.k];
    }
    std::vector<OutSpec> outputs() const override {
        auto o = MoeRouteCase::outputs();
        o.push_back({"perm", OutKind::exact_i32, p.k});
        o.push_back({"chunks", OutKind::exact_i32, 3 * p.k});
        o.push_back({"n_chunks", OutKind::exact_i32, 1});
        return o;
    }
    void run_cpu(const Outs& o) override {
        MoeRouteCase::run_cpu(o);
        std::vector<int32_t> order(size_t(p.k));
        std::iota(order.begin(), order.end(), 0);
        const int32_t* idx = o.i32(0);
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return idx[a] < idx[b]; });
        int nc = 0;
        for (int64_t i = 0; i < p.k;) {
            int64_t run = 1;
            while (i + run < p.k && idx[order[size_t(i + run)]] == idx[order[size_t(i)]]) ++run;
            for (int64_t c = 0; c < run; c += tok, ++nc) {
                o.i32(3)[3 * nc] = idx[order[size_t(i)]];
                o.i32(3)[3 * nc + 1] = int32_t(i + c);
                o.i32(3)[3 * nc + 2] = int32_t(std::min<int64_t>(tok, run - c));
            }
            i += run;
        }
        std::copy(order.begin(), order.end(), o.i32(2));
        o.i32(4)[0] = nc;
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        cuda::MoeGroupOut g;
        g.perm = o.i32(2), g.chunks = o.i32(3), g.n_chunks = o.i32(4), g.tok = tok;
        return cuda::moe_route(dev.up(logits), p.n, p.E, p.k, dev.up(ids), p.hash ? dev.up(tid2eid) : nullptr,
                               kVocab, p.hash ? nullptr : dev.up(bias), 1.5, o.i32(0), o.f(1), dev.stream,
                               &g);
    }
#endif
};
template <int Tok, bool Rep>
struct MoeRouteGroupAt : MoeRouteGroupCase {
    MoeRouteGroupAt() { tok = Tok, rep = Rep; }
};
using MoeRouteGroup8 = MoeRouteGroupAt<8, false>;
using MoeRouteGroupRep = MoeRouteGroupAt<8, true>;
using MoeRouteGroupRep1 = MoeRouteGroupAt<1, true>;
DSV4_OP_CASES(MoeRouteGroup8, {1, 256, 6, false}, {1, 256, 6, true}, {1, 9, 9, false});
DSV4_OP_CASES(MoeRouteGroupRep, {1, 64, 6, true});
DSV4_OP_CASES(MoeRouteGroupRep1, {1, 64, 6, true});

// ---------------------------------------------------------------------------------------- swiglu_clamp
struct SwigluCase : OpCase {
    struct P {
        int64_t n, I, ldg;
        double limit;
    } p;
    cpu_vec g, u;
    std::string op() const override { return "swiglu_clamp"; }
    std::string vars() const override {
        return fmt::format("n={},I={},ldg={},limit={}", p.n, p.I, p.ldg, p.limit);
    }
    void init(Rng& rng) override {
        g = rng.uniform_vec(p.n * p.ldg, -15.0f, 15.0f);
        u = rng.uniform_vec(p.n * p.ldg, -15.0f, 15.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"h", OutKind::f32, p.n * p.I}}; }
    void run_cpu(const Outs& o) override {
        cpu::swiglu_clamp(g.data(), u.data(), p.n, p.I, p.ldg, p.limit, o.f(0));
    }
    bool run_naive(const Outs& o) override {
        for (int64_t t = 0; t < p.n; ++t)
            for (int64_t i = 0; i < p.I; ++i) {
                double gv = g[t * p.ldg + i], uv = u[t * p.ldg + i];
                if (p.limit > 0) gv = std::min(gv, p.limit), uv = std::clamp(uv, -p.limit, p.limit);
                o.f(0)[t * p.I + i] = float(gv / (1.0 + std::exp(-gv)) * uv);
            }
        return true;
    }
    DSV4_CUDA_RUN(return cuda::swiglu_clamp(dev.up(g), dev.up(u), p.n, p.I, p.ldg, p.limit, o.f(0),
                                            dev.stream);)
};
DSV4_OP_CASES(SwigluCase, {1, 1, 1, 10.0}, {5, 129, 258, 10.0}, {3, 2048, 2048, 0.0});

// ----------------------------------------------------------------------------------------------- embed
struct EmbedCase : OpCase {
    struct P {
        DType dt;
        int64_t n, V, D;
    } p;
    HostWeight table;
    std::vector<int32_t> ids;
    std::string op() const override { return "embed"; }
    std::string vars() const override {
        return fmt::format("type={},n={},V={},D={}", dtype_name(p.dt), p.n, p.V, p.D);
    }
    void init(Rng& rng) override {
        table = random_weight(rng, p.dt, p.V, p.D);
        ids.resize(size_t(p.n));
        for (auto& id : ids) id = int32_t(rng.below(p.V));
        ids.back() = int32_t(p.V - 1);
    }
    std::vector<OutSpec> outputs() const override { return {{"out", OutKind::f32, p.n * p.D}}; }
    void run_cpu(const Outs& o) override { cpu::embed(ids.data(), p.n, table.ref, o.f(0)); }
    double max_err() const override { return 0.0; }  // a gather: exact
    DSV4_CUDA_RUN(return cuda::embed(dev.up(ids), p.n, dev.weight(table), o.f(0), dev.stream);)
};
DSV4_OP_CASES(EmbedCase, {DType::f32, 1, 1, 1}, {DType::bf16, 7, 1000, 257}, {DType::bf16, 3, 50, 4096},
              {DType::f16, 2, 9, 33});

}  // namespace
}  // namespace dsv4::testops
