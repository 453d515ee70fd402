// Row-wise and element-wise kernels: RMSNorm (one CTA per row), interleaved partial RoPE (one thread
// per (row, head, pair)), embedding gather, clamped SwiGLU, scaling. Tested against the cpu:: ops of the same
// names in tests/ops; note: docs/kernels/elementwise.md.
#include <algorithm>
#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

// follows cpu::rms_norm: fp32 sum of squares, inv = 1/sqrt(ss/d + eps), then x·inv·w
__global__ void rms_norm_kernel(const float* x, int64_t d, const float* w, float eps, float* out) {
    pdl_wait();
    __shared__ float red[32];
    const float* xr = x + int64_t(blockIdx.x) * d;
    float* o = out + int64_t(blockIdx.x) * d;
    float ss = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / float(d) + eps);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) o[i] = w ? xr[i] * inv * w[i] : xr[i] * inv;
}

// The same for rows of d % 4 == 0 floats (16-byte aligned) up to 4·4·1024: each thread keeps its ≤ 4 float4
// of x in registers between the two passes, and the weight loads are issued before the reduction (a
// decode row of 4096 floats: one float4 per thread of a 1024-thread CTA, ~4.3 -> ~2 µs).
// Rope (kRope): then the pairs at off + 2i (i < n_pairs, off % 4 == 0) of row r are rotated by
// pos[r / heads]·inv_freq[i] exactly as rope_kernel does on the normed values (one launch for both).
struct RopeArgs {
    int64_t heads = 1, off = 0, n_pairs = 0;
    const int64_t* pos = nullptr;
    const float* inv_freq = nullptr;
};
constexpr int kNormVec = 4;  // float4 per thread
__device__ __forceinline__ void rope_pair(float& x0, float& x1, float angle, bool inverse = false) {
    const float c = cosf(angle), s = inverse ? -sinf(angle) : sinf(angle);
    const float a = x0, b = x1;
    x0 = a * c - b * s;
    x1 = a * s + b * c;
}
template <bool kRope>
__global__ void rms_norm_vec_kernel(const float* x, int64_t d, const float* w, float eps, float* out,
                                    RopeArgs ra) {
    pdl_wait();
    __shared__ float red[32];
    const int64_t n4 = d / 4;
    const float4* xr = reinterpret_cast<const float4*>(x + int64_t(blockIdx.x) * d);
    float4* o = reinterpret_cast<float4*>(out + int64_t(blockIdx.x) * d);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    float4 v[kNormVec], wv[kNormVec];
    float ss = 0.0f;
#pragma unroll
    for (int i = 0; i < kNormVec; ++i) {
        const int64_t k = threadIdx.x + int64_t(i) * blockDim.x;
        v[i] = k < n4 ? xr[k] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        wv[i] = w && k < n4 ? __ldg(w4 + k) : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    }
#pragma unroll
    for (int i = 0; i < kNormVec; ++i)
        ss += v[i].x * v[i].x + v[i].y * v[i].y + v[i].z * v[i].z + v[i].w * v[i].w;
    ss = block_sum(ss, red);
    const float inv = 1.0f / sqrtf(ss / float(d) + eps);
#pragma unroll
    for (int i = 0; i < kNormVec; ++i) {
        const int64_t k = threadIdx.x + int64_t(i) * blockDim.x;
        if (k < n4) {
            float4 r = make_float4(v[i].x * inv * wv[i].x, v[i].y * inv * wv[i].y, v[i].z * inv * wv[i].z,
                                   v[i].w * inv * wv[i].w);
            if (kRope && 4 * k >= ra.off && 4 * k < ra.off + 2 * ra.n_pairs) {  // pairs j, j + 1
                const int64_t j = (4 * k - ra.off) / 2;
                const float p = float(ra.pos[blockIdx.x / ra.heads]);
                rope_pair(r.x, r.y, p * ra.inv_freq[j]);  // fp32 product, as HF
                rope_pair(r.z, r.w, p * ra.inv_freq[j + 1]);
            }
            o[k] = r;
        }
    }
}

// one thread per (row, head, pair): a decode step has one row, so the heads must be spread over threads
// (a loop over them serialized 64 dependent read-modify-writes: 14 µs per call on H200)
__global__ void rope_kernel(float* x, int64_t rows, int64_t heads, int64_t head_stride, int64_t off,
                            int64_t n_pairs, const int64_t* pos, const float* inv_freq, bool inverse) {
    pdl_wait();
    const int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (g >= rows * heads * n_pairs) return;
    const int64_t i = g % n_pairs, rh = g / n_pairs, r = rh / heads;
    const float angle = float(pos[r]) * inv_freq[i];  // fp32 product, as HF
    float* p = x + rh * head_stride + off + 2 * i;
    float x0 = p[0], x1 = p[1];
    rope_pair(x0, x1, angle, inverse);
    p[0] = x0, p[1] = x1;
}

__global__ void embed_kernel(const int32_t* ids, DevWeight t, float* out) {
    pdl_wait();
    const int64_t row = ids[blockIdx.x], D = t.n_cols;
    float* o = out + int64_t(blockIdx.x) * D;
    if (row < 0 || row >= t.n_rows) {  // bad id: NaN row (the host validates ids before launching)
        for (int64_t i = threadIdx.x; i < D; i += blockDim.x) o[i] = __uint_as_float(0x7fc00000u);
        return;
    }
    for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
        const int64_t at = row * D + i;
        float v;
        if (t.dtype == DType::f32)
            v = reinterpret_cast<const float*>(t.data)[at];
        else if (t.dtype == DType::bf16)
            v = bf16_bits_to_f32(reinterpret_cast<const uint16_t*>(t.data)[at]);
        else {
            __half_raw hr;
            hr.x = reinterpret_cast<const uint16_t*>(t.data)[at];
            v = __half2float(__half(hr));
        }
        o[i] = v;
    }
}

// follows cpu::swiglu_clamp: h = silu(min(g, lim)) · clamp(u, ±lim)
__global__ void swiglu_kernel(const float* g, const float* u, int64_t n, int64_t I, int64_t ldg, float lim,
                              float* h) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n * I) return;
    const int64_t t = e / I, i = e % I;
    float gv = g[t * ldg + i], uv = u[t * ldg + i];
    if (lim > 0.0f) {
        gv = fminf(gv, lim);
        uv = fminf(fmaxf(uv, -lim), lim);
    }
    h[e] = gv / (1.0f + expf(-gv)) * uv;
}

__global__ void scale_kernel(float* x, int64_t count, float a) {
    pdl_wait();
    const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e < count) x[e] *= a;
}

}  // namespace

Status rms_norm(const float* x, int64_t rows, int64_t d, const float* w, double eps, float* out,
                cudaStream_t s) {
    if (rows == 0) return Status::ok();
    const auto a16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
    if (d % 4 == 0 && d > 0 && d <= int64_t(4) * kNormVec * 1024 && a16(x) && a16(out) && (!w || a16(w))) {
        const int64_t n4 = d / 4, per = (n4 + kNormVec - 1) / kNormVec;
        const unsigned threads = unsigned(std::clamp<int64_t>((per + 31) / 32 * 32, 32, 1024));
        launch_pdl(rms_norm_vec_kernel<false>, unsigned(rows), threads, 0, s, x, d, w, float(eps), out,
                   RopeArgs{});
        DSV4_CUDA_LAUNCH_CHECK("rms_norm_vec_kernel");
        return Status::ok();
    }
    launch_pdl(rms_norm_kernel, unsigned(rows), 256, 0, s, x, d, w, float(eps), out);
    DSV4_CUDA_LAUNCH_CHECK("rms_norm_kernel");
    return Status::ok();
}

Status rms_norm_rope(float* x, int64_t rows, int64_t d, const float* w, double eps, int64_t heads,
                     int64_t off, int64_t n_pairs, const int64_t* pos, const float* inv_freq,
                     cudaStream_t s) {
    if (rows == 0) return Status::ok();
    const auto a16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; };
    if (heads <= 0 || rows % heads != 0 || off < 0 || n_pairs < 0 || off + 2 * n_pairs > d)
        return error("cuda::rms_norm_rope: rows {} / heads {}, pairs {} from {} of d = {}", rows, heads,
                     n_pairs, off, d);
    if (d % 4 == 0 && d > 0 && d <= int64_t(4) * kNormVec * 1024 && off % 4 == 0 && n_pairs % 2 == 0 &&
        a16(x) && (!w || a16(w))) {
        const int64_t n4 = d / 4, per = (n4 + kNormVec - 1) / kNormVec;
        const unsigned threads = unsigned(std::clamp<int64_t>((per + 31) / 32 * 32, 32, 1024));
        launch_pdl(rms_norm_vec_kernel<true>, unsigned(rows), threads, 0, s, x, d, w, float(eps), x,
                   RopeArgs{heads, off, n_pairs, pos, inv_freq});
        DSV4_CUDA_LAUNCH_CHECK("rms_norm_vec_kernel");
        return Status::ok();
    }
    DSV4_TRY(rms_norm(x, rows, d, w, eps, x, s));
    return rope(x, rows / heads, heads, d, off, n_pairs, pos, inv_freq, false, s);
}

Status rope(float* x, int64_t rows, int64_t heads, int64_t head_stride, int64_t off, int64_t n_pairs,
            const int64_t* pos, const float* inv_freq, bool inverse, cudaStream_t s) {
    if (rows * heads * n_pairs == 0) return Status::ok();
    launch_pdl(rope_kernel, ceil_div_u(rows * heads * n_pairs, 256), 256, 0, s, x, rows, heads, head_stride,
               off, n_pairs, pos, inv_freq, inverse);
    DSV4_CUDA_LAUNCH_CHECK("rope_kernel");
    return Status::ok();
}

Status embed(const int32_t* ids, int64_t n, const WeightRef& table, float* out, cudaStream_t s) {
    if (table.dtype != DType::f32 && table.dtype != DType::bf16 && table.dtype != DType::f16)
        return error("cuda::embed: table dtype {} (expected f32, bf16 or f16)", dtype_name(table.dtype));
    if (n == 0) return Status::ok();
    launch_pdl(embed_kernel, unsigned(n), 256, 0, s, ids, DevWeight::from(table), out);
    DSV4_CUDA_LAUNCH_CHECK("embed_kernel");
    return Status::ok();
}

Status swiglu_clamp(const float* g, const float* u, int64_t n, int64_t I, int64_t ldg, double limit, float* h,
                    cudaStream_t s) {
    if (n * I == 0) return Status::ok();
    launch_pdl(swiglu_kernel, ceil_div_u(n * I, 256), 256, 0, s, g, u, n, I, ldg, float(limit), h);
    DSV4_CUDA_LAUNCH_CHECK("swiglu_kernel");
    return Status::ok();
}

Status scale(float* x, int64_t count, float a, cudaStream_t s) {
    if (count == 0) return Status::ok();
    launch_pdl(scale_kernel, ceil_div_u(count, 256), 256, 0, s, x, count, a);
    DSV4_CUDA_LAUNCH_CHECK("scale_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
