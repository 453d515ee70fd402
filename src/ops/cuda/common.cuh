// Device helpers shared by the kernels: warp/block reductions and the scalar codecs of the stored
// weight formats (spec §10.1: bf16, f16, FP8 e4m3fn, FP4 e2m1, UE8M0), bit-exact with core/dtype.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace dsv4::cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result.
// `red` is a __shared__ float[32] scratch; the trailing barrier makes it reusable at once.
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = lane < n_warps ? red[lane] : 0.0f;
    r = warp_sum(r);
    __syncthreads();
    return r;
}
__device__ __forceinline__ float block_max(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = lane < n_warps ? red[lane] : -INFINITY;
    r = warp_max(r);
    __syncthreads();
    return r;
}

// Word I (0..3) of a 16-byte load.
template <int I>
__device__ __forceinline__ uint32_t word(const uint4& q) {
    return I == 0 ? q.x : I == 1 ? q.y : I == 2 ? q.z : q.w;
}

// d += a·b on the tensor cores: mma.sync m16n8k16, row.col, fp32 accumulation; a/b fp16 pairs, or bf16
// pairs when kBf16 (fragment layouts as the PTX ISA's m16n8k16).
template <bool kBf16>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint32_t b0, uint32_t b1) {
    if constexpr (kBf16)
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// i / b for the scale-block lookups: a shift for the usual power-of-two blocks (1, 32, 128), else the 64-bit
// division (~70 instructions).
__device__ __forceinline__ int64_t block_of(int64_t i, int64_t b) {
    return (b & (b - 1)) == 0 ? i >> (__ffsll(b) - 1) : i / b;
}

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) {
    return __uint_as_float(h << 16);
}

// UE8M0: 2^(E−127); E = 0 is the subnormal 2^−127, E = 255 NaN (core/dtype.h e8m0_to_f32).
__device__ __forceinline__ float e8m0_to_f32_dev(uint8_t e) {  // selects, not branches (GEMV inner loop)
    const uint32_t b = e == 255 ? 0x7fc00000u : e == 0 ? 0x00400000u : uint32_t(e) << 23;
    return __uint_as_float(b);
}

// Two e4m3fn codes (low byte = first) to floats, through the exact fp8->fp16 conversion.
__device__ __forceinline__ float2 e4m3x2_to_f32(uint16_t two) {
    __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two), __NV_E4M3);
    return __half22float2(__half2(h));
}
__device__ __forceinline__ float e4m3_to_f32_dev(uint8_t v) {
    return e4m3x2_to_f32(v).x;
}

// e2m1 code (4 bits): ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}.
__device__ __forceinline__ float e2m1_to_f32_dev(uint32_t code) {
    const uint32_t mag = code & 7u;
    float v = mag < 2 ? 0.5f * float(mag) : __uint_as_float((((mag >> 1) + 126u) << 23) | ((mag & 1u) << 22));
    return (code & 8u) ? -v : v;
}

// cp.async (sm_80+): global -> shared copies that bypass registers; a thread's copies form a group at
// cp_async_commit(), and cp_async_wait<N>() waits until at most N of its groups are still in flight (a
// __syncthreads() after it publishes the data to the block). 16 B copies need 16 B-aligned addresses.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(__cvta_generic_to_global(gmem))
                 : "memory");
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(__cvta_generic_to_global(gmem))
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Lightning-indexer score of one key for one query, by one warp (every lane gets it):
// Σ_h w[h]·ReLU(q[h]·key), q [Hi, di], heads in order.
__device__ __forceinline__ float indexer_score_warp(const float* q, const float* w, int64_t Hi, int64_t di,
                                                    const float* key) {
    // heads in groups of U: their dot products and warp sums are independent, so the loads and shuffle
    // chains of U heads overlap (one head at a time serialized 64 load + 5-shuffle chains: 33 µs per decode
    // call at 256 keys on H200); every sum keeps its order, so the result is the same bit for bit
    constexpr int U = 8;
    const int lane = threadIdx.x & 31;
    float acc = 0.0f;
    for (int64_t h0 = 0; h0 < Hi; h0 += U) {
        float dot[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            dot[u] = 0.0f;
            if (h0 + u < Hi) {
                const float* qh = q + (h0 + u) * di;
                for (int64_t i = lane; i < di; i += 32) dot[u] += qh[i] * key[i];
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) dot[u] = warp_sum(dot[u]);
#pragma unroll
        for (int u = 0; u < U; ++u)
            if (h0 + u < Hi) acc += w[h0 + u] * fmaxf(dot[u], 0.0f);
    }
    return acc;
}

// Compressor pooling of one channel over a window's slots (spec §6.5): softmax over the gate logits z,
// weighted sum of the values a; slot(j, a, z) yields slot j. Two passes (max, then sums), as the CPU; each
// pass loads U slots before using them (the slots are independent loads: one at a time, a decode emit of 8
// slots × 2 passes was 16 dependent global round trips), the sums still in slot order.
template <typename Slot>
__device__ __forceinline__ float pool_slots(int64_t n_slots, Slot slot) {
    constexpr int U = 8;
    float mx = -INFINITY;
    for (int64_t j0 = 0; j0 < n_slots; j0 += U) {
        float zv[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            float av;
            zv[u] = -INFINITY;
            if (j0 + u < n_slots) slot(j0 + u, av, zv[u]);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) mx = fmaxf(mx, zv[u]);
    }
    float sum = 0.0f, acc = 0.0f;
    for (int64_t j0 = 0; j0 < n_slots; j0 += U) {
        float av[U], zv[U];
#pragma unroll
        for (int u = 0; u < U; ++u)
            if (j0 + u < n_slots) slot(j0 + u, av[u], zv[u]);
#pragma unroll
        for (int u = 0; u < U; ++u)
            if (j0 + u < n_slots) {
                const float ex = expf(zv[u] - mx);
                sum += ex;
                acc += ex * av[u];
            }
    }
    return acc / sum;
}

inline unsigned ceil_div_u(int64_t a, int64_t b) {
    return unsigned((a + b - 1) / b);
}

}  // namespace dsv4::cuda
