// Device measurements used by `dsv4 bench` (bench_sm90.cu): the copy and FLOP ceilings and per-kernel
// timings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

// Device-to-device copy of `bytes`, counting bytes read + written; median of `reps` (GB/s).
Result<double> measure_copy_gbps(int64_t bytes, int reps);
// FLOP ceilings of y [M, N] = x [M, K]·W [N, K]ᵀ on random inputs, median of `reps` event-bracketed calls
// after two warm-ups (TFLOP/s, 2·M·N·K FLOPs per call):
//   fp8:   cuBLASLt e4m3 × e4m3 (TN layout), fp32 compute, fast-accumulation off, unit scales, bf16 output;
//   sgemm: cublasSgemm in true fp32 (pedantic math, no TF32), the engine of cuda::linear for n ≥ 16.
Result<double> measure_fp8_gemm_tflops(int64_t M, int64_t N, int64_t K, int reps);
Result<double> measure_sgemm_tflops(int64_t M, int64_t N, int64_t K, int reps);
// cuda::linear alone on random weights of (dt, N, K) and n_tok tokens (any n_tok: n_tok ≥ 16 times the
// dequantize + SGEMM path, its scratch grown in the warm-up calls); groups > 1: one linear_grouped call over
// `groups` experts of n_tok pairs each (the routed experts of a decode step: groups 6, n_tok 1). Weights
// rotated over > 2× L2; `reps` calls back to back in one CUDA graph (as in a decode step), median
// microseconds per call over 4 graph launches.
// kind multi: one linear_multi over `groups` weights (each reading its own K columns of x: wo_a's groups);
// kind glu: one linear_grouped_glu (W1, W3 tables of `groups` experts; bytes of both).
enum class LinearBench { plain, multi, glu };
Result<double> bench_linear_us(DType dt, int64_t n_tok, int64_t N, int64_t K, int reps, int64_t groups = 1,
                               LinearBench kind = LinearBench::plain);
// One mHC site boundary (hc_post_pre with the sublayer RMSNorm, n tokens, fn sets rotated over > 2× L2)
// or the deferred Sinkhorn alone; reps chained calls in one CUDA graph, median µs per call.
enum class HcBench { post_pre, post_pre_deferred, sinkhorn };
Result<double> bench_hc_us(int64_t n, int64_t hc, int64_t D, int reps, HcBench kind);
// The FP8 tensor-core GEMM (fp8_gemm_sm90.cu) on random FP8 or FP4 weights, activations quantized once
// outside the timing: groups = 1 one dense fp8_gemm_q of M rows × (N, K); groups = E one fp8_gemm_grouped_q
// over E experts of M pairs each. Weight sets rotated over > 2× L2; verified first against FP8 rounding +
// cuda::linear. Median per call and the achieved TFLOP/s (2·groups·M·N·K per call).
struct Fp8GemmBench {
    double us_per_call = 0, tflops = 0, rel_err = 0;  // rel_err: ‖fp8_gemm − fp32 path‖ / ‖fp32 path‖
};
Result<Fp8GemmBench> bench_fp8_gemm(DType dt, int64_t groups, int64_t M, int64_t N, int64_t K, int reps);

// ---- bench_host.cpp: the current device and pinned uploads
struct DeviceInfo {
    std::string name;                         // "NVIDIA H200"
    int64_t free_bytes = 0, total_bytes = 0;  // cudaMemGetInfo (creates the context if there is none yet)
    int sm_count = 0, cc_major = 0, cc_minor = 0;
};
Result<DeviceInfo> device_info();
// Page-locks existing host memory (cudaHostRegister) so uploads from it run at full PCIe speed; undo with
// host_unregister before the memory is freed.
Status host_register(void* p, size_t bytes);
void host_unregister(void* p);

}  // namespace dsv4::cuda
