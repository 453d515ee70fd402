// Device measurements used by `dsv4 bench` (bench_sm90.cu): the copy ceiling and per-kernel timings.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

// Device-to-device copy of `bytes`, counting bytes read + written; median of `reps` (GB/s).
Result<double> measure_copy_gbps(int64_t bytes, int reps);
// cuda::linear alone on random weights of (dt, N, K) and n_tok tokens, weights rotated over > 2× L2;
// median microseconds per call (event-bracketed, so it includes the isolated-launch cost).
Result<double> bench_linear_us(DType dt, int64_t n_tok, int64_t N, int64_t K, int reps);

}  // namespace dsv4::cuda
