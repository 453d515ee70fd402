// Numerics::reference on the CUDA backend vs the CPU reference (issue 6): the released-format FP8/FP4 tiny
// checkpoint, logits of a 42-token prefill (≥ 16 tokens: the FP8 tensor-core GEMM for the FP8 projections
// and the FP4 experts) and of 8 decode steps (FP8 rounding + GEMV, decode-batch compressor entries), within
// 1e-3 relative per position; the same with DSV4_FP8_GEMM=0 (rounding + exact fp32 linears everywhere), and
// the load default (reference for FP8 checkpoints on CUDA too). Skips without a CUDA build or device; the
// weight checks of the tensor-core kernels (fp8_gemm_weight_ok, linear_mma_ok) are host code and run
// wherever the CUDA backend is built.
#include <unistd.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <span>
#include <stdexcept>

#include "model_test_util.h"

#if DSV4_HAVE_CUDA
#include "ops/cuda/ops_cuda.h"
#endif

namespace dsv4 {
namespace {

using testing::max_row_rel_err;

using testing::have_device;

const std::string& quantized_dir() {
    static const std::string dir = [] {
        const std::string d =
            (std::filesystem::temp_directory_path() / ("dsv4_test_cuda_ref_" + std::to_string(::getpid())))
                .string();
        std::filesystem::remove_all(d);
        TinyOptions o;
        o.quantized = true;
        Status s = write_random_checkpoint(d, tiny_config(), o);
        if (!s.is_ok()) throw std::runtime_error(s.message());
        return d;
    }();
    return dir;
}

std::unique_ptr<Model> load(const std::string& backend, std::optional<Numerics> n) {
    LoadOptions o;
    o.backend = backend;
    o.verbose = false;
    o.numerics = n;
    auto m = Model::load(quantized_dir(), o);
    EXPECT_TRUE(m.is_ok()) << backend << ": " << m.message();
    return m.is_ok() ? std::move(m).value() : nullptr;
}

// Prefill of 42 tokens (all logits), then 8 decode steps fed with the CPU's greedy tokens.
void compare_reference(const char* what) {
    auto cpu = load("cpu", Numerics::reference), gpu = load("cuda", Numerics::reference);
    ASSERT_TRUE(cpu && gpu);
    ASSERT_EQ(gpu->numerics(), Numerics::reference);
    const int64_t V = cpu->config().vocab_size, T = 42;
    const auto ids = testing::random_ids(T, int(V), 17);
    auto sc = cpu->new_state(), sg = gpu->new_state();
    std::vector<float> lc, lg;
    ASSERT_TRUE(cpu->forward(*sc, ids, lc, true).is_ok());
    Status s = gpu->forward(*sg, ids, lg, true);
    ASSERT_TRUE(s.is_ok()) << s.message();
    int64_t worst = -1;
    double err = max_row_rel_err(lg.data(), lc.data(), T, V, &worst);
    std::printf("[ cuda-ref ] %s: prefill %lld positions, max per-position rel err %.3e (position %lld)\n",
                what, (long long)T, err, (long long)worst);
    EXPECT_LE(err, 1e-3) << what << " prefill: worst position " << worst;
    double worst_dec = 0.0;
    for (int step = 0; step < 8; ++step) {
        const int32_t next = int32_t(std::max_element(lc.end() - V, lc.end()) - (lc.end() - V));
        ASSERT_TRUE(cpu->forward(*sc, std::span(&next, 1), lc).is_ok());
        s = gpu->forward(*sg, std::span(&next, 1), lg);
        ASSERT_TRUE(s.is_ok()) << s.message();
        err = max_row_rel_err(lg.data(), lc.data(), 1, V);
        worst_dec = std::max(worst_dec, err);
        EXPECT_LE(err, 1e-3) << what << " decode step " << step;
    }
    std::printf("[ cuda-ref ] %s: 8 decode steps, max rel err %.3e\n", what, worst_dec);
}

TEST(CudaReference, QuantizedCheckpointMatchesCpu) {
    DSV4_REQUIRE_DEVICE();
    compare_reference("tiny quantized, reference numerics (FP8 GEMM for >= 16 tokens)");
}

TEST(CudaReference, WithoutFp8GemmMatchesCpu) {
    DSV4_REQUIRE_DEVICE();
    ::setenv("DSV4_FP8_GEMM", "0", 1);
    compare_reference("tiny quantized, reference numerics, DSV4_FP8_GEMM=0");
    ::unsetenv("DSV4_FP8_GEMM");
}

TEST(CudaReference, Fp8CheckpointDefaultsToReference) {  // CPU side of the default runs everywhere
    auto cpu = load("cpu", std::nullopt);
    ASSERT_TRUE(cpu);
    EXPECT_EQ(cpu->numerics(), Numerics::reference);
    if (!have_device()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
    auto gpu = load("cuda", std::nullopt);
    ASSERT_TRUE(gpu);
    EXPECT_EQ(gpu->numerics(), Numerics::reference);
}

#if DSV4_HAVE_CUDA
// What the tensor-core kernels refuse, so that callers fall back instead of launching on a layout the kernel
// cannot read; no device needed (both checks and fp8_gemm's refusal are host code).
TEST(CudaKernelLimits, TensorCoreKernelsRefuseLayoutsTheyCannotRead) {
    alignas(256) static uint8_t data[4096], scale[256];
    WeightRef fp8;
    fp8.dtype = DType::f8_e4m3, fp8.data = data, fp8.scale = scale, fp8.n_rows = 256, fp8.n_cols = 256;
    fp8.block_rows = fp8.block_cols = 128, fp8.scale_cols = 2;
    WeightRef fp4 = fp8;
    fp4.dtype = DType::fp4_e2m1, fp4.block_rows = 1, fp4.block_cols = 32, fp4.scale_cols = 8;
    EXPECT_TRUE(cuda::fp8_gemm_weight_ok(fp8));
    EXPECT_TRUE(cuda::fp8_gemm_weight_ok(fp4));
    auto with = [](WeightRef w, auto&& change) {
        change(w);
        return w;
    };
    // K not a multiple of 128, other scale blocks, a row view inside a block, misaligned codes, no scales,
    // a format the kernel has no path for
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp8, [](WeightRef& w) { w.n_cols = 192, w.scale_cols = 2; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp8, [](WeightRef& w) { w.block_rows = w.block_cols = 64; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp8, [](WeightRef& w) { w.scale_row0 = 64; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp8, [](WeightRef& w) { w.data = data + 8; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp8, [](WeightRef& w) { w.scale = nullptr; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp4, [](WeightRef& w) { w.block_cols = 16; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp4, [](WeightRef& w) { w.scale = scale + 2; })));
    EXPECT_FALSE(cuda::fp8_gemm_weight_ok(with(fp8, [](WeightRef& w) { w.dtype = DType::bf16; })));
    float y[4];
    const Status s = cuda::fp8_gemm(nullptr, 1, 192, with(fp8, [](WeightRef& w) { w.n_cols = 192; }), y, 256,
                                    nullptr, nullptr);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("unsupported call"), std::string::npos) << s.message();

    alignas(16) static float x[512];
    EXPECT_TRUE(cuda::linear_mma_ok(fp8, x, 256));
    EXPECT_TRUE(cuda::linear_mma_ok(fp4, x, 256));
    WeightRef bf = fp8;
    bf.dtype = DType::bf16, bf.scale = nullptr, bf.block_rows = bf.block_cols = 0, bf.scale_cols = 0;
    EXPECT_TRUE(cuda::linear_mma_ok(bf, x, 256));
    // K not a multiple of 4 chunks (64 FP8 / 128 FP4 / 32 bf16 values), misaligned x or rows of x, block
    // columns that are not a power of two, f32 / f16 weights (no exact bf16 form)
    EXPECT_FALSE(cuda::linear_mma_ok(with(fp8, [](WeightRef& w) { w.n_cols = 160; }), x, 256));
    EXPECT_FALSE(cuda::linear_mma_ok(with(fp4, [](WeightRef& w) { w.n_cols = 192; }), x, 256));
    EXPECT_FALSE(cuda::linear_mma_ok(with(bf, [](WeightRef& w) { w.n_cols = 48; }), x, 256));
    EXPECT_FALSE(cuda::linear_mma_ok(fp8, x + 1, 256));
    EXPECT_FALSE(cuda::linear_mma_ok(fp8, x, 258));
    EXPECT_FALSE(cuda::linear_mma_ok(with(fp8, [](WeightRef& w) { w.block_cols = 48; }), x, 256));
    EXPECT_FALSE(cuda::linear_mma_ok(with(bf, [](WeightRef& w) { w.dtype = DType::f16; }), x, 256));
    EXPECT_FALSE(cuda::linear_mma_ok(with(bf, [](WeightRef& w) { w.dtype = DType::f32; }), x, 256));
}

// A deferred Sinkhorn exists only on the workspace path (phase A would project comb, and hc_sinkhorn would
// then project it twice): hc_pre / hc_post_pre refuse defer without a workspace, before any launch; and
// hc_sinkhorn takes only the kernels' hc range. (No device needed: every call fails before the GPU.)
TEST(CudaKernelLimits, DeferredSinkhornNeedsTheWorkspacePath) {
    float buf[64] = {};
    const float* c = buf;
    const auto refused = [](const Status& s, const char* what) {
        EXPECT_FALSE(s.is_ok());
        if (!s.is_ok()) {
            EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
        }
    };
    refused(cuda::hc_pre(c, 1, 4, 4, c, c, c, 20, 1e-6, 1e-6, buf, buf, buf, nullptr, nullptr, nullptr, true),
            "deferred Sinkhorn needs the workspace");
    refused(cuda::hc_post_pre(c, c, c, c, 1, 4, 4, buf + 16, c, c, c, 20, 1e-6, 1e-6, nullptr, buf, buf, buf,
                              nullptr, nullptr, true),
            "deferred Sinkhorn needs the workspace");
    refused(cuda::hc_sinkhorn(buf, 1, 9, 20, 1e-6, nullptr), "hc_mult 9 outside");
    refused(cuda::hc_sinkhorn(buf, 1, 0, 20, 1e-6, nullptr), "hc_mult 0 outside");
}

// The kernels' tuning switches (DSV4_LINEAR_MMA, DSV4_FP8_MMA_VARIANT): unset or bad values give the default.
TEST(CudaKernelLimits, TuningSwitchesTakeOnlyTheirRange) {
    const char* name = "DSV4_TEST_ENV_CHOICE";
    unsetenv(name);
    EXPECT_EQ(cuda::env_choice(name, 1, 2), 1);
    for (const char* bad : {"", "x", "3", "-1", "1x", " 2"}) {
        setenv(name, bad, 1);
        EXPECT_EQ(cuda::env_choice(name, 1, 2), 1) << "'" << bad << "'";
    }
    setenv(name, "0", 1);
    EXPECT_EQ(cuda::env_choice(name, 1, 2), 0);
    setenv(name, "2", 1);
    EXPECT_EQ(cuda::env_choice(name, 1, 2), 2);
    unsetenv(name);
}
#endif

}  // namespace
}  // namespace dsv4
