// Linear y = x·Wᵀ over weights in their stored formats (f32/bf16/f16, FP8 e4m3 + 128x128 UE8M0,
// packed FP4 + per-32 UE8M0), dequantized in registers, fp32 accumulation. Phase-A kernel: one warp
// per output row, up to kTok tokens per pass, 16-byte weight loads when the shape allows. Tested
// against cpu::linear in tests/ops (case "linear"); note: docs/kernels/linear.md.
#include "ops/cuda/common.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kWarps = 8;      // rows per CTA
constexpr int kLinearTok = 8;  // token rows per pass

// Per format: elements per 16-byte chunk, the chunk's raw load, its scale, its decoder, and the scalar
// decoder (shapes the 16-byte path cannot take).
template <DType DT>
struct Fmt;

struct Unscaled {
    __device__ static float scale(const DevWeight&, int64_t, int64_t) { return 1.0f; }
};
struct BlockScaled {
    __device__ static float scale(const DevWeight& w, int64_t r, int64_t k) {
        return e8m0_to_f32_dev(
            __ldg(w.scale + ((w.scale_row0 + r) / w.block_rows) * w.scale_cols + k / w.block_cols));
    }
};

template <>
struct Fmt<DType::f32> : Unscaled {
    static constexpr int kElems = 4;
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) * 4));
    }
    __device__ static void decode(uint4 q, float, float* v) {
        v[0] = __uint_as_float(q.x), v[1] = __uint_as_float(q.y), v[2] = __uint_as_float(q.z),
        v[3] = __uint_as_float(q.w);
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const float*>(w.data) + r * w.n_cols + k);
    }
};

template <>
struct Fmt<DType::bf16> : Unscaled {
    static constexpr int kElems = 8;
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) * 2));
    }
    __device__ static void decode(uint4 q, float, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
            v[2 * i] = __uint_as_float(u[i] << 16), v[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        return bf16_bits_to_f32(__ldg(reinterpret_cast<const uint16_t*>(w.data) + r * w.n_cols + k));
    }
};

template <>
struct Fmt<DType::f16> : Unscaled {
    static constexpr int kElems = 8;
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) * 2));
    }
    __device__ static void decode(uint4 q, float, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            __half2_raw hr;
            hr.x = uint16_t(u[i] & 0xffffu), hr.y = uint16_t(u[i] >> 16);
            float2 f = __half22float2(__half2(hr));
            v[2 * i] = f.x, v[2 * i + 1] = f.y;
        }
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        __half_raw hr;
        hr.x = __ldg(reinterpret_cast<const uint16_t*>(w.data) + r * w.n_cols + k);
        return __half2float(__half(hr));
    }
};

template <>
struct Fmt<DType::f8_e4m3> : BlockScaled {
    static constexpr int kElems = 16;  // needs block_cols % 16 == 0: one scale per chunk
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + r * w.n_cols + k));
    }
    __device__ static void decode(uint4 q, float s, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            float2 lo = e4m3x2_to_f32(uint16_t(u[i] & 0xffffu)), hi = e4m3x2_to_f32(uint16_t(u[i] >> 16));
            v[4 * i] = lo.x * s, v[4 * i + 1] = lo.y * s, v[4 * i + 2] = hi.x * s, v[4 * i + 3] = hi.y * s;
        }
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        return e4m3_to_f32_dev(__ldg(w.data + r * w.n_cols + k)) * scale(w, r, k);
    }
};

template <>
struct Fmt<DType::fp4_e2m1> : BlockScaled {
    static constexpr int kElems = 32;  // 16 bytes = 32 codes = one per-32 scale block
    __device__ static uint4 raw(const DevWeight& w, int64_t r, int64_t k) {
        return __ldg(reinterpret_cast<const uint4*>(w.data + (r * w.n_cols + k) / 2));
    }
    __device__ static void decode(uint4 q, float s, float* v) {
        const uint32_t u[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 8; ++j) v[8 * i + j] = e2m1_to_f32_dev(u[i] >> (4 * j)) * s;
    }
    __device__ static float one(const DevWeight& w, int64_t r, int64_t k) {
        uint8_t b = __ldg(w.data + (r * w.n_cols + k) / 2);  // n_cols is even for packed FP4
        return e2m1_to_f32_dev((k & 1) ? (b >> 4) : (b & 15u)) * scale(w, r, k);
    }
};

// grid (ceil(N / kWarps), ceil(n / kTok)); warp = one output row, lanes split K; token rows t0 ..
// t0+kTok−1. Grouped (chunks non-null): blockIdx.y is chunk c = {expert, start, count} of the pairs sorted
// by expert; its rows are perm[start ..] and its weight table[expert].
template <DType DT, int kTok, bool kVec>
__global__ void __launch_bounds__(kWarps * 32)
    linear_kernel(const float* __restrict__ x, int64_t n, int64_t ldx, int64_t x_div, DevWeight w,
                  const DevWeight* __restrict__ table, const int32_t* __restrict__ perm,
                  const int32_t* __restrict__ chunks, const int32_t* __restrict__ n_chunks,
                  float* __restrict__ y, int64_t ldy) {
    const int lane = threadIdx.x & 31;
    const int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
    int64_t row[kTok];
    int n_valid;
    if (chunks) {
        const int c = blockIdx.y;
        if (c >= *n_chunks) return;  // block-uniform
        const int32_t* ch = chunks + 3 * c;
        w = table[ch[0]];
        n_valid = ch[2];
#pragma unroll
        for (int t = 0; t < kTok; ++t) row[t] = perm[ch[1] + (t < n_valid ? t : 0)];
    } else {
        const int64_t t0 = int64_t(blockIdx.y) * kTok;
        n_valid = int(n - t0 < kTok ? n - t0 : kTok);
#pragma unroll
        for (int t = 0; t < kTok; ++t) row[t] = t0 + (t < n_valid ? t : 0);
    }
    if (r >= w.n_rows) return;  // warp-uniform
    const int64_t K = w.n_cols;
    float acc[kTok];
    const float* xr[kTok];
#pragma unroll
    for (int t = 0; t < kTok; ++t) acc[t] = 0.0f, xr[t] = x + (row[t] / x_div) * ldx;

    if constexpr (kVec) {
        // kInFlight 16-byte weight loads per lane are issued before any is decoded (memory-level
        // parallelism); the chunk order per lane, hence the fp32 summation order, is the plain loop's.
        constexpr int E = Fmt<DT>::kElems, kInFlight = 4;
        auto consume = [&](uint4 q, float sc, int64_t k) {
            float v[E];
            Fmt<DT>::decode(q, sc, v);
#pragma unroll
            for (int t = 0; t < kTok; ++t) {
                if (t >= n_valid) break;
                const float4* xp = reinterpret_cast<const float4*>(xr[t] + k);
                float s = 0.0f;
#pragma unroll
                for (int e = 0; e < E / 4; ++e) {
                    float4 xv = __ldg(xp + e);
                    s += v[4 * e] * xv.x + v[4 * e + 1] * xv.y + v[4 * e + 2] * xv.z + v[4 * e + 3] * xv.w;
                }
                acc[t] += s;
            }
        };
        int64_t k = int64_t(lane) * E;
        for (; k + (kInFlight - 1) * 32 * E < K; k += kInFlight * 32 * E) {
            uint4 q[kInFlight];
            float sc[kInFlight];
#pragma unroll
            for (int u = 0; u < kInFlight; ++u) q[u] = Fmt<DT>::raw(w, r, k + u * 32 * E);
#pragma unroll
            for (int u = 0; u < kInFlight; ++u) sc[u] = Fmt<DT>::scale(w, r, k + u * 32 * E);
#pragma unroll
            for (int u = 0; u < kInFlight; ++u) consume(q[u], sc[u], k + u * 32 * E);
        }
        for (; k < K; k += 32 * E) consume(Fmt<DT>::raw(w, r, k), Fmt<DT>::scale(w, r, k), k);
    } else {
        for (int64_t k = lane; k < K; k += 32) {
            const float v = Fmt<DT>::one(w, r, k);
#pragma unroll
            for (int t = 0; t < kTok; ++t)
                if (t < n_valid) acc[t] += v * __ldg(xr[t] + k);
        }
    }
#pragma unroll
    for (int t = 0; t < kTok; ++t) {
        float v = warp_sum(acc[t]);
        if (lane == 0 && t < n_valid) y[row[t] * ldy + r] = v;
    }
}

// One CTA: counting sort of the (token, slot) pairs by expert (stable: pair order within an expert),
// then the chunk table of at most kTok pairs per chunk. Sequential on one thread: Phase A, tiny next to
// the expert GEMVs (n_pairs = 6 at decode).
__global__ void moe_group_kernel(const int32_t* esel, int64_t n_pairs, int64_t E, int tok, int32_t* perm,
                                 int32_t* chunks, int32_t* n_chunks, int32_t* scratch /* [E + 1] */) {
    if (threadIdx.x != 0) return;
    for (int64_t e = 0; e <= E; ++e) scratch[e] = 0;
    for (int64_t p = 0; p < n_pairs; ++p) ++scratch[esel[p] + 1];
    for (int64_t e = 0; e < E; ++e) scratch[e + 1] += scratch[e];  // scratch[e] = first slot of expert e
    int32_t nc = 0;
    for (int64_t e = 0; e < E; ++e)
        for (int32_t s = scratch[e]; s < scratch[e + 1]; s += tok, ++nc) {
            chunks[3 * nc] = int32_t(e);
            chunks[3 * nc + 1] = s;
            chunks[3 * nc + 2] = min(tok, scratch[e + 1] - s);
        }
    *n_chunks = nc;
    for (int64_t p = 0; p < n_pairs; ++p) perm[scratch[esel[p]]++] = int32_t(p);
}

bool aligned16(const void* p) {
    return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

template <DType DT>
bool can_vectorize(const DevWeight& w, const float* x, int64_t ldx) {
    constexpr int E = Fmt<DT>::kElems;
    if (w.n_cols % E != 0 || !aligned16(w.data) || !aligned16(x) || ldx % 4 != 0) return false;
    if ((DT == DType::f8_e4m3 || DT == DType::fp4_e2m1) && w.block_cols % E != 0) return false;
    return true;
}

template <DType DT>
Status launch(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
              const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
              int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s) {
    const bool vec = can_vectorize<DT>(w, x, ldx);
    const dim3 block(kWarps * 32);
    const dim3 grid(ceil_div_u(w.n_rows, kWarps), chunks ? unsigned(max_chunks) : ceil_div_u(n, kLinearTok));
    if (vec)
        linear_kernel<DT, kLinearTok, true>
            <<<grid, block, 0, s>>>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy);
    else
        linear_kernel<DT, kLinearTok, false>
            <<<grid, block, 0, s>>>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy);
    DSV4_CUDA_LAUNCH_CHECK("linear_kernel");
    return Status::ok();
}

Status dispatch(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s) {
    if (n == 0 || w.n_rows == 0) return Status::ok();
    if ((chunks ? max_chunks : (n + kLinearTok - 1) / kLinearTok) > 65535)
        return error("cuda::linear: {} token rows is more than one launch covers", n);
    switch (w.dtype) {
        case DType::f32:
            return launch<DType::f32>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                      s);
        case DType::bf16:
            return launch<DType::bf16>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                       s);
        case DType::f16:
            return launch<DType::f16>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y, ldy,
                                      s);
        case DType::f8_e4m3:
            return launch<DType::f8_e4m3>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y,
                                          ldy, s);
        case DType::fp4_e2m1:
            return launch<DType::fp4_e2m1>(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, max_chunks, y,
                                           ldy, s);
        default:
            return error("cuda::linear: unsupported weight dtype {}", dtype_name(w.dtype));
    }
}

}  // namespace

Status linear(const float* x, int64_t n, int64_t ldx, const WeightRef& w, float* y, int64_t ldy,
              cudaStream_t s) {
    return dispatch(x, n, ldx, 1, DevWeight::from(w), nullptr, nullptr, nullptr, nullptr, 0, y, ldy, s);
}

int64_t moe_max_chunks(int64_t n_pairs, int64_t E) {
    return (n_pairs + kLinearTok - 1) / kLinearTok + E;
}

Status moe_group(const int32_t* esel, int64_t n_pairs, int64_t E, int32_t* perm, int32_t* chunks,
                 int32_t* n_chunks, int32_t* scratch, cudaStream_t s) {
    moe_group_kernel<<<1, 32, 0, s>>>(esel, n_pairs, E, kLinearTok, perm, chunks, n_chunks, scratch);
    DSV4_CUDA_LAUNCH_CHECK("moe_group_kernel");
    return Status::ok();
}

Status linear_grouped(const float* x, int64_t n_pairs, int64_t ldx, int64_t x_div, const DevWeight* table,
                      const WeightRef& proto, const int32_t* perm, const int32_t* chunks,
                      const int32_t* n_chunks, int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s) {
    return dispatch(x, n_pairs, ldx, x_div, DevWeight::from(proto), table, perm, chunks, n_chunks, max_chunks,
                    y, ldy, s);
}

}  // namespace dsv4::cuda
