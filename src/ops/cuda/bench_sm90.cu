// Measurements for `dsv4 bench` (style.md §7: verify before timing, events, median of many runs, inputs
// rotated over more than 2× L2 where the op is memory-bound): the device-to-device copy ceiling, the
// FLOP ceilings (cuBLASLt FP8 GEMM, true-fp32 cuBLAS SGEMM) and cuda::linear alone at one shape.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "ops/cuda/common.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_bench.h"

namespace dsv4::cuda {

namespace {

// Finite bytes for any format: clear bit 0 of FP8 codes that would be NaN (0x7f, 0xff); e8m0 scales 120..130.
__global__ void fill_kernel(uint8_t* p, int64_t n, uint64_t seed, int mode) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        uint64_t z = (uint64_t(i) + seed) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
        uint8_t b = uint8_t(z >> 40);
        if (mode == 1 && (b & 0x7f) == 0x7f) b ^= 1;  // fp8 data
        if (mode == 2) b = uint8_t(120 + (b % 11));   // e8m0 scales
        if (mode == 3) b = (b & 0x3f) | 0x00;         // bf16 bytes: small exponents (finite); also f32
        p[i] = b;
    }
}

Status fill(void* p, int64_t n, uint64_t seed, int mode) {
    fill_kernel<<<1024, 256>>>(static_cast<uint8_t*>(p), n, seed, mode);
    DSV4_CUDA_LAUNCH_CHECK("fill_kernel");
    return Status::ok();
}

// f32 uniform in [-1, 1) (SGEMM inputs: normal numbers, no denormals).
__global__ void fill_f32_kernel(float* p, int64_t n, uint64_t seed) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        uint64_t z = (uint64_t(i) + seed) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
        p[i] = float(int64_t(z >> 40) - (int64_t(1) << 23)) * 0x1.0p-23f;
    }
}

// Runs the registered releases (frees, destroys) in reverse order when the measurement returns.
struct Cleanup {
    std::vector<std::function<void()>> fns;
    ~Cleanup() {
        for (auto it = fns.rbegin(); it != fns.rend(); ++it) (*it)();
    }
};

// The start/stop events of a timed loop, destroyed with c.
Status timing_events(Cleanup& c, cudaEvent_t& e0, cudaEvent_t& e1) {
    DSV4_CUDA_CHECK(cudaEventCreate(&e0));
    c.fns.push_back([e0] { cudaEventDestroy(e0); });
    DSV4_CUDA_CHECK(cudaEventCreate(&e1));
    c.fns.push_back([e1] { cudaEventDestroy(e1); });
    return Status::ok();
}

Status dev_alloc(Cleanup& c, void** p, int64_t bytes) {
    DSV4_CUDA_CHECK(cudaMalloc(p, size_t(bytes)));
    void* q = *p;
    c.fns.push_back([q] { cudaFree(q); });
    return Status::ok();
}

double median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : double(v[v.size() / 2]);
}

}  // namespace

Result<double> measure_copy_gbps(int64_t bytes, int reps) {
    void *a = nullptr, *b = nullptr;
    DSV4_CUDA_CHECK(cudaMalloc(&a, size_t(bytes)));
    DSV4_CUDA_CHECK(cudaMalloc(&b, size_t(bytes)));
    DSV4_TRY(fill(a, bytes, 1, 0));
    cudaEvent_t e0, e1;
    DSV4_CUDA_CHECK(cudaEventCreate(&e0));
    DSV4_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;
    for (int r = 0; r < reps + 2; ++r) {
        DSV4_CUDA_CHECK(cudaEventRecord(e0));
        DSV4_CUDA_CHECK(cudaMemcpyAsync(b, a, size_t(bytes), cudaMemcpyDeviceToDevice));
        DSV4_CUDA_CHECK(cudaEventRecord(e1));
        DSV4_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 2) ms.push_back(t);  // two warm-ups
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * double(bytes) / (median(ms) * 1e-3) / 1e9;  // read + write
}

Result<double> measure_fp8_gemm_tflops(int64_t M, int64_t N, int64_t K, int reps) {
    // y [M, N] bf16 = x [M, K] e4m3 · W [N, K]ᵀ e4m3, fp32 accumulation, unit scales. cuBLASLt column-major
    // view, the "TN" layout FP8 needs on Hopper: A = W as K×N (op T), B = x as K×M (op N), D = N×M.
    Cleanup c;
    void *W = nullptr, *X = nullptr, *Y = nullptr, *ws = nullptr;
    const size_t ws_bytes = size_t(32) << 20;
    DSV4_TRY(dev_alloc(c, &W, N * K));
    DSV4_TRY(dev_alloc(c, &X, M * K));
    DSV4_TRY(dev_alloc(c, &Y, M * N * 2));
    DSV4_TRY(dev_alloc(c, &ws, int64_t(ws_bytes)));
    DSV4_TRY(fill(W, N * K, 11, 1));
    DSV4_TRY(fill(X, M * K, 12, 1));
    cublasLtHandle_t h = nullptr;
    DSV4_CUBLAS_CHECK(cublasLtCreate(&h));
    c.fns.push_back([h] { cublasLtDestroy(h); });
    cublasLtMatmulDesc_t desc = nullptr;
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    c.fns.push_back([desc] { cublasLtMatmulDescDestroy(desc); });
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int8_t fast_accum = 0;  // full fp32 promotion of the tensor-core partial sums
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    DSV4_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast_accum,
                                                     sizeof(fast_accum)));
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    DSV4_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(N), K));
    c.fns.push_back([la] { cublasLtMatrixLayoutDestroy(la); });
    DSV4_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, uint64_t(K), uint64_t(M), K));
    c.fns.push_back([lb] { cublasLtMatrixLayoutDestroy(lb); });
    DSV4_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, uint64_t(N), uint64_t(M), N));
    c.fns.push_back([ld] { cublasLtMatrixLayoutDestroy(ld); });
    cublasLtMatmulPreference_t pref = nullptr;
    DSV4_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    c.fns.push_back([pref] { cublasLtMatmulPreferenceDestroy(pref); });
    DSV4_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &ws_bytes, sizeof(ws_bytes)));
    cublasLtMatmulHeuristicResult_t heur{};
    int n_algo = 0;
    DSV4_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, ld, ld, pref, 1, &heur, &n_algo));
    if (n_algo == 0)
        return error("measure_fp8_gemm_tflops: no cuBLASLt FP8 algorithm for M={} N={} K={}", M, N, K);
    const float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t e0, e1;
    DSV4_TRY(timing_events(c, e0, e1));
    std::vector<float> ms;
    for (int r = 0; r < reps + 2; ++r) {
        DSV4_CUDA_CHECK(cudaEventRecord(e0));
        DSV4_CUBLAS_CHECK(cublasLtMatmul(h, desc, &alpha, W, la, X, lb, &beta, Y, ld, Y, ld, &heur.algo, ws,
                                         ws_bytes, nullptr));
        DSV4_CUDA_CHECK(cudaEventRecord(e1));
        DSV4_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 2) ms.push_back(t);  // two warm-ups
    }
    return 2.0 * double(M) * double(N) * double(K) / (median(ms) * 1e-3) / 1e12;
}

Result<double> measure_sgemm_tflops(int64_t M, int64_t N, int64_t K, int reps) {
    // The same TN product in f32 through cublasSgemm with pedantic math (true fp32, no TF32): the ceiling
    // of cuda::linear's GEMM path.
    Cleanup c;
    void *W = nullptr, *X = nullptr, *Y = nullptr;
    DSV4_TRY(dev_alloc(c, &W, N * K * 4));
    DSV4_TRY(dev_alloc(c, &X, M * K * 4));
    DSV4_TRY(dev_alloc(c, &Y, M * N * 4));
    fill_f32_kernel<<<1024, 256>>>(static_cast<float*>(W), N * K, 21);
    DSV4_CUDA_LAUNCH_CHECK("fill_f32_kernel");
    fill_f32_kernel<<<1024, 256>>>(static_cast<float*>(X), M * K, 22);
    DSV4_CUDA_LAUNCH_CHECK("fill_f32_kernel");
    cublasHandle_t h = nullptr;
    DSV4_CUBLAS_CHECK(cublasCreate(&h));
    c.fns.push_back([h] { cublasDestroy(h); });
    DSV4_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
    const float alpha = 1.0f, beta = 0.0f;
    cudaEvent_t e0, e1;
    DSV4_TRY(timing_events(c, e0, e1));
    std::vector<float> ms;
    for (int r = 0; r < reps + 2; ++r) {
        DSV4_CUDA_CHECK(cudaEventRecord(e0));
        DSV4_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha,
                                      static_cast<const float*>(W), int(K), static_cast<const float*>(X),
                                      int(K), &beta, static_cast<float*>(Y), int(N)));
        DSV4_CUDA_CHECK(cudaEventRecord(e1));
        DSV4_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 2) ms.push_back(t);
    }
    return 2.0 * double(M) * double(N) * double(K) / (median(ms) * 1e-3) / 1e12;
}

// The chunk table of `groups` experts of per_group pairs each (pair p belongs to expert p / per_group), as
// moe_group builds it for rows_per_chunk, in buffers owned by c.
struct BenchChunks {
    int32_t *perm = nullptr, *chunks = nullptr, *n_chunks = nullptr;
    int64_t max_chunks = 0;
};
Status bench_chunks(Cleanup& c, int64_t groups, int64_t per_group, int rows_per_chunk, BenchChunks& out) {
    const int64_t rows = groups * per_group;
    std::vector<int32_t> esel(static_cast<size_t>(rows));
    for (int64_t p = 0; p < rows; ++p) esel[size_t(p)] = int32_t(p / per_group);
    out.max_chunks = moe_max_chunks(rows, groups, rows_per_chunk);
    void *de = nullptr, *dp = nullptr, *dc = nullptr, *dn = nullptr, *dsc = nullptr;
    DSV4_TRY(dev_alloc(c, &de, rows * 4));
    DSV4_TRY(dev_alloc(c, &dp, rows * 4));
    DSV4_TRY(dev_alloc(c, &dc, 3 * out.max_chunks * 4));
    DSV4_TRY(dev_alloc(c, &dn, 4));
    DSV4_TRY(dev_alloc(c, &dsc, (groups + 1) * 4));
    DSV4_CUDA_CHECK(cudaMemcpy(de, esel.data(), esel.size() * 4, cudaMemcpyHostToDevice));
    out.perm = static_cast<int32_t*>(dp), out.chunks = static_cast<int32_t*>(dc),
    out.n_chunks = static_cast<int32_t*>(dn);
    return moe_group(static_cast<int32_t*>(de), rows, groups, out.perm, out.chunks, out.n_chunks,
                     static_cast<int32_t*>(dsc), nullptr, rows_per_chunk);
}

// A device copy of an expert table, owned by c.
Result<DevWeight*> upload_table(Cleanup& c, const std::vector<DevWeight>& t) {
    void* d = nullptr;
    DSV4_TRY(dev_alloc(c, &d, int64_t(t.size() * sizeof(DevWeight))));
    DSV4_CUDA_CHECK(cudaMemcpy(d, t.data(), t.size() * sizeof(DevWeight), cudaMemcpyHostToDevice));
    return static_cast<DevWeight*>(d);
}

// run(r) for r = 0 .. reps−1 back to back in one CUDA graph on st, as in a decode step (launch gaps overlap
// as there); median microseconds per call over 4 graph launches (after one warm-up launch).
Result<double> graph_us(Cleanup& c, cudaStream_t st, int reps, const std::function<Status(int)>& run) {
    cudaGraph_t graph = nullptr;
    DSV4_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    Status cap = Status::ok();
    for (int r = 0; r < reps && cap.is_ok(); ++r) cap = run(r);
    const cudaError_t end = cudaStreamEndCapture(st, &graph);
    if (graph) c.fns.push_back([graph] { cudaGraphDestroy(graph); });
    DSV4_TRY(cap);
    DSV4_CUDA_CHECK(end);
    cudaGraphExec_t exec = nullptr;
    DSV4_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    c.fns.push_back([exec] { cudaGraphExecDestroy(exec); });
    cudaEvent_t e0, e1;
    DSV4_TRY(timing_events(c, e0, e1));
    std::vector<float> ms;
    for (int r = 0; r < 5; ++r) {
        DSV4_CUDA_CHECK(cudaEventRecord(e0, st));
        DSV4_CUDA_CHECK(cudaGraphLaunch(exec, st));
        DSV4_CUDA_CHECK(cudaEventRecord(e1, st));
        DSV4_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 1) ms.push_back(t / float(reps));
    }
    return median(ms) * 1e3;
}

Result<double> bench_linear_us(DType dt, int64_t n_tok, int64_t N, int64_t K, int reps, int64_t groups,
                               LinearBench kind) {
    if (groups < 1) return error("bench_linear_us: groups = {}", groups);
    const bool multi = kind == LinearBench::multi, glu = kind == LinearBench::glu;
    Cleanup c;
    WeightRef w;
    w.dtype = dt;
    w.n_rows = N;
    w.n_cols = K;
    int64_t data_b = dtype_bytes(dt, N * K), scale_b = 0;
    if (dt == DType::f8_e4m3) {
        w.block_rows = w.block_cols = 128;
        w.scale_cols = (K + 127) / 128;
        scale_b = ((N + 127) / 128) * w.scale_cols;
    } else if (dt == DType::fp4_e2m1) {
        w.block_rows = 1;
        w.block_cols = 32;
        w.scale_cols = K / 32;
        scale_b = N * (K / 32);
    }
    // enough weight sets (one weight, or a table of `groups` experts) to cover > 2× a 60 MB L2
    const int64_t set_b = groups * std::max<int64_t>(data_b, 1);
    const int copies = int(std::max<int64_t>(2, (int64_t(128) << 20) / set_b + 1));
    std::vector<WeightRef> ws;
    std::vector<DevWeight*> tables;
    for (int cp = 0; cp < copies; ++cp) {
        std::vector<DevWeight> t;
        for (int64_t g = 0; g < groups; ++g) {
            void *d = nullptr, *sb = nullptr;
            const uint64_t seed = uint64_t(cp * groups + g);
            DSV4_TRY(dev_alloc(c, &d, data_b));
            DSV4_TRY(fill(d, data_b, 10 + seed, dt == DType::f8_e4m3 ? 1 : (dt == DType::fp4_e2m1 ? 0 : 3)));
            if (scale_b) {
                DSV4_TRY(dev_alloc(c, &sb, scale_b));
                DSV4_TRY(fill(sb, scale_b, 100 + seed, 2));
            }
            WeightRef r = w;
            r.data = d;
            r.scale = static_cast<const uint8_t*>(sb);
            if (g == 0 || multi) ws.push_back(r);
            t.push_back(DevWeight::from(r));
        }
        if (groups > 1 && !multi) {
            DSV4_TRY_ASSIGN(DevWeight * d, upload_table(c, t));
            tables.push_back(d);
        }
    }
    // grouped: pair p belongs to expert p / n_tok; multi: n_tok rows of groups·K columns (groups·N out)
    const int64_t rows = groups * n_tok;
    void *x = nullptr, *y = nullptr;
    DSV4_TRY(dev_alloc(c, &x, rows * K * 4));
    DSV4_TRY(dev_alloc(c, &y, rows * N * 4));
    DSV4_CUDA_CHECK(cudaMemset(x, 0x3c, size_t(rows * K) * 4));  // ~0.01, finite
    BenchChunks ch;
    if (groups > 1 && !multi) DSV4_TRY(bench_chunks(c, groups, n_tok, 8, ch));
    void *g_buf = nullptr, *u_buf = nullptr;
    if (glu) {
        DSV4_TRY(dev_alloc(c, &g_buf, rows * N * 4));
        DSV4_TRY(dev_alloc(c, &u_buf, rows * N * 4));
    }
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());  // the fills (legacy stream) before the timed stream
    cudaStream_t st = nullptr;
    DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    c.fns.push_back([st] { cudaStreamDestroy(st); });
    auto run = [&](int cp) -> Status {
        float *xf = static_cast<float*>(x), *yf = static_cast<float*>(y);
        if (multi) {
            std::vector<LinearSeg> segs;
            for (int64_t g = 0; g < groups; ++g)
                segs.push_back({xf + g * K, groups * K, ws[size_t(cp * groups + g)], yf + g * N, groups * N});
            return linear_multi(segs.data(), int(segs.size()), n_tok, st);
        }
        if (glu)
            return linear_grouped_glu(xf, rows, K, 1, tables[size_t(cp)], tables[size_t((cp + 1) % copies)],
                                      ws[0], ch.perm, ch.chunks, ch.n_chunks, ch.max_chunks, 0.0,
                                      static_cast<float*>(g_buf), static_cast<float*>(u_buf), yf, st, n_tok);
        if (groups == 1)
            return linear(static_cast<float*>(x), n_tok, K, ws[size_t(cp)], static_cast<float*>(y), N, st);
        return linear_grouped(static_cast<float*>(x), rows, K, 1, tables[size_t(cp)], ws[0], ch.perm,
                              ch.chunks, ch.n_chunks, ch.max_chunks, static_cast<float*>(y), N, st, n_tok);
    };
    for (int r = 0; r < 3; ++r) DSV4_TRY(run(r % copies));  // warm-up: grows the GEMM scratch
    DSV4_CUDA_CHECK(cudaStreamSynchronize(st));
    return graph_us(c, st, reps, [&](int r) { return run(r % copies); });
}

Result<Fp8GemmBench> bench_fp8_gemm(DType dt, int64_t groups, int64_t M, int64_t N, int64_t K, int reps) {
    // groups == 1: fp8_gemm_q of M rows on one weight; groups > 1: one fp8_gemm_grouped_q over groups
    // experts of M pairs each (x_div 1, chunks from moe_group). Activations quantized once, outside the
    // timing; weight sets rotated so that > 2× a 60 MB L2 is touched. Verified first (expert 0 / the dense
    // weight) against FP8 rounding + cuda::linear (exact fp32).
    if (dt != DType::f8_e4m3 && dt != DType::fp4_e2m1)
        return error("bench_fp8_gemm: weights must be FP8 or FP4, not {}", dtype_name(dt));
    Cleanup c;
    const bool fp4 = dt == DType::fp4_e2m1;
    const int64_t w_bytes = dtype_bytes(dt, N * K);
    const int64_t s_bytes = fp4 ? N * (K / 32) : ((N + 127) / 128) * (K / 128);
    const int64_t sets =
        std::max<int64_t>(1, (int64_t(128) << 20) / std::max<int64_t>(groups * w_bytes, 1) + 1);
    std::vector<std::vector<DevWeight>> tables(static_cast<size_t>(sets));
    WeightRef proto;
    for (int64_t si = 0; si < sets; ++si)
        for (int64_t g = 0; g < groups; ++g) {
            void *d = nullptr, *sb = nullptr;
            DSV4_TRY(dev_alloc(c, &d, w_bytes));
            DSV4_TRY(dev_alloc(c, &sb, s_bytes));
            DSV4_TRY(fill(d, w_bytes, 40 + uint64_t(si * groups + g), fp4 ? 0 : 1));
            DSV4_TRY(fill(sb, s_bytes, 900 + uint64_t(si * groups + g), 2));
            WeightRef w;
            w.dtype = dt;
            w.n_rows = N;
            w.n_cols = K;
            w.block_rows = fp4 ? 1 : 128;
            w.block_cols = fp4 ? 32 : 128;
            w.scale_cols = fp4 ? K / 32 : K / 128;
            w.data = d;
            w.scale = static_cast<const uint8_t*>(sb);
            if (si == 0 && g == 0) proto = w;
            tables[size_t(si)].push_back(DevWeight::from(w));
        }
    const int64_t rows = groups * M;
    void *x = nullptr, *y = nullptr, *yr = nullptr, *xr = nullptr, *xq = nullptr, *xs = nullptr;
    DSV4_TRY(dev_alloc(c, &x, rows * K * 4));
    DSV4_TRY(dev_alloc(c, &y, rows * N * 4));
    DSV4_TRY(dev_alloc(c, &yr, M * N * 4));
    DSV4_TRY(dev_alloc(c, &xr, M * K * 4));
    DSV4_TRY(dev_alloc(c, &xq, rows * K));
    DSV4_TRY(dev_alloc(c, &xs, rows * (K / 128) * 4));
    auto* xf = static_cast<float*>(x);
    auto* yf = static_cast<float*>(y);
    auto* q = static_cast<uint8_t*>(xq);
    auto* qs = static_cast<float*>(xs);
    fill_f32_kernel<<<1024, 256>>>(xf, rows * K, 77);
    DSV4_CUDA_LAUNCH_CHECK("fill_f32_kernel");
    DSV4_TRY(fp8_quantize_act(xf, rows, K, K, rows, q, qs, nullptr));
    // grouped: pair p belongs to expert p / M; device tables of every set, the chunk table once
    std::vector<DevWeight*> d_tables;
    BenchChunks ch;
    if (groups > 1) {
        for (auto& t : tables) {
            DSV4_TRY_ASSIGN(DevWeight * d, upload_table(c, t));
            d_tables.push_back(d);
        }
        DSV4_TRY(bench_chunks(c, groups, M, int(fp8_gemm_group_rows()), ch));
    }
    auto run = [&](int64_t set) -> Status {
        if (groups == 1) {
            WeightRef w = proto;
            w.data = tables[size_t(set)][0].data;
            w.scale = tables[size_t(set)][0].scale;
            return fp8_gemm_q(q, qs, rows, rows, w, yf, N, nullptr);
        }
        return fp8_gemm_grouped_q(q, qs, rows, 1, d_tables[size_t(set)], proto, ch.perm, ch.chunks,
                                  ch.n_chunks, ch.max_chunks, yf, N, nullptr);
    };
    DSV4_TRY(run(0));
    DSV4_TRY(fp8_roundtrip_rows(xf, K, static_cast<float*>(xr), K, M, K, 128, nullptr));
    DSV4_TRY(linear(static_cast<float*>(xr), M, K, proto, static_cast<float*>(yr), N, nullptr));
    std::vector<float> va(static_cast<size_t>(M * N)), vb(static_cast<size_t>(M * N));
    DSV4_CUDA_CHECK(cudaMemcpy(va.data(), y, va.size() * 4, cudaMemcpyDeviceToHost));
    DSV4_CUDA_CHECK(cudaMemcpy(vb.data(), yr, vb.size() * 4, cudaMemcpyDeviceToHost));
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < va.size(); ++i) {
        const double d = double(va[i]) - double(vb[i]);
        num += d * d;
        den += double(vb[i]) * double(vb[i]);
    }
    Fp8GemmBench r;
    r.rel_err = std::sqrt(num / std::max(den, 1e-300));
    if (!(r.rel_err <= 1e-3))
        return error("bench_fp8_gemm: {} M={} N={} K={}: rel err {} vs the fp32 path", dtype_name(dt), M, N,
                     K, r.rel_err);
    cudaEvent_t e0, e1;
    DSV4_TRY(timing_events(c, e0, e1));
    std::vector<float> ms;
    for (int rep = 0; rep < reps + 2; ++rep) {
        DSV4_CUDA_CHECK(cudaEventRecord(e0));
        DSV4_TRY(run(rep % sets));
        DSV4_CUDA_CHECK(cudaEventRecord(e1));
        DSV4_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (rep >= 2) ms.push_back(t);  // two warm-ups
    }
    const double t_ms = median(ms);
    r.us_per_call = t_ms * 1e3;
    r.tflops = 2.0 * double(rows) * double(N) * double(K) / (t_ms * 1e-3) / 1e12;
    return r;
}

Result<double> bench_hc_us(int64_t n, int64_t hc, int64_t D, int reps, HcBench kind) {
    Cleanup c;
    const int64_t M = (2 + hc) * hc, len = hc * D;
    // fn sets (1.5 MB each at Flash size) rotated over > 2× a 60 MB L2, as each site reads its own from DRAM
    const int copies = int(std::max<int64_t>(2, (int64_t(128) << 20) / (M * len * 4) + 1));
    std::vector<float*> fns;
    for (int cp = 0; cp < copies; ++cp) {
        void* f = nullptr;
        DSV4_TRY(dev_alloc(c, &f, M * len * 4));
        fill_f32_kernel<<<256, 256>>>(static_cast<float*>(f), M * len, 7 + uint64_t(cp));
        DSV4_CUDA_LAUNCH_CHECK("fill_f32_kernel");
        fns.push_back(static_cast<float*>(f));
    }
    void *X = nullptr, *X2 = nullptr, *F = nullptr, *y = nullptr, *post = nullptr, *comb = nullptr,
         *base = nullptr, *sc = nullptr, *w = nullptr, *work = nullptr;
    DSV4_TRY(dev_alloc(c, &X, n * len * 4));
    DSV4_TRY(dev_alloc(c, &X2, n * len * 4));
    DSV4_TRY(dev_alloc(c, &F, n * D * 4));
    DSV4_TRY(dev_alloc(c, &y, n * D * 4));
    DSV4_TRY(dev_alloc(c, &post, n * hc * 4));
    DSV4_TRY(dev_alloc(c, &comb, n * hc * hc * 4));
    DSV4_TRY(dev_alloc(c, &base, M * 4));
    DSV4_TRY(dev_alloc(c, &sc, 3 * 4));
    DSV4_TRY(dev_alloc(c, &w, D * 4));
    DSV4_TRY(dev_alloc(c, &work, std::max<int64_t>(hc_work_floats(n, hc, D), 1) * 4));
    fill_f32_kernel<<<256, 256>>>(static_cast<float*>(X), n * len, 1);
    fill_f32_kernel<<<256, 256>>>(static_cast<float*>(F), n * D, 2);
    DSV4_CUDA_LAUNCH_CHECK("fill_f32_kernel");
    // gates and weights of a plausible site: post 1, comb 1/hc (a doubly stochastic start), base 0, scale
    // 1, norm weight ~1 — the values only need to stay finite over `reps` chained sites
    std::vector<float> hpost(size_t(n * hc), 1.0f), hcomb(size_t(n * hc * hc), 1.0f / float(hc)),
        hbase(size_t(M), 0.0f), hsc(3, 1.0f), hw(size_t(D), 1.0f);
    DSV4_CUDA_CHECK(cudaMemcpy(post, hpost.data(), hpost.size() * 4, cudaMemcpyHostToDevice));
    DSV4_CUDA_CHECK(cudaMemcpy(comb, hcomb.data(), hcomb.size() * 4, cudaMemcpyHostToDevice));
    DSV4_CUDA_CHECK(cudaMemcpy(base, hbase.data(), hbase.size() * 4, cudaMemcpyHostToDevice));
    DSV4_CUDA_CHECK(cudaMemcpy(sc, hsc.data(), hsc.size() * 4, cudaMemcpyHostToDevice));
    DSV4_CUDA_CHECK(cudaMemcpy(w, hw.data(), hw.size() * 4, cudaMemcpyHostToDevice));
    DSV4_CUDA_CHECK(cudaDeviceSynchronize());
    cudaStream_t st = nullptr;
    DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    c.fns.push_back([st] { cudaStreamDestroy(st); });
    auto run = [&](int r) -> Status {
        float *xi = static_cast<float*>(r % 2 ? X2 : X), *xo = static_cast<float*>(r % 2 ? X : X2);
        float *p = static_cast<float*>(post), *cb = static_cast<float*>(comb);
        if (kind == HcBench::sinkhorn) return hc_sinkhorn(cb, n, hc, 20, 1e-6, st);
        return hc_post_pre(xi, static_cast<float*>(F), p, cb, n, hc, D, xo, fns[size_t(r % copies)],
                           static_cast<float*>(base), static_cast<float*>(sc), 20, 1e-6, 1e-6,
                           static_cast<float*>(w), static_cast<float*>(y), p, cb, static_cast<float*>(work),
                           st, kind == HcBench::post_pre_deferred);
    };
    for (int r = 0; r < 2; ++r) DSV4_TRY(run(r));  // warm-up: the stream's arrival counters
    DSV4_CUDA_CHECK(cudaStreamSynchronize(st));
    return graph_us(c, st, reps, run);
}

}  // namespace dsv4::cuda
