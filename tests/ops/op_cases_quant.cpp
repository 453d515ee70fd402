// test-ops cases of the reference-numerics kernels (src/ops/cuda/quant_sm90.cu, fp8_gemm_sm90.cu): the FP8 /
// FP4 round trips and the Hadamard (+ FP4) transform compare BIT FOR BIT with the CPU ops (ops/cpu/quant.h),
// on random blocks of many magnitudes plus blocks built to hit the hard cases: exact midpoints between codes
// (ties to even), values above qmax after scaling (saturation), e4m3 subnormal codes, fp32 subnormals, ±0,
// ±inf, blocks under the amax floor, partial last blocks, padding columns that must stay untouched. On the
// cpu backend the round trips are checked against an independent nearest-value search. The FP8 GEMM
// compares with cpu::linear on FP8-rounded x (budget 1e-3: the tensor core's FP8 accumulation inside
// each 128-K block is not IEEE fp32; a layout or scale error gives O(1)).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "op_harness.h"
#include "ops/cpu/ops_cpu.h"
#include "ops/cpu/quant.h"
#if DSV4_HAVE_CUDA
#include "ops/cuda/cuda_check.h"
#endif

namespace dsv4::testops {

namespace {

using cpu_vec = std::vector<float>;

void to_bits(const cpu_vec& v, int32_t* out) {
    std::memcpy(out, v.data(), v.size() * 4);
}

// One block of `len` values of the kind k (0: random magnitudes, 1: ties/saturation at scale 1, 2: under the
// amax floor, 3: zeros, fp32 subnormals and e4m3 subnormals next to a large value, 4: an infinity).
void fill_block(Rng& rng, float* b, int64_t len, int kind, bool fp8) {
    const float qmax = fp8 ? 448.0f : 6.0f;
    static const float fp8_ties[] = {1.0625f, 17.0f,  0.0029296875f, 0.0009765625f,
                                     232.0f,  464.0f, 0.01953125f};
    static const float fp4_ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 7.0f};
    const float e = std::ldexp(1.0f, int(rng.below(41)) - 20);
    for (int64_t i = 0; i < len; ++i) {
        float v = rng.uniform(-1.0f, 1.0f);
        switch (kind) {
            case 0:
                v *= e;
                break;
            case 1:
                v = fp8 ? fp8_ties[rng.below(7)] : fp4_ties[rng.below(8)];
                if (rng.below(2)) v = -v;
                break;
            case 2:
                v *= fp8 ? 5e-5f : 1e-38f;
                break;
            case 3: {
                const int64_t c = rng.below(4);
                v = c == 0 ? 0.0f : c == 1 ? -0.0f : c == 2 ? v * 1e-39f : v * std::ldexp(1.0f, -12);
                break;
            }
            default:
                v *= 3.0f;
        }
        b[i] = v;
    }
    if (kind == 1) b[rng.below(len)] = qmax;  // s = 1: the ties sit exactly on code midpoints
    if (kind == 3) b[rng.below(len)] = rng.uniform(1.0f, 2.0f) * 300.0f;
    if (kind == 4) b[rng.below(len)] = rng.below(2) ? INFINITY : -INFINITY;
}

// Independent reference of one value: the nearest of all finite codes to x/s (ties: the even code),
// saturating at ±qmax; the scale by the REF rule in double from the fp32 product amax·(1/qmax).
float naive_round(float x, float s, bool fp8) {
    const float v = x / s;
    const float qmax = fp8 ? 448.0f : 6.0f;
    if (std::isinf(v)) return std::copysign(qmax, v) * s;
    double best = 0.0, bd = INFINITY;
    for (int c = 0; c < (fp8 ? 127 : 8); ++c) {  // magnitudes only; the sign is applied after
        const double m = fp8 ? e4m3_to_f32(uint8_t(c)) : e2m1_to_f32(uint8_t(c));
        const double dist = std::fabs(std::fabs(double(v)) - m);
        if (dist < bd || (dist == bd && (c & 1) == 0)) bd = dist, best = m;
    }
    const float mag = float(std::min(best, double(qmax)));
    return (std::signbit(v) ? -mag : mag) * s;
}
float naive_scale(float amax, bool fp8) {
    const float qmax = fp8 ? 448.0f : 6.0f, floor = fp8 ? 1e-4f : 6.0f * std::ldexp(1.0f, -126);
    const float r = std::max(amax, floor) * (1.0f / qmax);
    if (std::isinf(r)) return std::ldexp(1.0f, 127);
    int e;
    const double fr = std::frexp(double(r), &e);  // r = fr·2^e, fr in [0.5, 1)
    const int ceil_log2 = fr == 0.5 ? e - 1 : e;
    return float(std::ldexp(1.0, std::clamp(ceil_log2, -127, 127)));
}

// ------------------------------------------------------------------------ fp8/fp4 round trips of rows
struct RoundRowsCase : OpCase {
    struct P {
        bool fp8;
        int64_t rows, n, block, pad;  // ld = n + pad (the padding must stay as it was)
    } p;
    cpu_vec x;  // [rows, ld]
    int64_t ld() const { return p.n + p.pad; }
    std::string op() const override { return p.fp8 ? "fp8_roundtrip_rows" : "fp4_roundtrip_rows"; }
    std::string vars() const override {
        return fmt::format("rows={},n={},block={},ld={}", p.rows, p.n, p.block, ld());
    }
    void init(Rng& rng) override {
        x.assign(size_t(p.rows * ld()), 0.0f);
        for (int64_t r = 0; r < p.rows; ++r) {
            for (int64_t b0 = 0; b0 < p.n; b0 += p.block)
                fill_block(rng, x.data() + r * ld() + b0, std::min(p.block, p.n - b0), int(rng.below(5)),
                           p.fp8);
            for (int64_t i = p.n; i < ld(); ++i) x[size_t(r * ld() + i)] = rng.uniform(-1.0f, 1.0f);
        }
    }
    std::vector<OutSpec> outputs() const override { return {{"x", OutKind::exact_i32, p.rows * ld()}}; }
    void run_cpu(const Outs& o) override {
        cpu_vec y = x;
        if (p.fp8)
            cpu::fp8_roundtrip_rows(y.data(), p.rows, ld(), p.n, p.block);
        else
            for (int64_t r = 0; r < p.rows; ++r) cpu::fp4_roundtrip(y.data() + r * ld(), p.n, p.block);
        to_bits(y, o.i32(0));
    }
    bool run_naive(const Outs& o) override {
        cpu_vec y = x;
        for (int64_t r = 0; r < p.rows; ++r)
            for (int64_t b0 = 0; b0 < p.n; b0 += p.block) {
                float* b = y.data() + r * ld() + b0;
                const int64_t len = std::min(p.block, p.n - b0);
                float amax = 0.0f;
                for (int64_t i = 0; i < len; ++i) amax = std::max(amax, std::fabs(b[i]));
                const float s = naive_scale(amax, p.fp8);
                for (int64_t i = 0; i < len; ++i) b[i] = naive_round(b[i], s, p.fp8);
            }
        to_bits(y, o.i32(0));
        return true;
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        float* d = reinterpret_cast<float*>(o.i32(0));
        DSV4_CUDA_CHECK(cudaMemcpy(d, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        if (p.rows % 2 == 0)  // in place
            return p.fp8 ? cuda::fp8_roundtrip_rows(d, ld(), d, ld(), p.rows, p.n, p.block, dev.stream)
                         : cuda::fp4_roundtrip_rows(d, ld(), d, ld(), p.rows, p.n, p.block, dev.stream);
        const float* src = dev.up(x);  // out of place (the output already holds the padding)
        return p.fp8 ? cuda::fp8_roundtrip_rows(src, ld(), d, ld(), p.rows, p.n, p.block, dev.stream)
                     : cuda::fp4_roundtrip_rows(src, ld(), d, ld(), p.rows, p.n, p.block, dev.stream);
    }
#endif
};
// block 128: activations (K = 4096 of Flash, 7168 of Pro, a partial block); block 64: KV nope dims (448);
// block 32: FP4 (index keys 128); odd n and partial blocks on purpose.
DSV4_OP_CASES(RoundRowsCase, {true, 1, 1, 128, 0}, {true, 37, 4096, 128, 0}, {true, 16, 7168, 128, 3},
              {true, 9, 300, 128, 5}, {true, 64, 448, 64, 64}, {true, 33, 100, 64, 1}, {true, 2, 448, 64, 0},
              {false, 1, 1, 32, 0}, {false, 64, 128, 32, 0}, {false, 31, 100, 32, 4},
              {false, 512, 128, 32, 0}, {false, 8, 1000, 32, 7});

// ------------------------------------------------------------------------ Hadamard (+ FP4), in place
struct HadamardCase : OpCase {
    struct P {
        int64_t rows, d;
        bool fp4;
    } p;
    cpu_vec x;  // [rows, d]
    std::string op() const override { return "hadamard_rows"; }
    std::string vars() const override { return fmt::format("rows={},d={},fp4={}", p.rows, p.d, p.fp4); }
    void init(Rng& rng) override {
        x.resize(size_t(p.rows * p.d));
        for (int64_t r = 0; r < p.rows; ++r) {
            const float e = std::ldexp(1.0f, int(rng.below(21)) - 10);
            for (int64_t i = 0; i < p.d; ++i) x[size_t(r * p.d + i)] = rng.uniform(-1.0f, 1.0f) * e;
        }
        if (p.rows > 2) std::fill_n(x.begin() + p.d, p.d, 0.0f);  // an all-zero row: the amax floor
    }
    std::vector<OutSpec> outputs() const override { return {{"x", OutKind::exact_i32, p.rows * p.d}}; }
    void run_cpu(const Outs& o) override {
        cpu_vec y = x;
        cpu::hadamard_rows(y.data(), p.rows, p.d);
        if (p.fp4)
            for (int64_t r = 0; r < p.rows; ++r) cpu::fp4_roundtrip(y.data() + r * p.d, p.d, 32);
        to_bits(y, o.i32(0));
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        float* d = reinterpret_cast<float*>(o.i32(0));
        DSV4_CUDA_CHECK(cudaMemcpy(d, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        return cuda::hadamard_rows(d, p.rows, p.d, p.fp4, dev.stream);
    }
#endif
};
DSV4_OP_CASES(HadamardCase, {1, 1, false}, {3, 2, false}, {5, 128, false}, {7, 512, false}, {2, 8192, false},
              {1024, 128, true}, {3, 64, true}, {9, 16, true}, {4, 1024, true});

// ------------------------------------------------------------------- FP8 operand of the GEMM (codes)
struct QuantizeActCase : OpCase {
    struct P {
        int64_t rows, rows_pad, K, pad_x;
    } p;
    cpu_vec x;  // [rows, K + pad_x]
    int64_t ldx() const { return p.K + p.pad_x; }
    std::string op() const override { return "fp8_quantize_act"; }
    std::string vars() const override {
        return fmt::format("rows={},rows_pad={},K={},ldx={}", p.rows, p.rows_pad, p.K, ldx());
    }
    void init(Rng& rng) override {
        x.assign(size_t(p.rows * ldx()), NAN);  // NaN padding: reading it would show
        for (int64_t r = 0; r < p.rows; ++r)
            for (int64_t b0 = 0; b0 < p.K; b0 += 128)
                fill_block(rng, x.data() + r * ldx() + b0, 128, int(rng.below(4)), true);
    }
    std::vector<OutSpec> outputs() const override {
        return {{"codes", OutKind::exact_i32, p.rows_pad * p.K / 4},
                {"scales", OutKind::exact_i32, (p.K / 128) * p.rows_pad}};
    }
    // The CPU rule: pow2_scale_e8m0 of the block amax (floor 1e-4), codes f32_to_e4m3(clamp(x / s)).
    void run_cpu(const Outs& o) override {
        std::vector<uint8_t> codes(size_t(p.rows_pad * p.K), 0);
        cpu_vec sc(size_t((p.K / 128) * p.rows_pad), 1.0f);
        for (int64_t r = 0; r < p.rows; ++r)
            for (int64_t kb = 0; kb < p.K / 128; ++kb) {
                const float* b = x.data() + r * ldx() + kb * 128;
                float amax = 0.0f;
                for (int i = 0; i < 128; ++i) amax = std::max(amax, std::fabs(b[i]));
                const float s = e8m0_to_f32(cpu::pow2_scale_e8m0(std::max(amax, 1e-4f), 448.0f));
                for (int i = 0; i < 128; ++i)
                    codes[size_t(r * p.K + kb * 128 + i)] =
                        f32_to_e4m3(std::clamp(b[i] * (1.0f / s), -448.0f, 448.0f));
                sc[size_t(kb * p.rows_pad + r)] = s;
                // the property the GEMM relies on: code·s is the CPU's FP8-rounded activation
                cpu_vec blk(b, b + 128);
                cpu::fp8_roundtrip(blk.data(), 128, 128);
                for (int i = 0; i < 128; ++i)
                    DSV4_ASSERT(e4m3_to_f32(codes[size_t(r * p.K + kb * 128 + i)]) * s == blk[size_t(i)] ||
                                    std::isnan(blk[size_t(i)]),
                                "code·scale differs from fp8_roundtrip");
            }
        std::memcpy(o.i32(0), codes.data(), codes.size());
        to_bits(sc, o.i32(1));
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        return cuda::fp8_quantize_act(dev.up(x), p.rows, ldx(), p.K, p.rows_pad,
                                      reinterpret_cast<uint8_t*>(o.i32(0)),
                                      reinterpret_cast<float*>(o.i32(1)), dev.stream);
    }
#endif
};
DSV4_OP_CASES(QuantizeActCase, {1, 4, 128, 0}, {16, 16, 4096, 0}, {37, 40, 1024, 3}, {300, 300, 256, 1});

// ----------------------------------------------------------- block-scaled FP8 tensor-core GEMM (dense)
// FP8 (128x128 scales) and FP4 (per-32 scales) weights; odd n (partial token tiles), N not a multiple of the
// 128-row CTA tile, padded x / y rows.
struct Fp8GemmCase : OpCase {
    struct P {
        DType dt;
        int64_t n, N, K, pad_x, pad_y;
        int spread = 0;  // FP4: lower one sub-scale in four by this many powers of two (far-apart sub-blocks)
    } p;
    HostWeight w;
    cpu_vec x;  // [n, ldx]
    int64_t ldx() const { return p.K + p.pad_x; }
    int64_t ldy() const { return p.N + p.pad_y; }
    std::string op() const override { return "fp8_gemm"; }
    std::string vars() const override {
        return fmt::format("type={},n={},N={},K={},ldx={},ldy={}{}", dtype_name(p.dt), p.n, p.N, p.K, ldx(),
                           ldy(), p.spread ? fmt::format(",spread={}", p.spread) : "");
    }
    void init(Rng& rng) override {
        w = random_weight(rng, p.dt, p.N, p.K);
        for (size_t i = 0; p.spread && i < w.scale.size(); i += 4)
            w.scale[i] = uint8_t(w.scale[i] - p.spread);
        x.assign(size_t(p.n * ldx()), NAN);
        for (int64_t i = 0; i < p.n; ++i)
            for (int64_t k = 0; k < p.K; ++k) x[size_t(i * ldx() + k)] = rng.uniform(-1.0f, 1.0f);
    }
    std::vector<OutSpec> outputs() const override { return {{"y", OutKind::f32, p.n * ldy()}}; }
    cpu_vec rounded_x() const {
        cpu_vec xr(size_t(p.n * p.K));
        for (int64_t i = 0; i < p.n; ++i) std::copy_n(x.begin() + i * ldx(), p.K, xr.begin() + i * p.K);
        cpu::fp8_roundtrip_rows(xr.data(), p.n, p.K, p.K, 128);
        return xr;
    }
    void run_cpu(const Outs& o) override {
        const cpu_vec xr = rounded_x();
        cpu_vec y(size_t(p.n * p.N));
        cpu::linear(xr.data(), p.n, w.ref, y.data());
        for (int64_t i = 0; i < p.n; ++i) std::copy_n(y.begin() + i * p.N, p.N, o.f(0) + i * ldy());
    }
    bool run_naive(const Outs& o) override {
        const cpu_vec xr = rounded_x(), wf = w.dequant();
        for (int64_t i = 0; i < p.n; ++i)
            for (int64_t r = 0; r < p.N; ++r) {
                double acc = 0.0;
                for (int64_t k = 0; k < p.K; ++k)
                    acc += double(xr[size_t(i * p.K + k)]) * wf[size_t(r * p.K + k)];
                o.f(0)[i * ldy() + r] = float(acc);
            }
        return true;
    }
    double max_err() const override { return 1e-4; }  // the mma.sync kernel: ~1e-6
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        const WeightRef d = dev.weight(w);
        if (!cuda::fp8_gemm_weight_ok(d)) return error("fp8_gemm_weight_ok refused the test weight");
        void* work = dev.alloc(size_t(cuda::fp8_gemm_work_bytes(p.n, p.K)));
        return cuda::fp8_gemm(dev.up(x), p.n, ldx(), d, o.f(0), ldy(), work, dev.stream);
    }
#endif
};
// The prefill shapes of the tiny model and real K = 4096 / 1024 / 2048 widths; FP4 sub-scales far apart.
const std::vector<Fp8GemmCase::P> kFp8GemmShapes{
    {DType::f8_e4m3, 16, 128, 128, 0, 0},     {DType::f8_e4m3, 17, 256, 128, 3, 4},
    {DType::f8_e4m3, 1, 128, 256, 0, 0},      {DType::f8_e4m3, 19, 384, 512, 1, 0},
    {DType::f8_e4m3, 64, 512, 1024, 0, 4},    {DType::f8_e4m3, 300, 256, 4096, 0, 0},
    {DType::f8_e4m3, 40, 2048, 128, 0, 0},    {DType::f8_e4m3, 129, 1000, 2048, 5, 8},
    {DType::f8_e4m3, 257, 200, 384, 0, 1},    {DType::fp4_e2m1, 16, 128, 128, 0, 0},
    {DType::fp4_e2m1, 33, 300, 512, 2, 3},    {DType::fp4_e2m1, 200, 2048, 4096, 0, 0},
    {DType::fp4_e2m1, 130, 4096, 2048, 0, 0}, {DType::fp4_e2m1, 3, 72, 256, 0, 0},
    {DType::fp4_e2m1, 70, 256, 512, 0, 0, 4}, {DType::fp4_e2m1, 70, 256, 512, 0, 0, 25},
};
DSV4_OP_CASES_V(Fp8GemmCase, kFp8GemmShapes);

// The wgmma kernel on the same shapes (op_harness.h OnFp8Kernel).
using Fp8GemmWgmma1 = OnFp8Kernel<Fp8GemmCase, 1>;
using Fp8GemmWgmma2 = OnFp8Kernel<Fp8GemmCase, 2>;
using Fp8GemmWgmma5 = OnFp8Kernel<Fp8GemmCase, 5>;
DSV4_OP_CASES_V(Fp8GemmWgmma1, kFp8GemmShapes);  // 128-token tiles
DSV4_OP_CASES(Fp8GemmWgmma2, {DType::f8_e4m3, 129, 1000, 2048, 5, 8}, {DType::fp4_e2m1, 33, 300, 512, 2, 3});
DSV4_OP_CASES(Fp8GemmWgmma5, {DType::f8_e4m3, 129, 1000, 2048, 5, 8}, {DType::fp4_e2m1, 33, 300, 512, 2, 3});

// ------------------------------------------------------------------------------------ scale_rows
struct ScaleRowsCase : OpCase {
    struct P {
        int64_t rows, d, pad;
    } p;
    cpu_vec x, w;
    int64_t ld() const { return p.d + p.pad; }
    std::string op() const override { return "scale_rows"; }
    std::string vars() const override { return fmt::format("rows={},d={},ld={}", p.rows, p.d, ld()); }
    void init(Rng& rng) override {
        x = rng.uniform_vec(p.rows * ld(), -2.0f, 2.0f);
        w = rng.uniform_vec(p.rows, 0.0f, 1.5f);
    }
    std::vector<OutSpec> outputs() const override { return {{"x", OutKind::exact_i32, p.rows * ld()}}; }
    void run_cpu(const Outs& o) override {
        cpu_vec y = x;
        for (int64_t r = 0; r < p.rows; ++r)
            for (int64_t i = 0; i < p.d; ++i) y[size_t(r * ld() + i)] *= w[size_t(r)];
        to_bits(y, o.i32(0));
    }
#if DSV4_HAVE_CUDA
    Status run_cuda(Dev& dev, const Outs& o) override {
        float* d = reinterpret_cast<float*>(o.i32(0));
        DSV4_CUDA_CHECK(cudaMemcpy(d, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
        return cuda::scale_rows(d, p.rows, ld(), p.d, dev.up(w), dev.stream);
    }
#endif
};
DSV4_OP_CASES(ScaleRowsCase, {1, 1, 0}, {300, 128, 3}, {7, 2048, 0});

}  // namespace

}  // namespace dsv4::testops
