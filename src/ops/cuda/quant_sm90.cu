// The REF roundings of Numerics::reference on the GPU (spec §10.4-10.5), bit-identical to ops/cpu/quant.cpp:
// FP8 e4m3 round trips of row blocks (activations block 128, KV nope dims block 64), the FP4 e2m1 round
// trip, the Hadamard transform, the FP8 activation quantizer of the block-scaled GEMM (codes + 1x128
// scales), and the small row helpers the reference MoE needs. Tested bit for bit against the CPU ops in
// tests/ops/op_cases_quant.cpp; the scalar codecs exhaustively by dev/cuda/quant_codec_check.cpp.
#include <cmath>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"
#include "ops/cuda/quant_sm90.cuh"

namespace dsv4::cuda {

namespace {

constexpr int kWarpsPerCta = 8;
constexpr int64_t kMaxHadamard = 8192;  // shared-memory row of the Hadamard kernels (32 KB)

// The scale rule of one format: amax floor and 1/qmax, computed on the host exactly as ops/cpu/quant.cpp.
struct Fmt {
    int fp8;  // 1: e4m3 (qmax 448), 0: e2m1 (qmax 6)
    float floor_amax, inv_qmax;
};
Fmt fmt_fp8() {
    return {1, 1e-4f, 1.0f / 448.0f};
}
Fmt fmt_fp4() {
    return {0, 6.0f * std::ldexp(1.0f, -126), 1.0f / 6.0f};
}

// amax of one block as block_amax + std::max in ops/cpu/quant.cpp (a NaN element never wins), by one warp.
__device__ __forceinline__ float warp_block_amax(const float* x, int64_t len, float floor_amax) {
    float amax = 0.0f;
    for (int64_t i = threadIdx.x & 31; i < len; i += 32) {
        const float a = fabsf(x[i]);
        amax = amax < a ? a : amax;
    }
    amax = warp_max(amax);  // no lane holds NaN
    return amax < floor_amax ? floor_amax : amax;
}

// The block's power-of-two scale s and 1/s (exact: IEEE division of 1 by a power of two).
__device__ __forceinline__ float2 warp_block_scale(const float* x, int64_t len, const Fmt& f) {
    const float s = q::e8m0_value(q::pow2_scale(warp_block_amax(x, len, f.floor_amax), f.inv_qmax));
    return make_float2(s, __fdiv_rn(1.0f, s));
}

// One block of len values, x -> y (may alias: each lane reads its elements before writing them).
__device__ __forceinline__ void warp_round_block(const float* x, float* y, int64_t len, const Fmt& f) {
    const float2 si = warp_block_scale(x, len, f);
    for (int64_t i = threadIdx.x & 31; i < len; i += 32)
        y[i] = f.fp8 ? q::fp8_round(x[i], si.y, si.x) : q::fp4_round(x[i], si.y, si.x);
}

// Warp per (row, block) over rows × ceil(n / block).
__global__ void round_rows_kernel(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n,
                                  int64_t block, int64_t n_blk, Fmt f) {
    pdl_wait();
    const int64_t w = int64_t(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
    if (w >= rows * n_blk) return;
    const int64_t r = w / n_blk, b0 = (w % n_blk) * block;
    const int64_t len = block < n - b0 ? block : n - b0;
    warp_round_block(x + r * ldx + b0, y + r * ldy + b0, len, f);
}

Status round_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n, int64_t block,
                  const Fmt& f, cudaStream_t s) {
    if (rows <= 0 || n <= 0) return Status::ok();
    DSV4_ASSERT(block > 0 && ldx >= n && ldy >= n && (x != y || ldx == ldy), "round_rows: bad arguments");
    const int64_t n_blk = (n + block - 1) / block;
    launch_pdl(round_rows_kernel, ceil_div_u(rows * n_blk, kWarpsPerCta), 32 * kWarpsPerCta, 0, s, x, ldx, y,
               ldy, rows, n, block, n_blk, f);
    DSV4_CUDA_LAUNCH_CHECK("round_rows_kernel");
    return Status::ok();
}

// In place on v [d] in shared memory, by the whole CTA: Sylvester butterflies in the CPU's stage order
// (each stage's outputs are a + b and a − b: the same values whichever thread computes them), then the
// host's 1/sqrt(d); then, if fp4, the FP4 round trip in blocks of 32, one warp per block.
__device__ void cta_hadamard(float* v, int64_t d, float scale, bool fp4, const Fmt& f4) {
    const int64_t half = d / 2;
    for (int64_t h = 1; h < d; h *= 2) {
        for (int64_t p = threadIdx.x; p < half; p += blockDim.x) {
            const int64_t i = ((p & ~(h - 1)) << 1) | (p & (h - 1));
            const float a = v[i], b = v[i + h];
            v[i] = __fadd_rn(a, b);
            v[i + h] = __fsub_rn(a, b);
        }
        __syncthreads();
    }
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) v[i] = __fmul_rn(v[i], scale);
    __syncthreads();
    if (!fp4) return;
    const int64_t n_blk = (d + 31) / 32;
    for (int64_t b = threadIdx.x >> 5; b < n_blk; b += blockDim.x >> 5) {
        const int64_t len = 32 < d - b * 32 ? 32 : d - b * 32;
        warp_round_block(v + b * 32, v + b * 32, len, f4);
    }
    __syncthreads();
}

// CTA per row of x [rows, d], in place.
__global__ void hadamard_kernel(float* x, int64_t d, float scale, int fp4, Fmt f4) {
    pdl_wait();
    extern __shared__ float sv[];
    float* row = x + int64_t(blockIdx.x) * d;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) sv[i] = row[i];
    __syncthreads();
    cta_hadamard(sv, d, scale, fp4 != 0, f4);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) row[i] = sv[i];
}

// Decode steps: CTA per sequence; the entry its compressor emitted this step (if any) is rounded in place.
__global__ void round_decode_entries_kernel(const DecodeSeq* seqs, int which, int64_t m, int64_t d,
                                            int64_t nope, float scale, Fmt f8, Fmt f4) {
    pdl_wait();
    extern __shared__ float sv[];
    const DecodeSeq& q = seqs[blockIdx.x];
    if ((q.p + 1) % m != 0) return;  // uniform over the CTA
    const DecodeCompressor& c = which ? q.idx : q.cmp;
    float* e = c.entries + c.n_entries * d;  // the state before this step: n_entries is the new entry's row
    if (which == 0) {                        // KV: FP8 on the nope dims, blocks of 64, warp per block
        const int64_t n_blk = (nope + 63) / 64;
        for (int64_t b = threadIdx.x >> 5; b < n_blk; b += blockDim.x >> 5) {
            const int64_t len = 64 < nope - b * 64 ? 64 : nope - b * 64;
            warp_round_block(e + b * 64, e + b * 64, len, f8);
        }
        return;
    }
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) sv[i] = e[i];
    __syncthreads();
    cta_hadamard(sv, d, scale, true, f4);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) e[i] = sv[i];
}

// Warp per (row, 128-block): e4m3 codes q [rows_pad, K] and the block's scale at scale[kb·rows_pad + r];
// rows r ≥ rows (padding) get zero codes and scale 1.
__global__ void quantize_act_kernel(const float* x, int64_t ldx, int64_t rows, int64_t rows_pad, int64_t K,
                                    uint8_t* qv, float* scale, Fmt f) {
    pdl_wait();
    const int64_t n_blk = K / 128, w = int64_t(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
    if (w >= rows_pad * n_blk) return;
    const int64_t r = w / n_blk, kb = w % n_blk, lane = threadIdx.x & 31;
    uint8_t* qr = qv + r * K + kb * 128;
    if (r >= rows) {
        for (int64_t i = lane; i < 128; i += 32) qr[i] = 0;
        if (lane == 0) scale[kb * rows_pad + r] = 1.0f;
        return;
    }
    const float* xr = x + r * ldx + kb * 128;
    const float2 si = warp_block_scale(xr, 128, f);
    for (int64_t i = lane; i < 128; i += 32) {
        float v = xr[i] * si.y;
        v = v < -448.0f ? -448.0f : (448.0f < v ? 448.0f : v);
        qr[i] = uint8_t(q::f32_to_e4m3(v));
    }
    if (lane == 0) scale[kb * rows_pad + r] = si.x;
}

__global__ void scale_rows_kernel(float* x, int64_t rows, int64_t ld, int64_t d, const float* w) {
    pdl_wait();
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * d;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / d, c = i % d;
        x[r * ld + c] = __fmul_rn(x[r * ld + c], w[r]);
    }
}

__global__ void fill_kernel(float* x, int64_t count, float v) {
    pdl_wait();
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
         i += int64_t(gridDim.x) * blockDim.x)
        x[i] = v;
}

}  // namespace

Status fp8_roundtrip_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n,
                          int64_t block, cudaStream_t s) {
    return round_rows(x, ldx, y, ldy, rows, n, block, fmt_fp8(), s);
}

Status fp4_roundtrip_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n,
                          int64_t block, cudaStream_t s) {
    return round_rows(x, ldx, y, ldy, rows, n, block, fmt_fp4(), s);
}

Status hadamard_rows(float* x, int64_t rows, int64_t d, bool fp4_after, cudaStream_t s) {
    if (rows <= 0) return Status::ok();
    if (d <= 0 || (d & (d - 1)) != 0 || d > kMaxHadamard)
        return error("hadamard_rows: d = {} must be a power of two ≤ {}", d, kMaxHadamard);
    const float scale = 1.0f / std::sqrt(float(d));  // the CPU's value (cpu::hadamard_rows)
    launch_pdl(hadamard_kernel, unsigned(rows), 128, size_t(d) * 4, s, x, d, scale, fp4_after ? 1 : 0,
               fmt_fp4());
    DSV4_CUDA_LAUNCH_CHECK("hadamard_kernel");
    return Status::ok();
}

Status round_decode_entries(const DecodeSeq* seqs, int64_t B, int which, int64_t m, int64_t d, int64_t nope,
                            cudaStream_t s) {
    if (B <= 0) return Status::ok();
    if (which != 0 && ((d & (d - 1)) != 0 || d > kMaxHadamard))
        return error("round_decode_entries: index key dim {} must be a power of two ≤ {}", d, kMaxHadamard);
    const float scale = 1.0f / std::sqrt(float(d));
    launch_pdl(round_decode_entries_kernel, unsigned(B), 128, which ? size_t(d) * 4 : 0, s, seqs, which, m, d,
               nope, scale, fmt_fp8(), fmt_fp4());
    DSV4_CUDA_LAUNCH_CHECK("round_decode_entries_kernel");
    return Status::ok();
}

Status fp8_quantize_act(const float* x, int64_t rows, int64_t ldx, int64_t K, int64_t rows_pad, uint8_t* qv,
                        float* scale, cudaStream_t s) {
    if (rows_pad <= 0) return Status::ok();
    DSV4_ASSERT(K % 128 == 0 && rows_pad >= rows && ldx >= K, "fp8_quantize_act: bad arguments");
    launch_pdl(quantize_act_kernel, ceil_div_u(rows_pad * (K / 128), kWarpsPerCta), 32 * kWarpsPerCta, 0, s,
               x, ldx, rows, rows_pad, K, qv, scale, fmt_fp8());
    DSV4_CUDA_LAUNCH_CHECK("quantize_act_kernel");
    return Status::ok();
}

Status scale_rows(float* x, int64_t rows, int64_t ld, int64_t d, const float* w, cudaStream_t s) {
    if (rows <= 0 || d <= 0) return Status::ok();
    DSV4_ASSERT(ld >= d, "scale_rows: ld < d");
    launch_pdl(scale_rows_kernel, std::min<unsigned>(ceil_div_u(rows * d, 256), 4096u), 256, 0, s, x, rows,
               ld, d, w);
    DSV4_CUDA_LAUNCH_CHECK("scale_rows_kernel");
    return Status::ok();
}

Status fill_f32(float* x, int64_t count, float v, cudaStream_t s) {
    if (count <= 0) return Status::ok();
    launch_pdl(fill_kernel, std::min<unsigned>(ceil_div_u(count, 256), 1024u), 256, 0, s, x, count, v);
    DSV4_CUDA_LAUNCH_CHECK("fill_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
