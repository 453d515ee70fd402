// test-ops cases of the GEMM paths of cuda::linear (n ≥ 16 tokens: exact dequantization into an f32
// scratch + true-fp32 SGEMM) and cuda::linear_grouped (n_pairs ≥ 128: chunk table read back, SGEMM per
// expert with ≥ 16 pairs, GEMV kernel for the rest), with one case just below each threshold. Strides
// larger than the rows (ldx > K, ldy > N): the x padding holds NaN (a read of it would show), the y
// padding must stay unwritten (poisoned in both outputs). Reference: cpu::linear; budget 1e-5.
#include <algorithm>
#include <cmath>

#include "op_harness.h"
#include "ops/cpu/ops_cpu.h"
#include "ops/cpu/quant.h"

namespace dsv4::testops {

namespace {

using cpu_vec = std::vector<float>;

// x [rows, K] copied into [rows, ld] with NaN in the padding columns.
cpu_vec pad_rows(const cpu_vec& x, int64_t rows, int64_t K, int64_t ld) {
    cpu_vec v(size_t(rows * ld), NAN);
    for (int64_t i = 0; i < rows; ++i) std::copy_n(x.begin() + i * K, K, v.begin() + i * ld);
    return v;
}

// ------------------------------------------------------------------------------- linear, many tokens
struct LinearGemmCase : OpCase {
    struct P {
        DType dt;
        int64_t n, N, K;
        int64_t r0;            // row view: rows r0 .. r0+N−1 of a larger weight (0: the whole weight)
        int64_t pad_x, pad_y;  // ldx = K + pad_x, ldy = N + pad_y
    } p;
    HostWeight full;
    cpu_vec x;  // [n, K]
    int64_t ldx() const { return p.K + p.pad_x; }
    int64_t ldy() const { return p.N + p.pad_y; }
    WeightRef view() const {
        return p.r0 == 0 && full.ref.n_rows == p.N ? full.ref : full.ref.rows(p.r0, p.N);
    }
    bool big() const { return p.N * p.K > (int64_t(32) << 20); }
    std::string op() const override { return "linear"; }
    std::string vars() const override {
        return fmt::format("type={},n={},N={},K={},view={},ldx={},ldy={}", dtype_name(p.dt), p.n, p.N, p.K,
                           p.r0, ldx(), ldy());
    }
    void init(Rng& rng) override {
        full = random_weight(rng, p.dt, p.r0 == 0 ? p.N : p.r0 + p.N + 3, p.K);
        x = rng.uniform_vec(p.n * p.K, -1.0f, 1.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"y", OutKind::f32, p.n * ldy()}}; }
    void run_cpu(const Outs& o) override {
        cpu_vec y(size_t(p.n * p.N));
        cpu::linear(x.data(), p.n, view(), y.data());
        for (int64_t i = 0; i < p.n; ++i) std::copy_n(y.begin() + i * p.N, p.N, o.f(0) + i * ldy());
    }
    bool run_naive(const Outs& o) override {
        if (big()) return false;  // the slicing case: cpu::linear against itself keeps the CPU time down
        const WeightRef w = view();
        cpu_vec row(size_t(p.K));
        for (int64_t r = 0; r < p.N; ++r) {
            w.row_to_f32(r, row.data());
            for (int64_t i = 0; i < p.n; ++i) {
                double acc = 0.0;
                for (int64_t k = 0; k < p.K; ++k) acc += double(x[size_t(i * p.K + k)]) * row[size_t(k)];
                o.f(0)[i * ldy() + r] = float(acc);
            }
        }
        return true;
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        WeightRef d = dev.weight(full);
        if (!(p.r0 == 0 && full.ref.n_rows == p.N)) d = d.rows(p.r0, p.N);
        return cuda::linear(dev.up(pad_rows(x, p.n, p.K, ldx())), p.n, ldx(), d, o.f(0), ldy(), dev.stream);
    }
#endif
};
// n = 15: the GEMV kernel with the same strides; 16400×4096 FP4 (268 MB as f32) runs in two weight slices.
DSV4_OP_CASES(LinearGemmCase, {DType::f32, 16, 37, 53, 0, 3, 5}, {DType::f32, 300, 129, 256, 0, 0, 0},
              {DType::f32, 15, 64, 64, 0, 4, 4}, {DType::f32, 17, 31, 40, 9, 1, 0},
              {DType::bf16, 17, 257, 129, 0, 1, 2}, {DType::bf16, 64, 64, 1024, 7, 4, 0},
              {DType::bf16, 15, 40, 72, 0, 2, 2}, {DType::f16, 16, 33, 72, 0, 0, 3},
              {DType::f16, 300, 65, 136, 0, 8, 1}, {DType::f8_e4m3, 16, 130, 260, 0, 2, 1},
              {DType::f8_e4m3, 64, 256, 512, 0, 4, 0}, {DType::f8_e4m3, 300, 300, 1024, 0, 0, 7},
              {DType::f8_e4m3, 17, 64, 384, 64, 4, 4}, {DType::f8_e4m3, 16, 100, 256, 192, 0, 0},
              {DType::f8_e4m3, 15, 256, 512, 64, 0, 0}, {DType::fp4_e2m1, 16, 33, 64, 0, 1, 1},
              {DType::fp4_e2m1, 300, 129, 1056, 0, 0, 0}, {DType::fp4_e2m1, 64, 17, 4096, 5, 4, 3},
              {DType::fp4_e2m1, 15, 129, 1056, 0, 0, 0}, {DType::fp4_e2m1, 16, 16400, 4096, 0, 0, 0});

// ------------------------------------------------------------------- linear_b1 (batch-1 FP4 / FP8)
// The tensor-core batch-1 kernel called directly (cuda::linear routes n = 1 FP4 here too): x of any
// magnitude (its power-of-two prescale), an all-zero row, one 128-k span for 8 K ranges, K = 16384 (> 48 KB
// of shared memory), N not a multiple of the 16-row tile, several rows (one pass each), ldx > K with NaN
// padding; FP8 with the Flash decode shapes (wq_b, wo_b, shared w1) and a row view starting mid-block.
struct LinearB1Case : OpCase {
    struct P {
        DType dt;
        int64_t n, N, K;
        float xmag;      // x uniform in [−xmag, xmag]; row 0 all zero when xmag is 0
        int64_t r0 = 0;  // row view: rows r0 .. r0+N−1 of a larger weight
    } p;
    HostWeight w;
    cpu_vec x;  // [n, K]
    int64_t ldx() const { return p.K + 4; }
    WeightRef view(const WeightRef& full) const { return p.r0 == 0 ? full : full.rows(p.r0, p.N); }
    std::string op() const override { return "linear_b1"; }
    std::string vars() const override {
        return fmt::format("type={},n={},N={},K={},xmag={},view={}", dtype_name(p.dt), p.n, p.N, p.K, p.xmag,
                           p.r0);
    }
    void init(Rng& rng) override {
        w = random_weight(rng, p.dt, p.r0 == 0 ? p.N : p.r0 + p.N + 5, p.K);
        x = rng.uniform_vec(p.n * p.K, -1.0f, 1.0f);
        for (float& v : x) v *= p.xmag == 0.0f ? 1.0f : p.xmag;
        if (p.xmag == 0.0f) std::fill_n(x.begin(), p.K, 0.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"y", OutKind::f32, p.n * p.N}}; }
    void run_cpu(const Outs& o) override { cpu::linear(x.data(), p.n, view(w.ref), o.f(0)); }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const WeightRef d = view(dev.weight(w));
        const float* xd = dev.up(pad_rows(x, p.n, p.K, ldx()));
        if (!cuda::linear_b1_ok(d, xd, ldx())) return error("linear_b1_ok refused the case");
        return cuda::linear_b1(xd, p.n, ldx(), 1, cuda::DevWeight::from(d), nullptr, nullptr, nullptr,
                               nullptr, 0, o.f(0), p.N, dev.stream);
    }
#endif
};
DSV4_OP_CASES(LinearB1Case, {DType::fp4_e2m1, 1, 2048, 4096, 1.0f}, {DType::fp4_e2m1, 1, 4096, 2048, 3e4f},
              {DType::fp4_e2m1, 3, 17, 4096, 1e-20f}, {DType::fp4_e2m1, 2, 40, 128, 1e20f},
              {DType::fp4_e2m1, 2, 1, 256, 0.0f}, {DType::fp4_e2m1, 1, 300, 16384, 7.0f},
              {DType::fp4_e2m1, 4, 520, 1024, 1.0f}, {DType::f8_e4m3, 1, 32768, 1024, 1.0f},
              {DType::f8_e4m3, 1, 4096, 8192, 2e3f}, {DType::f8_e4m3, 1, 2048, 4096, 1.0f},
              {DType::f8_e4m3, 3, 200, 384, 1e-20f}, {DType::f8_e4m3, 2, 33, 128, 1e20f},
              {DType::f8_e4m3, 2, 1, 256, 0.0f}, {DType::f8_e4m3, 1, 130, 1024, 1.0f, 72});

// ------------------------------------------------------------------------ linear_grouped, many pairs
// Pairs p = token·k + slot of n_tok tokens (x_div = k: w1/w3, x rows are tokens) or of n_tok·k rows of
// their own (x_div = 1: w2). Experts e % 4 == 3 get no pair, expert 0 takes about hot % of them (SGEMM), the
// rest spread over the others (a mix of SGEMM and GEMV experts, depending on E).
struct LinearGroupedCase : OpCase {
    struct P {
        DType dt;
        int64_t n_tok, k;
        bool per_token;  // x_div = k (else 1)
        int64_t E, N, K, hot;
        int64_t hint = 0;  // linear_grouped's max_per_expert (0: unknown)
    } p;
    std::vector<HostWeight> ws;
    std::vector<int32_t> esel;  // [n_pairs]
    cpu_vec x;                  // [x_rows, K]
    int64_t n_pairs() const { return p.n_tok * p.k; }
    int64_t x_div() const { return p.per_token ? p.k : 1; }
    int64_t x_rows() const { return p.per_token ? p.n_tok : n_pairs(); }
    int64_t ldx() const { return p.K + 4; }
    int64_t ldy() const { return p.N + 3; }
    std::string op() const override { return "linear_grouped"; }
    std::string vars() const override {
        return fmt::format("type={},pairs={},xdiv={},E={},N={},K={},hot={},hint={}", dtype_name(p.dt),
                           n_pairs(), x_div(), p.E, p.N, p.K, p.hot, p.hint);
    }
    void init(Rng& rng) override {
        ws.clear();
        for (int64_t e = 0; e < p.E; ++e) ws.push_back(random_weight(rng, p.dt, p.N, p.K));
        esel.resize(size_t(n_pairs()));
        for (auto& e : esel) {
            if (rng.below(100) < p.hot) {
                e = 0;
                continue;
            }
            do e = int32_t(rng.below(p.E));
            while (e % 4 == 3);
        }
        x = rng.uniform_vec(x_rows() * p.K, -1.0f, 1.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"y", OutKind::f32, n_pairs() * ldy()}}; }
    // Per expert: its pairs' x rows as one matrix, one cpu::linear (each weight row dequantized once).
    void run_cpu(const Outs& o) override {
        for (int64_t e = 0; e < p.E; ++e) {
            std::vector<int64_t> pairs;
            for (int64_t q = 0; q < n_pairs(); ++q)
                if (esel[size_t(q)] == e) pairs.push_back(q);
            if (pairs.empty()) continue;
            const int64_t m = int64_t(pairs.size());
            cpu_vec xe(size_t(m * p.K)), ye(size_t(m * p.N));
            for (int64_t i = 0; i < m; ++i)
                std::copy_n(x.begin() + (pairs[size_t(i)] / x_div()) * p.K, p.K, xe.begin() + i * p.K);
            cpu::linear(xe.data(), m, ws[size_t(e)].ref, ye.data());
            for (int64_t i = 0; i < m; ++i)
                std::copy_n(ye.begin() + i * p.N, p.N, o.f(0) + pairs[size_t(i)] * ldy());
        }
    }
#if DSV4_HAVE_CUDA
    // The experts' weights on the device and the chunk table of rows_per_chunk pairs (moe_group).
    struct DevGroups {
        WeightRef proto;
        const cuda::DevWeight* table;
        int32_t *perm, *chunks, *n_chunks;
        int64_t max_chunks;
    };
    Result<DevGroups> group_on_device(Dev& dev, int rows_per_chunk) const {
        const int64_t np = n_pairs();
        DevGroups d;
        d.max_chunks = cuda::moe_max_chunks(np, p.E, rows_per_chunk);
        std::vector<cuda::DevWeight> table;
        for (const HostWeight& w : ws) {
            d.proto = dev.weight(w);
            table.push_back(cuda::DevWeight::from(d.proto));
        }
        d.table = dev.up(table);
        d.perm = static_cast<int32_t*>(dev.alloc(size_t(np) * 4));
        d.chunks = static_cast<int32_t*>(dev.alloc(size_t(3 * d.max_chunks) * 4));
        d.n_chunks = static_cast<int32_t*>(dev.alloc(4));
        auto* scratch = static_cast<int32_t*>(dev.alloc(size_t(p.E + 1) * 4));
        DSV4_TRY(cuda::moe_group(dev.up(esel), np, p.E, d.perm, d.chunks, d.n_chunks, scratch, dev.stream,
                                 rows_per_chunk));
        return d;
    }
    Status run_cuda(Dev& dev, const Outs& o) override {
        DevGroups d;
        DSV4_TRY_ASSIGN(d, group_on_device(dev, 8));
        return cuda::linear_grouped(dev.up(pad_rows(x, x_rows(), p.K, ldx())), n_pairs(), ldx(), x_div(),
                                    d.table, d.proto, d.perm, d.chunks, d.n_chunks, d.max_chunks, o.f(0),
                                    ldy(), dev.stream, p.hint);
    }
#endif
};
// 120 pairs: below the threshold (GEMV kernel only). E = 64 at 200 pairs with hot = 0: every expert under 16
// pairs (read back, then GEMV only). 700·3 pairs × K = 8192: two activation windows of the 64 MB scratch
// (an expert's rows straddle the window boundary).
DSV4_OP_CASES(LinearGroupedCase, {DType::fp4_e2m1, 100, 3, true, 16, 256, 512, 40},
              {DType::f8_e4m3, 300, 1, false, 16, 200, 384, 30}, {DType::bf16, 129, 1, false, 16, 65, 96, 50},
              {DType::f32, 100, 2, true, 8, 40, 64, 20}, {DType::fp4_e2m1, 150, 2, true, 4, 64, 128, 100},
              {DType::fp4_e2m1, 40, 3, true, 16, 128, 256, 40},
              {DType::f8_e4m3, 200, 1, false, 64, 96, 256, 0},
              {DType::f8_e4m3, 700, 3, true, 16, 24, 8192, 20});
// Decode shapes (GEMV kernel, parallel grouping): Flash expert w1 / w2 at batch 1 (hint 1: one token pass;
// w2's pairs are rows of their own, so two of them on one expert take two passes), batch 5 with a hot
// expert (FP4 passes of 4 tokens: two passes), FP8 / bf16 experts.
DSV4_OP_CASES(LinearGroupedCase, {DType::fp4_e2m1, 1, 6, true, 8, 2048, 4096, 0, 1},
              {DType::fp4_e2m1, 6, 1, false, 8, 4096, 2048, 0, 1},
              {DType::fp4_e2m1, 5, 6, true, 24, 512, 4096, 50, 5},
              {DType::f8_e4m3, 7, 6, true, 32, 520, 1024, 60, 7},
              {DType::bf16, 3, 6, true, 16, 100, 256, 0, 0}, {DType::f32, 9, 2, true, 8, 33, 96, 30, 9});

// ------------------------------------------------------------- linear_grouped_glu / linear_b1_glu
// The FFN gate/up pair: h = swiglu_clamp(x·W1ᵀ, x·W3ᵀ, limit) per pair, W1 and W3 from two expert tables
// (E = 0: dense, one W1 / W3) — through cuda::linear_grouped_glu / linear_glu (batch 1: the b1 kernel's
// fused form; else the two linears + swiglu_clamp), or linear_b1_glu called directly (direct: small and odd
// shapes the wrapper would route elsewhere). The limit cuts some of the values (limit 0: no clamp).
struct LinearGluCase : OpCase {
    struct P {
        DType dt;
        int64_t n_tok, k, E, N, K;
        float limit;
        bool direct;
    } p;
    std::vector<HostWeight> w1, w3;  // E (dense: 1) each
    std::vector<int32_t> esel;       // [n_tok·k], distinct experts per token
    cpu_vec x;                       // [n_tok, K]
    int64_t n_pairs() const { return p.E ? p.n_tok * p.k : p.n_tok; }
    int64_t ldx() const { return p.K + 4; }
    std::string op() const override { return "linear_glu"; }
    std::string vars() const override {
        return fmt::format("type={},tok={},k={},E={},N={},K={},limit={},direct={}", dtype_name(p.dt), p.n_tok,
                           p.k, p.E, p.N, p.K, p.limit, p.direct);
    }
    void init(Rng& rng) override {
        w1.clear(), w3.clear();
        for (int64_t e = 0; e < std::max<int64_t>(p.E, 1); ++e) {
            w1.push_back(random_weight(rng, p.dt, p.N, p.K));
            w3.push_back(random_weight(rng, p.dt, p.N, p.K));
        }
        esel.clear();
        for (int64_t t = 0; t < (p.E ? p.n_tok : 0); ++t)
            for (int64_t j = 0; j < p.k; ++j)
                esel.push_back(int32_t((t * 5 + j * 3) % p.E));  // distinct: k ≤ E
        x = rng.uniform_vec(p.n_tok * p.K, -1.0f, 1.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"h", OutKind::f32, n_pairs() * p.N}}; }
    void run_cpu(const Outs& o) override {
        cpu_vec g(size_t(p.N)), u(size_t(p.N));
        for (int64_t q = 0; q < n_pairs(); ++q) {
            const size_t e = p.E ? size_t(esel[size_t(q)]) : 0;
            const float* xr = x.data() + (p.E ? q / p.k : q) * p.K;
            cpu::linear(xr, 1, w1[e].ref, g.data());
            cpu::linear(xr, 1, w3[e].ref, u.data());
            cpu::swiglu_clamp(g.data(), u.data(), 1, p.N, p.N, p.limit, o.f(0) + q * p.N);
        }
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const float* xd = dev.up(pad_rows(x, p.n_tok, p.K, ldx()));
        auto* g = static_cast<float*>(dev.alloc(size_t(n_pairs() * p.N) * 4));
        auto* u = static_cast<float*>(dev.alloc(size_t(n_pairs() * p.N) * 4));
        if (p.E == 0) {
            const WeightRef a = dev.weight(w1[0]), b = dev.weight(w3[0]);
            if (!p.direct)
                return cuda::linear_glu(xd, p.n_tok, ldx(), a, b, p.limit, g, u, o.f(0), dev.stream);
            if (!cuda::linear_b1_ok(a, xd, ldx())) return error("linear_b1_ok refused the case");
            return cuda::linear_b1_glu(xd, p.n_tok, ldx(), 1, cuda::DevWeight::from(a),
                                       cuda::DevWeight::from(b), nullptr, nullptr, nullptr, nullptr, nullptr,
                                       0, p.limit, o.f(0), p.N, dev.stream);
        }
        std::vector<cuda::DevWeight> t1, t3;
        WeightRef proto;
        for (size_t e = 0; e < w1.size(); ++e) {
            proto = dev.weight(w1[e]);
            t1.push_back(cuda::DevWeight::from(proto));
            t3.push_back(cuda::DevWeight::from(dev.weight(w3[e])));
        }
        const int64_t np = n_pairs(), mc = cuda::moe_max_chunks(np, p.E);
        auto* perm = static_cast<int32_t*>(dev.alloc(size_t(np) * 4));
        auto* chunks = static_cast<int32_t*>(dev.alloc(size_t(3 * mc) * 4));
        auto* n_chunks = static_cast<int32_t*>(dev.alloc(4));
        auto* scratch = static_cast<int32_t*>(dev.alloc(size_t(p.E + 1) * 4));
        DSV4_TRY(cuda::moe_group(dev.up(esel), np, p.E, perm, chunks, n_chunks, scratch, dev.stream));
        const cuda::DevWeight *d1 = dev.up(t1), *d3 = dev.up(t3);
        if (p.direct)
            return cuda::linear_b1_glu(xd, np, ldx(), p.k, t1[0], t3[0], d1, d3, perm, chunks, n_chunks, mc,
                                       p.limit, o.f(0), p.N, dev.stream);
        return cuda::linear_grouped_glu(xd, np, ldx(), p.k, d1, d3, proto, perm, chunks, n_chunks, mc,
                                        p.limit, g, u, o.f(0), dev.stream, p.n_tok);
    }
#endif
};
// Flash shapes at batch 1 (routed FP4 experts 2048 × 4096, 6 of 8; the shared FP8 expert 2048 × 4096), batch
// 3 (the two-linear path), and direct calls with N not a multiple of the tiles, one 128-k span, FP8 odd rows.
DSV4_OP_CASES(LinearGluCase, {DType::fp4_e2m1, 1, 6, 8, 2048, 4096, 20.0f, false},
              {DType::fp4_e2m1, 3, 6, 8, 256, 512, 10.0f, false},
              {DType::f8_e4m3, 1, 1, 0, 2048, 4096, 0.0f, false},
              {DType::f8_e4m3, 2, 1, 0, 100, 256, 0.0f, false},
              {DType::fp4_e2m1, 1, 2, 4, 40, 128, 0.5f, true},
              {DType::fp4_e2m1, 2, 1, 0, 300, 1024, 1.0f, true},
              {DType::f8_e4m3, 1, 3, 5, 72, 384, 2.0f, true},
              {DType::f8_e4m3, 1, 1, 0, 200, 8192, 0.0f, true});

// ---------------------------------------------------------------- fp8_gemm_grouped_q (routed experts)
// The same pairs through the FP8 tensor-core GEMM: x rounded to FP8 (1x128) at init, so the CPU reference is
// cpu::linear on the rounded rows and the device quantizes them back to the same codes; chunks of
// fp8_gemm_group_rows() pairs (a hot expert spans several, the last partial).
struct Fp8GemmGroupedCase : LinearGroupedCase {
    std::string op() const override { return "fp8_gemm_grouped"; }
    void init(Rng& rng) override {
        LinearGroupedCase::init(rng);
        cpu::fp8_roundtrip_rows(x.data(), x_rows(), p.K, p.K, 128);
    }
    double max_err() const override { return 1e-4; }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const int64_t rows = x_rows(), K = p.K;
        DevGroups d;
        DSV4_TRY_ASSIGN(d, group_on_device(dev, int(cuda::fp8_gemm_group_rows())));
        auto* xq = static_cast<uint8_t*>(dev.alloc(size_t(rows * K)));
        auto* xs = static_cast<float*>(dev.alloc(size_t(rows * (K / 128)) * 4));
        DSV4_TRY(cuda::fp8_quantize_act(dev.up(pad_rows(x, rows, K, ldx())), rows, ldx(), K, rows, xq, xs,
                                        dev.stream));
        return cuda::fp8_gemm_grouped_q(xq, xs, rows, x_div(), d.table, d.proto, d.perm, d.chunks, d.n_chunks,
                                        d.max_chunks, o.f(0), ldy(), dev.stream);
    }
#endif
};
// Prefill-like (hot experts over several 64-pair chunks, empty experts), per-token and per-pair x rows,
// N not a multiple of 128; Flash expert widths K = 4096 (w1) and 2048 (w2), fewer rows to keep the CPU side
// short.
const std::vector<Fp8GemmGroupedCase::P> kFp8GroupedShapes{
    {DType::fp4_e2m1, 100, 3, true, 16, 256, 512, 40},  {DType::f8_e4m3, 300, 1, false, 16, 200, 384, 30},
    {DType::fp4_e2m1, 150, 2, true, 4, 72, 128, 100},   {DType::f8_e4m3, 200, 1, false, 64, 96, 256, 0},
    {DType::fp4_e2m1, 48, 6, true, 16, 1024, 4096, 10}, {DType::fp4_e2m1, 256, 1, false, 16, 640, 2048, 10},
};
DSV4_OP_CASES_V(Fp8GemmGroupedCase, kFp8GroupedShapes);

// The wgmma kernel on the same shapes (op_harness.h OnFp8Kernel).
using Fp8GemmGroupedWgmma1 = OnFp8Kernel<Fp8GemmGroupedCase, 1>;
using Fp8GemmGroupedWgmma3 = OnFp8Kernel<Fp8GemmGroupedCase, 3>;
DSV4_OP_CASES_V(Fp8GemmGroupedWgmma1, kFp8GroupedShapes);
DSV4_OP_CASES_V(Fp8GemmGroupedWgmma3, kFp8GroupedShapes);

// ------------------------------------------------------------------------------------- linear_multi
// Segments of several formats and shapes over the same token rows, outputs interleaved in one buffer
// (each segment writes its column range of [n, ld_out] rows; the gaps stay poisoned). A row-view family
// mimics wo_a (groups of rows of one FP8 weight, each reading its slice of x). Reference: cpu::linear per
// segment; budget 1e-5.
struct LinearMultiCase : OpCase {
    struct P {
        int64_t n;
        int n_fp8_groups;  // wo_a-like segments (rows views of one FP8 [groups·rows, 512] weight)
        bool mixed;        // plus an FP8 [300, 1024], a bf16 [70, 1024], an f32 [33, 64] and an FP4 segment
        int64_t group_rows = 64;
    } p;
    struct Seg {
        int64_t xoff, K, yoff, N;
        int weight;  // index into ws
        int64_t r0;  // row view start (-1: whole weight)
    };
    std::vector<HostWeight> ws;
    std::vector<Seg> segs;
    cpu_vec x;  // [n, ldx]
    int64_t ldx = 0, ldy = 0;
    std::string op() const override { return "linear_multi"; }
    std::string vars() const override {
        return fmt::format("n={},groups={}x{},mixed={}", p.n, p.n_fp8_groups, p.group_rows, int(p.mixed));
    }
    void init(Rng& rng) override {
        ws.clear(), segs.clear();
        ldx = 0, ldy = 0;
        auto add = [&](int wi, int64_t K, int64_t N, int64_t r0) {
            segs.push_back({ldx, K, ldy, N, wi, r0});
            ldx += K, ldy += N + 3;
        };
        if (p.n_fp8_groups > 0) {
            const int64_t R = p.group_rows;
            ws.push_back(random_weight(rng, DType::f8_e4m3, R * p.n_fp8_groups, 512));
            for (int g = 0; g < p.n_fp8_groups; ++g) add(0, 512, R, R * g);
        }
        if (p.mixed) {
            const std::pair<DType, std::pair<int64_t, int64_t>> more[] = {{DType::f8_e4m3, {300, 1024}},
                                                                          {DType::bf16, {70, 1024}},
                                                                          {DType::f32, {33, 64}},
                                                                          {DType::fp4_e2m1, {40, 256}}};
            for (const auto& [dt, nk] : more) {
                ws.push_back(random_weight(rng, dt, nk.first, nk.second));
                add(int(ws.size()) - 1, nk.second, nk.first, -1);
            }
        }
        x = rng.uniform_vec(p.n * ldx, -1.0f, 1.0f);
    }
    WeightRef ref(const Seg& g) const {
        const WeightRef& w = ws[size_t(g.weight)].ref;
        return g.r0 < 0 ? w : w.rows(g.r0, g.N);
    }
    std::vector<OutSpec> outputs() const override { return {{"y", OutKind::f32, p.n * ldy}}; }
    void run_cpu(const Outs& o) override {
        for (const Seg& g : segs) {
            cpu_vec xs(size_t(p.n * g.K)), ys(size_t(p.n * g.N));
            for (int64_t i = 0; i < p.n; ++i)
                std::copy_n(x.begin() + i * ldx + g.xoff, g.K, xs.begin() + i * g.K);
            cpu::linear(xs.data(), p.n, ref(g), ys.data());
            for (int64_t i = 0; i < p.n; ++i)
                std::copy_n(ys.begin() + i * g.N, g.N, o.f(0) + i * ldy + g.yoff);
        }
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const float* dx = dev.up(x);
        std::vector<WeightRef> dw;
        for (const HostWeight& w : ws) dw.push_back(dev.weight(w));
        std::vector<cuda::LinearSeg> ls;
        for (const Seg& g : segs) {
            const WeightRef& w = dw[size_t(g.weight)];
            ls.push_back({dx + g.xoff, ldx, g.r0 < 0 ? w : w.rows(g.r0, g.N), o.f(0) + g.yoff, ldy});
        }
        return cuda::linear_multi(ls.data(), int(ls.size()), p.n, dev.stream);
    }
#endif
};
// 9 groups: two launches of one format (8 + 1); n = 20: every segment through linear (GEMM path). One row
// with ≥ 2048 FP8 rows in all: the FP8 segments on the b1 kernel (linear_b1_multi), 8 groups of 256 rows,
// and 9 of 320 (row views starting mid scale block, 8 + 1 launches, the mixed FP8 segment's K = 1024 beside
// the groups' 512).
DSV4_OP_CASES(LinearMultiCase, {1, 8, false}, {1, 3, true}, {3, 9, true}, {8, 2, true}, {13, 0, true},
              {20, 4, true}, {1, 8, false, 256}, {1, 9, true, 320});

}  // namespace

}  // namespace dsv4::testops
