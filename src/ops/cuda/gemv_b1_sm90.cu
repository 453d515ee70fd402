// Batch-1 linear over block-scaled FP4 / FP8 weights on the tensor cores: the decode path of the routed
// experts (one pair per expert chunk: packed FP4 e2m1, UE8M0 per 1x32) and of one-row FP4 / FP8 (e4m3, UE8M0
// per 128x128) linears (issue 6, hopper-kernels.md §2). The CUDA-core GEMV spends ~4.5 instructions per
// FP4 weight (decode to fp32, one FMA each) and reached ~33 % of the copy bandwidth; here an FP4 code costs
// ~1.1 ALU instructions (an FP8 code half a conversion) plus 1/8 of an mma.sync per thread.
//
// Accuracy (fp32-equivalent, like linear_mma): an FP4 code c is placed bit-exactly into an fp16 as c·2^−14
// (sign → bit 15, exponent/mantissa bits → bits 11..9; e2m1's subnormal 0.5 lands on the fp16 subnormal
// 2^−15, so normal and subnormal codes carry the same factor); an FP8 code converts exactly (cvt e4m3x2 →
// f16x2). The x row is scaled by a power of two 2^m that puts max|x| in [2^14, 2^15) and split into two
// fp16 pieces hi + lo (22 significant bits; lo's absolute rounding error is ≤ 2^−25, i.e. 2^−40 of
// max|x|). The mma m16n8k16 (fp16 in, fp32 accumulate) then computes the products exactly; the block scale
// and the 2^14·2^−m factor are powers of two applied to fp32 partial sums, so only the summation order
// differs from cpu::linear.
//
// Scale blocks: a warp step is a 128-k span. FP4: the mma's B columns are (block, piece): thread quad t
// loads 16 bytes = 32 codes = one scale block of each of its rows per span, and column 2t / 2t+1 holds the
// hi / lo piece of x on the k slots of quad t only (zeros elsewhere), so C[row][2t] + C[row][2t+1] is the
// row's dot product over block t of the span, which thread (g, t) — the one that loaded that block and its
// scale — owns and scales into its fp32 sum. FP8: a span is one scale block of the row, columns 0 / 1 are
// hi / lo over the whole span (the other columns zero). Tested against cpu::linear in tests/ops (op
// "linear_grouped" decode shapes and "linear_b1"); note: docs/kernels/linear.md.
#include <cuda_fp16.h>

#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kSpanK = 128;   // k per warp step: 4 quads × 32 codes (FP4 16 bytes, FP8 32) per row
constexpr int kGroupBytes = 160;  // x pieces of 32 k: 8 units of 16 B (hi, lo pairs) + 32 B pad
constexpr int kSpanBytes = 4 * kGroupBytes;
constexpr int kZeroBytes = 640;  // what the lanes holding B zeros read (≥ 3·160 + 16 + 7·16 + 8)
constexpr int64_t kMaxK = 16384;
// The CTAs tiles_for aims at: ~2 per SM. H200 graph-timed (DSV4_B1_TILES): wq_b at 8 tiles (256 CTAs)
// 10.6 µs vs 11.2 at 4, wo_a's 8 groups at 2 tiles (256 CTAs) 11.2 µs vs 12.7 at 1 — so a little under
// 2·132 still counts as enough.
constexpr int64_t kMinCtas = 240;

int64_t smem_bytes(int64_t K) {
    return kZeroBytes + K / 32 * kGroupBytes;
}

// Eight codes of one word (code j = k 8i + j of the chunk) → four f16x2 words of code·2^−14:
// r[0] = (k0, k2), r[1] = (k4, k6), r[2] = (k1, k3), r[3] = (k5, k7). A code s·eem becomes the fp16 high
// byte s·000·eem·0 (low byte zero).
__device__ __forceinline__ void fp4x8_f16(uint32_t u, uint32_t (&r)[4]) {
    const uint32_t ev = ((u << 1) & 0x0e0e0e0eu) | ((u << 4) & 0x80808080u);  // byte b: code 2b
    const uint32_t od = ((u >> 3) & 0x0e0e0e0eu) | (u & 0x80808080u);         // byte b: code 2b + 1
    r[0] = __byte_perm(ev, 0u, 0x1404), r[1] = __byte_perm(ev, 0u, 0x3424);
    r[2] = __byte_perm(od, 0u, 0x1404), r[3] = __byte_perm(od, 0u, 0x3424);
}

// Two e4m3 codes (low byte first) → f16x2, exact.
__device__ __forceinline__ uint32_t e4m3x2_f16x2(uint32_t two) {
    const __half2_raw h =
        __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xffffu), __NV_E4M3);
    return uint32_t(h.x) | (uint32_t(h.y) << 16);
}

__device__ __forceinline__ uint32_t h2_bits(__half2 h) {
    return *reinterpret_cast<const uint32_t*>(&h);
}

// grid (ceil(N / 16·TILES), token rows | chunk slots); warp w = 16-row tile w % TILES × K range w / TILES.
// kGlu (gate/up): tiles < TILES / 2 are rows of W1 (w / table), the others the same rows of W3 (w3 / table3),
// grid ceil(N / 8·TILES); the epilogue writes y = swiglu_clamp(W1·x, W3·x) (cpu::swiglu_clamp's formula).
// Shared: [kZeroBytes zeros | x pieces, kGroupBytes per 32 k]. FP4: the unit (8-k group q, piece p) at
// 160·(q / 4) + 32·(q % 4) + 16·p holds the f16x2 pairs (0,2), (1,3), (4,6), (5,7) of the group; a lane
// (g, t) that supplies B column g = (block g / 2, piece g % 2) reads its pairs when t == g / 2. FP8: the
// 4-k group q at 160·(q / 8) + 16·(q % 8) holds hi (0,1), (2,3) then lo; lanes g = 0 / 1 supply hi / lo.
// The other lanes read the zero area (a per-lane base and span stride: no selects). Bank check: a load's
// supplying lanes hit 8 different 8-byte slots mod 128, the zero readers 4 slots none of them uses.
// The launch's weights: dense (chunks null), the segments of s (linear_b1_multi; one segment otherwise);
// grouped, one segment: x / y of segment 0, the weights from table (table3) per chunk. w3 / table3 / lim:
// the gate/up form only.
constexpr int kMaxSegs = kMaxLinearSegs;
struct B1Args {
    LinearSegs s;
    int64_t n, x_div;
    const DevWeight *table, *table3;
    const int32_t *perm, *chunks, *n_chunks;
    DevWeight w3;
    float lim;
};

// kMulti: a.s.n > 1 (only then the segment is picked: the compares cost registers, and at the FP4
// 3-CTA cap they spilled).
template <DType DT, int TILES, int MINB, bool kGlu, bool kMulti>
__global__ void __launch_bounds__(kThreads, MINB) b1_kernel(const __grid_constant__ B1Args a) {
    static_assert(!kGlu || TILES >= 2, "gate/up needs a W1 and a W3 tile");
    constexpr bool kFp4 = DT == DType::fp4_e2m1;
    constexpr int TT = kGlu ? TILES / 2 : TILES;  // row tiles per CTA and weight
    constexpr int W = kFp4 ? 1 : 2;               // 16-byte loads per thread, row and span
    constexpr int KS = kWarps / TILES;
    extern __shared__ __align__(128) unsigned char smem[];
    __shared__ float red[KS][TILES][16];
    __shared__ float s_red[kWarps];
    const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int32_t* chunks = a.chunks;
    const int64_t n = a.n, x_div = a.x_div;
    DevWeight w = a.s.w[0];
    const float* x = a.s.x[0];
    float* y = a.s.y[0];
    int64_t ldx = a.s.ldx[0], ldy = a.s.ldy[0];
    unsigned c0 = 0;
    if constexpr (kMulti) {
        const LinearSeg1 g = pick_segment(a.s);
        w = g.w, x = g.x, y = g.y, ldx = g.ldx, ldy = g.ldy, c0 = g.c0;
    }
    const int64_t bx = int64_t(blockIdx.x - c0);
    if (chunks) pdl_wait();  // grouped: the chunk table is the previous kernel's output
    RowBlock blk;
    if (!row_block(n, 1, a.table, a.perm, chunks, a.n_chunks, w, blk)) return;  // block-uniform
    const int tile = warp % TILES, ks = warp / TILES;
    if (kGlu && tile >= TT) w = chunks ? a.table3[chunks[3 * blockIdx.y]] : a.w3;  // same shape as W1
    const int64_t N = w.n_rows, K = w.n_cols, spans = K / kSpanK;
    const int64_t r0 = (bx * TT + tile % TT) * 16;
    const bool live = r0 < N;  // a warp past the last tile still joins the barriers
    const int64_t ra = r0 + g < N ? r0 + g : N - 1, rb = r0 + g + 8 < N ? r0 + g + 8 : N - 1;
    const int64_t per = (spans + KS - 1) / KS, s_begin = ks * per;
    const int64_t s_end = !live ? s_begin : s_begin + per < spans ? s_begin + per : spans;
    const int64_t row_bytes = kFp4 ? K / 2 : K;
    const uint8_t* wa = w.data + ra * row_bytes + 16 * W * t;
    const uint8_t* wb = w.data + rb * row_bytes + 16 * W * t;
    // FP4: block t of each span (4 per span); FP8: one block per span
    const uint8_t* sa = w.scale + block_of(w.scale_row0 + ra, w.block_rows) * w.scale_cols + (kFp4 ? t : 0);
    const uint8_t* sb = w.scale + block_of(w.scale_row0 + rb, w.block_rows) * w.scale_cols + (kFp4 ? t : 0);
    constexpr int kScaleStep = kFp4 ? 4 : 1;
    // weights and scales of two spans in flight (a buffer is refilled as soon as its span is done).
    // Tried: a cp.async ring of 4 spans per thread in shared memory (3 in flight): 15-20 % slower.
    uint4 qa[2][W], qb[2][W];
    uint8_t ea[2], eb[2];
    auto load = [&](int b, int64_t sp) {
#pragma unroll
        for (int i = 0; i < W; ++i) {
            qa[b][i] = __ldg(reinterpret_cast<const uint4*>(wa + sp * 64 * W) + i);
            qb[b][i] = __ldg(reinterpret_cast<const uint4*>(wb + sp * 64 * W) + i);
        }
        ea[b] = __ldg(sa + sp * kScaleStep), eb[b] = __ldg(sb + sp * kScaleStep);
    };
    auto prime = [&] {
        if (s_begin < s_end) load(0, s_begin);
        if (s_begin + 1 < s_end) load(1, s_begin + 1);
    };
    if (!chunks) {  // dense: weights before the wait (no kernel writes them)
        prime();
        pdl_wait();
    }
    if (tid < kZeroBytes / 16) reinterpret_cast<uint4*>(smem)[tid] = make_uint4(0u, 0u, 0u, 0u);
    unsigned char* sx = smem + kZeroBytes;
    const bool supplies = kFp4 ? (g >> 1) == t : g < 2;
    const int p = g & 1;
    for (int p0 = 0; p0 < blk.n_valid; ++p0) {
        const int64_t orow = chunks ? int64_t(blk.prow[p0]) : blk.t0 + p0;
        const float4* xr = reinterpret_cast<const float4*>(x + (x_div == 1 ? orow : orow / x_div) * ldx);
        if (chunks || p0 > 0) prime();
        // ---- stage x: max|x| (block), then the scaled hi / lo pieces (x read twice: keeping it in
        // registers across the barrier spilled the span pointer at the 3-CTA register cap)
        float mx = 0.0f;
        for (int64_t u = tid; u < K / 4; u += kThreads) {
            const float4 v = __ldg(xr + u);
            mx = fmaxf(mx, fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w))));
        }
        mx = warp_max(mx);
        if (lane == 0) s_red[warp] = mx;
        __syncthreads();  // also: the previous pass is done with sx
#pragma unroll
        for (int i = 0; i < kWarps; ++i) mx = fmaxf(mx, s_red[i]);
        const int emax = int((__float_as_uint(mx) >> 23) & 0xffu);
        const int m = min(max(141 - emax, -113), 127);  // max|x|·2^m in [2^14, 2^15)
        const float mul = __uint_as_float(uint32_t(127 + m) << 23);
        float undo = __uint_as_float(uint32_t(141 - m) << 23);  // 2^(14 − m)
        if (!kFp4) undo *= 0x1p-14f;                            // FP8 codes carry no 2^−14
        auto put = [&](int64_t u, float4 v) {
            const float a0 = v.x * mul, a1 = v.y * mul, a2 = v.z * mul, a3 = v.w * mul;
            const __half2 h02 = __floats2half2_rn(a0, a2), h13 = __floats2half2_rn(a1, a3);
            const float2 f02 = __half22float2(h02), f13 = __half22float2(h13);
            const __half2 l02 = __floats2half2_rn(a0 - f02.x, a2 - f02.y);
            const __half2 l13 = __floats2half2_rn(a1 - f13.x, a3 - f13.y);
            if constexpr (kFp4) {
                const int64_t q = u >> 1;
                unsigned char* d = sx + (q >> 2) * kGroupBytes + (q & 3) * 32 + (u & 1) * 8;
                *reinterpret_cast<uint2*>(d) = make_uint2(h2_bits(h02), h2_bits(h13));
                *reinterpret_cast<uint2*>(d + 16) = make_uint2(h2_bits(l02), h2_bits(l13));
            } else {  // pairs (0,1), (2,3)
                const __half2 h01 = __halves2half2(__low2half(h02), __low2half(h13));
                const __half2 h23 = __halves2half2(__high2half(h02), __high2half(h13));
                const __half2 l01 = __halves2half2(__low2half(l02), __low2half(l13));
                const __half2 l23 = __halves2half2(__high2half(l02), __high2half(l13));
                unsigned char* d = sx + (u >> 3) * kGroupBytes + (u & 7) * 16;
                *reinterpret_cast<uint4*>(d) =
                    make_uint4(h2_bits(h01), h2_bits(h23), h2_bits(l01), h2_bits(l23));
            }
        };
        for (int64_t u = tid; u < K / 4; u += kThreads) put(u, __ldg(xr + u));
        __syncthreads();
        // ---- the warp's spans
        const unsigned char* bp = supplies ? sx + (4 * s_begin + t) * kGroupBytes + (kFp4 ? 16 : 8) * p
                                           : smem + t * kGroupBytes + (kFp4 ? 8 : 16);
        const int64_t bstride = supplies ? kSpanBytes : 0;
        float acc0 = 0.0f, acc1 = 0.0f;
        auto step = [&](int b) {
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            auto one = [&](auto ic) {
                constexpr int I = decltype(ic)::value;
                if constexpr (kFp4) {
                    uint32_t A[4], B[4];
                    fp4x8_f16(word<I>(qa[b][0]), A);
                    fp4x8_f16(word<I>(qb[b][0]), B);
                    const uint2 x0 = *reinterpret_cast<const uint2*>(bp + 32 * I);
                    const uint2 x1 = *reinterpret_cast<const uint2*>(bp + 32 * I + 8);
                    mma_m16n8k16<false>(c, A[0], B[0], A[2], B[2], x0.x, x0.y);
                    mma_m16n8k16<false>(c, A[1], B[1], A[3], B[3], x1.x, x1.y);
                } else {  // words 2I, 2I+1 of the thread's 32 bytes: k 8I .. 8I+7
                    auto half = [&](auto hc) {
                        constexpr int J = 2 * I + decltype(hc)::value;
                        const uint32_t ua = word<J % 4>(qa[b][J / 4]), ub = word<J % 4>(qb[b][J / 4]);
                        const uint2 xv = *reinterpret_cast<const uint2*>(bp + 16 * J);
                        mma_m16n8k16<false>(c, e4m3x2_f16x2(ua), e4m3x2_f16x2(ub), e4m3x2_f16x2(ua >> 16),
                                            e4m3x2_f16x2(ub >> 16), xv.x, xv.y);
                    };
                    half(std::integral_constant<int, 0>{});
                    half(std::integral_constant<int, 1>{});
                }
            };
            one(std::integral_constant<int, 0>{});
            one(std::integral_constant<int, 1>{});
            one(std::integral_constant<int, 2>{});
            one(std::integral_constant<int, 3>{});
            acc0 = fmaf(e8m0_to_f32_dev(ea[b]), c[0] + c[1], acc0);
            acc1 = fmaf(e8m0_to_f32_dev(eb[b]), c[2] + c[3], acc1);
            bp += bstride;
        };
        for (int64_t sp = s_begin; sp < s_end; sp += 2) {
            step(0);
            if (sp + 2 < s_end) load(0, sp + 2);
            if (sp + 1 < s_end) {
                step(1);
                if (sp + 3 < s_end) load(1, sp + 3);
            }
        }
        // ---- the quad's blocks (FP8: lane t = 0 holds the sum, the others zero), then the K ranges in order
        acc0 += __shfl_xor_sync(0xffffffffu, acc0, 1);
        acc1 += __shfl_xor_sync(0xffffffffu, acc1, 1);
        acc0 += __shfl_xor_sync(0xffffffffu, acc0, 2);
        acc1 += __shfl_xor_sync(0xffffffffu, acc1, 2);
        if (t == 0) red[ks][tile][g] = acc0 * undo, red[ks][tile][g + 8] = acc1 * undo;
        __syncthreads();
        if (tid < TT * 16) {
            const int tl = tid >> 4, row = tid & 15;
            float s = 0.0f;
#pragma unroll
            for (int k = 0; k < KS; ++k) s += red[k][tl][row];
            const int64_t r = (bx * TT + tl) * 16 + row;
            if (kGlu) {
                float u = 0.0f;
#pragma unroll
                for (int k = 0; k < KS; ++k) u += red[k][tl + TT][row];
                if (a.lim > 0.0f) {
                    s = fminf(s, a.lim);
                    u = fminf(fmaxf(u, -a.lim), a.lim);
                }
                s = s / (1.0f + expf(-s)) * u;
            }
            if (r < N) y[orow * ldy + r] = s;
        }
    }
}

// ny: the CTAs along y (token rows, or chunk slots); rows: all segments' rows (sizes the tiles).
template <DType DT, int TILES, int MINB, bool kGlu, bool kMulti>
Status launch_t(B1Args a, int64_t max_k, int64_t ny, cudaStream_t s) {
    constexpr auto kernel = b1_kernel<DT, TILES, MINB, kGlu, kMulti>;
    const int64_t bytes = smem_bytes(max_k);
    if (bytes > (48 << 10) && !allow_dynamic_smem<kernel>(int(smem_bytes(kMaxK))))
        return error("cuda::linear_b1: cannot allow {} B of shared memory", smem_bytes(kMaxK));
    a.s.cta0[0] = 0;
    for (int i = 0; i < a.s.n; ++i)
        a.s.cta0[i + 1] = a.s.cta0[i] + ceil_div_u(a.s.w[i].n_rows, 16 * (kGlu ? TILES / 2 : TILES));
    const dim3 grid(a.s.cta0[a.s.n], unsigned(ny));
    launch_pdl(kernel, grid, kThreads, size_t(bytes), s, a);
    DSV4_CUDA_LAUNCH_CHECK("b1_kernel");
    return Status::ok();
}

// DSV4_B1_TILES (tuning): 16-row tiles per CTA, 1 / 2 / 4 / 8; 0 (default) = the most that still gives
// kMinCtas CTAs (more tiles per CTA: fewer x stagings; fewer: more CTAs in flight). Gate/up counts the
// rows of both weights (at least 2 tiles: one of each).
int tiles_for(int64_t n_rows, int64_t ny, bool glu) {
    static const int forced = env_choice("DSV4_B1_TILES", 0, 8);
    if (forced == 1 || forced == 2 || forced == 4 || forced == 8) return glu ? std::max(forced, 2) : forced;
    const int64_t rows = glu ? 2 * n_rows : n_rows;
    int tiles = 8;
    while (tiles > (glu ? 2 : 1) && int64_t(ceil_div_u(rows, 16 * tiles)) * ny < kMinCtas) tiles /= 2;
    return tiles;
}

// a: weights, x / y, tables filled; the format's kernel for the tile count and occupancy.
template <DType DT>
Status launch(const B1Args& a, bool glu, int64_t max_chunks, cudaStream_t s) {
    // grouped: the chunks that hold pairs are at most n of the max_chunks slots
    const int64_t ny = a.chunks ? max_chunks : a.n;
    if (ny > 65535) return error("cuda::linear_b1: {} token rows is more than one launch covers", ny);
    int64_t rows = 0, max_k = 0;
    for (int i = 0; i < a.s.n; ++i) rows += a.s.w[i].n_rows, max_k = std::max(max_k, a.s.w[i].n_cols);
    // DSV4_B1_OCC (tuning): the CTAs per SM the register cap allows, 2 or 3; 0 (default) = 3 for FP4 (also
    // the gate/up form: 6 experts w1+w3 24.3 µs at 3, 27.5 at 2), 2 for FP8 (its two 16-byte loads per row
    // spill at 3; 4 spilled for both)
    static const int occ_env = env_choice("DSV4_B1_OCC", 0, 3);
    const int occ = occ_env >= 2 ? occ_env : DT == DType::fp4_e2m1 ? 3 : 2;
    auto go = [&](auto tiles_c, auto glu_c) {
        constexpr int TL = decltype(tiles_c)::value;
        constexpr bool G = decltype(glu_c)::value;
        // segments: FP8 without gate/up only (linear_b1_multi), at the FP8 register cap
        if constexpr (DT == DType::f8_e4m3 && !G)
            if (a.s.n > 1) return launch_t<DT, TL, 2, false, true>(a, max_k, ny, s);
        if (occ == 3) return launch_t<DT, TL, 3, G, false>(a, max_k, ny, s);
        return launch_t<DT, TL, 2, G, false>(a, max_k, ny, s);
    };
    auto with = [&](auto glu_c) {
        switch (tiles_for(rows, a.chunks ? std::min(max_chunks, a.n) : a.n, glu)) {
            case 1:
                if constexpr (!decltype(glu_c)::value) return go(std::integral_constant<int, 1>{}, glu_c);
                [[fallthrough]];
            case 2:
                return go(std::integral_constant<int, 2>{}, glu_c);
            case 4:
                return go(std::integral_constant<int, 4>{}, glu_c);
            default:
                return go(std::integral_constant<int, 8>{}, glu_c);
        }
    };
    return glu ? with(std::true_type{}) : with(std::false_type{});
}

Status dispatch(const B1Args& a, bool glu, int64_t max_chunks, cudaStream_t s) {
    if (a.n == 0) return Status::ok();
    for (int i = 0; i < a.s.n; ++i) {
        const DevWeight& w = a.s.w[i];
        if (w.n_cols % kSpanK != 0 || w.n_cols > kMaxK)
            return error("cuda::linear_b1: needs K a multiple of {} up to {} (got {} x {})", kSpanK, kMaxK,
                         w.n_rows, w.n_cols);
        if (w.dtype != a.s.w[0].dtype)
            return error("cuda::linear_b1: one launch takes one weight format ({} and {})",
                         dtype_name(a.s.w[0].dtype), dtype_name(w.dtype));
    }
    switch (a.s.w[0].dtype) {
        case DType::fp4_e2m1:
            return launch<DType::fp4_e2m1>(a, glu, max_chunks, s);
        case DType::f8_e4m3:
            return launch<DType::f8_e4m3>(a, glu, max_chunks, s);
        default:
            return error("cuda::linear_b1: needs FP4 or FP8 weights, got {}", dtype_name(a.s.w[0].dtype));
    }
}

B1Args one(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w, const DevWeight* table,
           const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks, float* y, int64_t ldy) {
    B1Args a{};
    a.s.w[0] = w, a.s.x[0] = x, a.s.y[0] = y, a.s.ldx[0] = ldx, a.s.ldy[0] = ldy, a.s.n = 1;
    a.n = n, a.x_div = x_div, a.table = table, a.perm = perm, a.chunks = chunks, a.n_chunks = n_chunks;
    return a;
}

}  // namespace

bool linear_b1_ok(const WeightRef& w, const float* x, int64_t ldx) {
    const bool fmt = (w.dtype == DType::fp4_e2m1 && w.block_cols == 32) ||
                     (w.dtype == DType::f8_e4m3 && w.block_cols == 128);
    return fmt && w.block_rows > 0 && w.n_rows > 0 && w.n_cols % kSpanK == 0 && w.n_cols <= kMaxK &&
           reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
           ldx % 4 == 0;
}

Status linear_b1(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w,
                 const DevWeight* table, const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks,
                 int64_t max_chunks, float* y, int64_t ldy, cudaStream_t s) {
    if (w.n_rows == 0) return Status::ok();
    return dispatch(one(x, n, ldx, x_div, w, table, perm, chunks, n_chunks, y, ldy), false, max_chunks, s);
}

Status linear_b1_glu(const float* x, int64_t n, int64_t ldx, int64_t x_div, const DevWeight& w1,
                     const DevWeight& w3, const DevWeight* table1, const DevWeight* table3,
                     const int32_t* perm, const int32_t* chunks, const int32_t* n_chunks, int64_t max_chunks,
                     double limit, float* h, int64_t ldh, cudaStream_t s) {
    if (w1.dtype != w3.dtype || w1.n_rows != w3.n_rows || w1.n_cols != w3.n_cols ||
        w1.block_rows != w3.block_rows || w1.block_cols != w3.block_cols)
        return error("cuda::linear_b1_glu: W1 {} x {} and W3 {} x {} differ in shape or format", w1.n_rows,
                     w1.n_cols, w3.n_rows, w3.n_cols);
    if ((table1 == nullptr) != (table3 == nullptr))
        return error("cuda::linear_b1_glu: needs both expert tables or neither");
    if (w1.n_rows == 0) return Status::ok();
    B1Args a = one(x, n, ldx, x_div, w1, table1, perm, chunks, n_chunks, h, ldh);
    a.w3 = w3, a.table3 = table3, a.lim = float(limit);
    return dispatch(a, true, max_chunks, s);
}

Status linear_b1_multi(const LinearSeg* segs, int n_segs, int64_t n, cudaStream_t s) {
    if (n_segs < 1 || n_segs > kMaxSegs)
        return error("cuda::linear_b1_multi: {} segments (1 .. {} per launch)", n_segs, kMaxSegs);
    for (int i = 0; i < n_segs; ++i)
        if (segs[i].w.dtype != DType::f8_e4m3)
            return error("cuda::linear_b1_multi: FP8 segments only (got {})", dtype_name(segs[i].w.dtype));
    B1Args a{};
    a.s.n = 0, a.n = n, a.x_div = 1;
    for (int i = 0; i < n_segs; ++i) {
        const LinearSeg& g = segs[i];
        if (g.w.n_rows == 0) continue;
        const int k = a.s.n++;
        a.s.w[k] = DevWeight::from(g.w), a.s.x[k] = g.x, a.s.y[k] = g.y, a.s.ldx[k] = g.ldx,
        a.s.ldy[k] = g.ldy;
    }
    if (a.s.n == 0) return Status::ok();
    return dispatch(a, false, 0, s);
}

}  // namespace dsv4::cuda
