// Block-scaled FP8 GEMM through cuBLASLt (issue 6, phase A of hopper-kernels.md §1): y = act_quant(x)·Wᵀ
// with W's 128x128 scales and x's 1x128 power-of-two scales, fp32 output. Layouts as verified on the device
// (hopper-kernels.md §1): column-major view, A = W as K×N (op T, BLK128x128 scales [N/128][K/128]), B = x
// codes as K×M (op N, VEC128 scales [K/128][M]), D = y as N×M (ld = ldy). Tested against cpu::linear on
// FP8-rounded x in tests/ops/op_cases_quant.cpp; note: docs/kernels/fp8_gemm.md.
#include <cublasLt.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "ops/cuda/common.cuh"
#include "core/log.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"
#include "ops/cuda/quant_sm90.cuh"

namespace dsv4::cuda {

namespace {

constexpr size_t kLtWorkspace = size_t(32) << 20;

int64_t round_up(int64_t a, int64_t b) {
    return (a + b - 1) / b * b;
}

// Largest power of two ≤ 256 dividing both the address and the row stride in bytes.
uint32_t alignment(const void* p, int64_t ld_bytes) {
    uint64_t v = uint64_t(reinterpret_cast<uintptr_t>(p)) | uint64_t(ld_bytes) | 256u;
    return uint32_t(v & (~v + 1));
}

// One GEMM shape: descriptors and the heuristic's algorithm (ok = false: cuBLASLt offers none).
struct Plan {
    bool ok = false;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    cublasLtMatmulAlgo_t algo{};
    ~Plan() {
        if (ld) cublasLtMatrixLayoutDestroy(ld);
        if (lb) cublasLtMatrixLayoutDestroy(lb);
        if (la) cublasLtMatrixLayoutDestroy(la);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }
};
using PlanKey = std::tuple<int64_t, int64_t, int64_t, int64_t, uint32_t>;  // M, N, K, ldy, D alignment

// Per (device, stream): handle, workspace, plans. Never freed (like linear's GEMM context).
struct LtCtx {
    std::mutex mu;
    cublasLtHandle_t h = nullptr;
    void* ws = nullptr;
    std::map<PlanKey, std::unique_ptr<Plan>> plans;
};

Result<LtCtx*> lt_ctx(cudaStream_t s) {
    static std::mutex mu;
    static std::map<std::pair<int, cudaStream_t>, std::unique_ptr<LtCtx>> all;
    int dev = 0;
    DSV4_CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> lock(mu);
    auto& c = all[{dev, s}];
    if (!c) {
        auto n = std::make_unique<LtCtx>();
        DSV4_CUBLAS_CHECK(cublasLtCreate(&n->h));
        DSV4_CUDA_CHECK(cudaMalloc(&n->ws, kLtWorkspace));
        c = std::move(n);
    }
    return c.get();
}

Status build_plan(LtCtx& c, const PlanKey& key, Plan& p) {
    const auto [M, N, K, ldy, align_d] = key;
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int32_t mode_a = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                  mode_b = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    DSV4_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode_a, sizeof(mode_a)));
    DSV4_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode_b, sizeof(mode_b)));
    DSV4_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.la, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(N), K));
    DSV4_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.lb, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(M), K));
    DSV4_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.ld, CUDA_R_32F, uint64_t(N), uint64_t(M), ldy));
    cublasLtMatmulPreference_t pref = nullptr;
    DSV4_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws_bytes = kLtWorkspace;
    const uint32_t a256 = 256;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                             &ws_bytes, sizeof(ws_bytes));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a256, 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &a256, 4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d,
                                                  4);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                                  4);
    cublasLtMatmulHeuristicResult_t heur{};
    int n_algo = 0;
    // The real scale pointers are set per call; the heuristic wants non-null ones (any device address).
    const void* placeholder = c.ws;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &placeholder,
                                            sizeof(placeholder));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &placeholder,
                                            sizeof(placeholder));
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(c.h, p.desc, p.la, p.lb, p.ld, p.ld, pref, 1, &heur, &n_algo);
    cublasLtMatmulPreferenceDestroy(pref);
    // NOT_SUPPORTED (or no result) means this combination has no kernel: the caller falls back.
    p.ok = st == CUBLAS_STATUS_SUCCESS && n_algo > 0;
    if (p.ok) p.algo = heur.algo;
    // NOT_SUPPORTED / INVALID_VALUE (seen on H200 with cuBLAS 13 for fp32 output): no kernel for this
    // combination; the caller takes the exact fallback (rounded x + cuda::linear). Said once per process.
    if (st != CUBLAS_STATUS_SUCCESS) {
        static std::once_flag once;
        std::call_once(once, [&] {
            log_warn(
                "cuBLASLt has no block-scaled FP8 GEMM with fp32 output here (M={} N={} K={}: {}); "
                "reference numerics use rounded activations + the fp32 linear instead",
                M, N, K, cublasGetStatusString(st));
        });
    }
    return Status::ok();
}

// The plan of a call (built on first use). Caller holds c.mu.
Result<Plan*> plan_for(LtCtx& c, int64_t M, int64_t N, int64_t K, const float* y, int64_t ldy) {
    const PlanKey key{M, N, K, ldy, alignment(y, ldy * 4)};
    auto& p = c.plans[key];
    if (!p) {
        auto n = std::make_unique<Plan>();
        DSV4_TRY(build_plan(c, key, *n));
        p = std::move(n);
    }
    return p.get();
}

__global__ void expand_scales_kernel(const uint8_t* s, int64_t count, float* out) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
         i += int64_t(gridDim.x) * blockDim.x)
        out[i] = q::e8m0_value(s[i]);
}

struct WorkLayout {
    int64_t codes, scales, rest, total;  // byte offsets from the 256-aligned base
};
WorkLayout work_layout(int64_t n, int64_t K) {
    const int64_t m4 = n & ~int64_t(3), rem = n - m4;
    WorkLayout l;
    l.codes = 0;
    l.scales = round_up(m4 * K, 256);
    l.rest = l.scales + round_up((K / 128) * m4 * 4, 256);
    l.total = l.rest + round_up(rem * K * 4, 256) + 256;  // + 256: base alignment slack
    return l;
}

}  // namespace

bool fp8_gemm_weight_ok(const WeightRef& w) {
    return w.dtype == DType::f8_e4m3 && w.scale && w.block_rows == 128 && w.block_cols == 128 &&
           w.scale_row0 == 0 && w.n_rows % 128 == 0 && w.n_cols % 128 == 0 &&
           w.scale_cols == w.n_cols / 128 && reinterpret_cast<uintptr_t>(w.data) % 256 == 0 &&
           reinterpret_cast<uintptr_t>(w.scale) % 4 == 0;
}

int64_t fp8_gemm_scale_floats(const WeightRef& w) {
    return (w.n_rows / 128) * (w.n_cols / 128);
}

Status fp8_gemm_expand_scales(const WeightRef& w, float* out, cudaStream_t s) {
    if (!fp8_gemm_weight_ok(w))
        return error("fp8_gemm_expand_scales: the weight is not a whole 128x128 FP8 weight");
    const int64_t count = fp8_gemm_scale_floats(w);
    expand_scales_kernel<<<std::min<unsigned>(ceil_div_u(count, 256), 1024u), 256, 0, s>>>(w.scale, count,
                                                                                           out);
    DSV4_CUDA_LAUNCH_CHECK("expand_scales_kernel");
    return Status::ok();
}

int64_t fp8_gemm_work_bytes(int64_t n, int64_t K) {
    return work_layout(n, K).total;
}

Result<bool> fp8_gemm_available(int64_t n, const WeightRef& w, const float* y, int64_t ldy, cudaStream_t s) {
    if (n < 4 || !fp8_gemm_weight_ok(w) || ldy < w.n_rows || alignment(y, ldy * 4) < 16) return false;
    LtCtx* c;
    DSV4_TRY_ASSIGN(c, lt_ctx(s));
    std::lock_guard<std::mutex> lock(c->mu);
    Plan* p;
    DSV4_TRY_ASSIGN(p, plan_for(*c, n & ~int64_t(3), w.n_rows, w.n_cols, y, ldy));
    return p->ok;
}

Status fp8_gemm(const float* x, int64_t n, int64_t ldx, const WeightRef& w, const float* w_scale, float* y,
                int64_t ldy, void* work, cudaStream_t s) {
    const int64_t N = w.n_rows, K = w.n_cols, M = n & ~int64_t(3), rem = n - M;
    if (n < 4 || !fp8_gemm_weight_ok(w) || ldx < K || ldy < N)
        return error("fp8_gemm: unsupported call (n={}, N={}, K={}, ldx={}, ldy={}, dtype {})", n, N, K, ldx,
                     ldy, dtype_name(w.dtype));
    const WorkLayout l = work_layout(n, K);
    auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(work) + 255) & ~uintptr_t(255));
    uint8_t* codes = base + l.codes;
    auto* xs = reinterpret_cast<float*>(base + l.scales);
    DSV4_TRY(fp8_quantize_act(x, M, ldx, K, M, codes, xs, s));
    LtCtx* c;
    DSV4_TRY_ASSIGN(c, lt_ctx(s));
    {
        std::lock_guard<std::mutex> lock(c->mu);
        Plan* p;
        DSV4_TRY_ASSIGN(p, plan_for(*c, M, N, K, y, ldy));
        if (!p->ok)
            return error(
                "fp8_gemm: cuBLASLt has no block-scaled FP8 algorithm with fp32 output for M={} N={} K={} "
                "ldy={} (check fp8_gemm_available first)",
                M, N, K, ldy);
        // The scale pointers are per call; the descriptor is read when the call is enqueued.
        DSV4_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                         &w_scale, sizeof(w_scale)));
        DSV4_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof(xs)));
        const float alpha = 1.0f, beta = 0.0f;
        DSV4_CUBLAS_CHECK(cublasLtMatmul(c->h, p->desc, &alpha, w.data, p->la, codes, p->lb, &beta, y, p->ld,
                                         y, p->ld, &p->algo, c->ws, kLtWorkspace, s));
    }
    if (rem > 0) {  // the last n % 4 rows: REF rounding, then the exact GEMV
        auto* xr = reinterpret_cast<float*>(base + l.rest);
        DSV4_TRY(fp8_roundtrip_rows(x + M * ldx, ldx, xr, K, rem, K, 128, s));
        DSV4_TRY(linear(xr, rem, K, w, y + M * ldy, ldy, s));
    }
    return Status::ok();
}

}  // namespace dsv4::cuda
