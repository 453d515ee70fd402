// Measurements for `dsv4 bench` (style.md §7: verify before timing, events, median of many runs, inputs
// rotated over more than 2× L2): the device-to-device copy ceiling and the linear kernel alone at one
// shape. Results are medians in microseconds.
#include <algorithm>
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

Result<double> bench_linear_us(DType dt, int64_t n_tok, int64_t N, int64_t K, int reps) {
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
    // enough copies of the weight to cover > 2× a 60 MB L2
    const int copies = int(std::max<int64_t>(2, (int64_t(128) << 20) / std::max<int64_t>(data_b, 1) + 1));
    std::vector<void*> bufs;
    auto cleanup = [&] {
        for (void* p : bufs) cudaFree(p);
    };
    std::vector<WeightRef> ws;
    for (int c = 0; c < copies; ++c) {
        void *d = nullptr, *s = nullptr;
        DSV4_CUDA_CHECK(cudaMalloc(&d, size_t(data_b)));
        bufs.push_back(d);
        DSV4_TRY(fill(d, data_b, 10 + c, dt == DType::f8_e4m3 ? 1 : (dt == DType::fp4_e2m1 ? 0 : 3)));
        if (scale_b) {
            DSV4_CUDA_CHECK(cudaMalloc(&s, size_t(scale_b)));
            bufs.push_back(s);
            DSV4_TRY(fill(s, scale_b, 100 + c, 2));
        }
        WeightRef r = w;
        r.data = d;
        r.scale = static_cast<const uint8_t*>(s);
        ws.push_back(r);
    }
    float *x = nullptr, *y = nullptr;
    DSV4_CUDA_CHECK(cudaMalloc(&x, size_t(n_tok * K) * 4));
    bufs.push_back(x);
    DSV4_CUDA_CHECK(cudaMalloc(&y, size_t(n_tok * N) * 4));
    bufs.push_back(y);
    DSV4_CUDA_CHECK(cudaMemset(x, 0x3c, size_t(n_tok * K) * 4));  // ~0.01, finite
    cudaEvent_t e0, e1;
    DSV4_CUDA_CHECK(cudaEventCreate(&e0));
    DSV4_CUDA_CHECK(cudaEventCreate(&e1));
    std::vector<float> ms;
    for (int r = 0; r < reps + 3; ++r) {
        DSV4_CUDA_CHECK(cudaEventRecord(e0));
        DSV4_TRY(linear(x, n_tok, K, ws[size_t(r % copies)], y, N, nullptr));
        DSV4_CUDA_CHECK(cudaEventRecord(e1));
        DSV4_CUDA_CHECK(cudaEventSynchronize(e1));
        float t = 0;
        DSV4_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
        if (r >= 3) ms.push_back(t);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cleanup();
    return median(ms) * 1e3;
}

}  // namespace dsv4::cuda
