// Attention-side kernels: sink attention over explicit key lists (spec §6.7), softmax-gated compressor
// pooling (spec §6.5) and Lightning-indexer scores (spec §6.6). Sink attention has two paths: phase A
// (one CTA per (query, head), logits in shared memory) without a workspace, and split-KV with one (a CTA
// per (query, 16 heads, key split) shares each key tile among its heads, then a merge kernel). The
// indexer uses one warp per key. Tested against the cpu:: ops in tests/ops; note: docs/kernels/attention.md.
#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kAttnThreads = 128;

// grid (H, n). Logits of the query's keys in dynamic shared memory [max_keys]; follows
// cpu::sink_attention: max over sink and logits, denom = exp(sink − max) + Σ exp(l − max), o = Σ p·k / denom.
__global__ void __launch_bounds__(kAttnThreads)
    sink_attention_kernel(const float* q, int64_t H, int64_t d, const float* kv, const float* kv2,
                          int64_t split, const int32_t* idx, int64_t max_keys, const float* sink, float scale,
                          float* out) {
    pdl_wait();
    extern __shared__ float logit[];  // [max_keys]
    __shared__ float red[32];
    const int64_t h = blockIdx.x, t = blockIdx.y;
    const float* qh = q + (t * H + h) * d;
    const int32_t* keys = idx + t * max_keys;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    auto row = [&](int32_t r) { return r < split ? kv + int64_t(r) * d : kv2 + (int64_t(r) - split) * d; };

    for (int64_t j = warp; j < max_keys; j += n_warps) {
        const int32_t r = keys[j];
        if (r < 0) continue;
        const float* k = row(r);
        float acc = 0.0f;
        for (int64_t i = lane; i < d; i += 32) acc += qh[i] * k[i];
        acc = warp_sum(acc);
        if (lane == 0) logit[j] = acc * scale;
    }
    __syncthreads();
    float mx = sink[h];
    for (int64_t j = threadIdx.x; j < max_keys; j += blockDim.x)
        if (keys[j] >= 0) mx = fmaxf(mx, logit[j]);
    mx = block_max(mx, red);
    float part = 0.0f;
    for (int64_t j = threadIdx.x; j < max_keys; j += blockDim.x)
        if (keys[j] >= 0) part += (logit[j] = expf(logit[j] - mx));
    const float denom = expf(sink[h] - mx) + block_sum(part, red);  // block_sum's barrier publishes logit[]
    float* o = out + (t * H + h) * d;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float acc = 0.0f;
        for (int64_t j = 0; j < max_keys; ++j) {
            const int32_t r = keys[j];
            if (r >= 0) acc += logit[j] * row(r)[i];
        }
        o[i] = acc / denom;
    }
}

// ---- split-KV path. CTA (query t, head group of kSaHeads, split s) walks the key tiles of its split:
// tile k+1 is copied (cp.async) into the other half of a double buffer while tile k is used. Per tile:
//   A  scores S[h][j] = q_h·k_j·scale: thread (g, hq, kq) = (tid % 16, tid / 16 % 4, tid / 64) forms a
//      4-head × 4-key block over the float4 chunks c ≡ g (mod 16), then a butterfly over g;
//   B  online softmax per head (16 lanes = 16 keys; every lane of a head keeps the same running max and
//      sum in registers): p = exp(s − m_new), corr = exp(m_old − m_new);
//   C  o = o·corr + Σ_j p_j·k_j: thread items (head quad, float4 column chunk), ≤ 2 per thread (d ≤ 512).
// K = V: the same tile serves A and C. Masked (−1) and tail keys are zero rows with score −inf.
// Smem: q of the group [16, d] + 2 key tiles [16, d] = 192·d bytes (96 KB at d = 512: 2 CTAs per SM).
// One split: the sink term is applied here and out is written; else part_{o,m,l} go to the merge.
constexpr int kSaHeads = 16;
constexpr int kSaKeys = 16;
constexpr int kSaThreads = 256;
constexpr int64_t kSaMaxD = 512;
constexpr int64_t kSaMaxSplits = 64;
constexpr int64_t kSaTargetCtas = 264;  // 2 per SM on a 132-SM H100
constexpr int kSaMergeThreads = 128;

struct SaPlan {
    int64_t groups, n_tiles, tiles_per_split, splits;
};

// Splits of the key tiles so that n·groups·splits reaches ~kSaTargetCtas (decode: n = 1, H = 64,
// 640 keys -> 4 groups × 40 splits of one tile), never empty, at most kSaMaxSplits; 1 for large n.
SaPlan sa_plan(int64_t n, int64_t H, int64_t max_keys) {
    SaPlan p{};
    p.groups = (H + kSaHeads - 1) / kSaHeads;
    p.n_tiles = (max_keys + kSaKeys - 1) / kSaKeys;
    const int64_t ctas = std::max<int64_t>(n * p.groups, 1);
    const int64_t want = std::clamp<int64_t>((kSaTargetCtas + ctas - 1) / ctas, 1,
                                             std::min(std::max<int64_t>(p.n_tiles, 1), kSaMaxSplits));
    p.tiles_per_split = std::max<int64_t>(1, (p.n_tiles + want - 1) / want);
    p.splits = std::max<int64_t>(1, (p.n_tiles + p.tiles_per_split - 1) / p.tiles_per_split);
    return p;
}

bool sa_split_supported(int64_t d) {
    return d > 0 && d % 4 == 0 && d <= kSaMaxD;
}

// grid (groups · splits, n): blockIdx.x = group · splits + split.
__global__ void __launch_bounds__(kSaThreads, 2)
    sink_attention_split_kernel(const float* q, int64_t H, int d, const float* kv, const float* kv2,
                                int64_t split, const int32_t* idx, int64_t max_keys, const float* sink,
                                float scale, int64_t tiles_per_split, int64_t splits, bool vec16, float* out,
                                float* part_o, float* part_m, float* part_l) {
    pdl_wait();
    extern __shared__ float4 sa_smem[];
    float* qs = reinterpret_cast<float*>(sa_smem);        // [kSaHeads, d]
    float* ks = qs + kSaHeads * d;                        // [2, kSaKeys, d]
    __shared__ __align__(16) float S[kSaHeads][kSaKeys];  // scores (head, key)
    __shared__ __align__(16) float P[kSaKeys][kSaHeads];  // probabilities (key, head)
    __shared__ __align__(16) float corr[kSaHeads];
    __shared__ float fin[kSaHeads];
    __shared__ int ok[2][kSaKeys];

    const int tid = threadIdx.x, c4 = d / 4;
    const int64_t t = blockIdx.y, s = blockIdx.x % splits, h0 = (blockIdx.x / splits) * kSaHeads;
    const int64_t n_tiles = (max_keys + kSaKeys - 1) / kSaKeys;
    const int64_t tile0 = s * tiles_per_split;
    const int64_t tile1 = tile0 + tiles_per_split < n_tiles ? tile0 + tiles_per_split : n_tiles;
    const int32_t* keys = idx + t * max_keys;

    auto copy_row4 = [&](float* dst, const float* src) {  // one float4 chunk, global -> shared
        if (vec16) {
            cp_async16(dst, src);
        } else {
#pragma unroll
            for (int e = 0; e < 4; ++e) cp_async4(dst + e, src + e);
        }
    };
    // q rows of the group's heads (zero rows past H), part of the first cp.async group
    for (int e = tid; e < kSaHeads * c4; e += kSaThreads) {
        const int hl = e / c4, c = e % c4;
        float* dst = qs + hl * d + 4 * c;
        if (h0 + hl < H)
            copy_row4(dst, q + (t * H + h0 + hl) * d + 4 * c);
        else
            *reinterpret_cast<float4*>(dst) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    auto issue_tile = [&](int64_t tile, int b) {
        float* kb = ks + b * kSaKeys * d;
        for (int e = tid; e < kSaKeys * c4; e += kSaThreads) {
            const int j = e / c4, c = e % c4;
            const int64_t kj = tile * kSaKeys + j;
            const int32_t r = kj < max_keys ? keys[kj] : -1;
            if (c == 0) ok[b][j] = r >= 0;
            float* dst = kb + j * d + 4 * c;
            if (r < 0) {
                *reinterpret_cast<float4*>(dst) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                continue;
            }
            const float* row = r < split ? kv + int64_t(r) * d : kv2 + (int64_t(r) - split) * d;
            copy_row4(dst, row + 4 * c);
        }
    };
    if (tile0 < tile1) issue_tile(tile0, 0);
    cp_async_commit();

    const int g = tid & 15, hq = (tid >> 4) & 3, kq = tid >> 6;  // phase A
    const int sh = tid >> 4, sj = tid & 15;                      // phase B: head sh, key sj
    float m_run = -INFINITY, l_run = 0.0f;                       // of head sh (same on its 16 lanes)
    float4 o[2][4];                                              // phase C: [item][head of the quad]
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int a = 0; a < 4; ++a) o[r][a] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

    for (int64_t tile = tile0; tile < tile1; ++tile) {
        const int b = int(tile - tile0) & 1;
        // buffer b ^ 1 was last read by phase C of the previous tile, which ended at a barrier
        if (tile + 1 < tile1) issue_tile(tile + 1, b ^ 1);
        cp_async_commit();
        cp_async_wait<1>();  // this tile (and q) landed for this thread's copies
        __syncthreads();     // ... and for everyone's, zero rows and ok[] included
        const float* kb = ks + b * kSaKeys * d;

        // A: scores
        float acc[4][4];
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int k = 0; k < 4; ++k) acc[a][k] = 0.0f;
        for (int c = g; c < c4; c += 16) {
            float4 kk[4], qq[4];
#pragma unroll
            for (int k = 0; k < 4; ++k)
                kk[k] = *reinterpret_cast<const float4*>(kb + (4 * kq + k) * d + 4 * c);
#pragma unroll
            for (int a = 0; a < 4; ++a)
                qq[a] = *reinterpret_cast<const float4*>(qs + (4 * hq + a) * d + 4 * c);
#pragma unroll
            for (int a = 0; a < 4; ++a)
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    acc[a][k] = fmaf(qq[a].x, kk[k].x, acc[a][k]);
                    acc[a][k] = fmaf(qq[a].y, kk[k].y, acc[a][k]);
                    acc[a][k] = fmaf(qq[a].z, kk[k].z, acc[a][k]);
                    acc[a][k] = fmaf(qq[a].w, kk[k].w, acc[a][k]);
                }
        }
        float mine = 0.0f;  // lane g keeps block entry (a, k) = (g / 4, g % 4)
#pragma unroll
        for (int a = 0; a < 4; ++a)
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                float v = acc[a][k];
#pragma unroll
                for (int off = 8; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
                if (a * 4 + k == g) mine = v;
            }
        {
            const int j = 4 * kq + (g & 3);
            S[4 * hq + (g >> 2)][j] = ok[b][j] ? mine * scale : -INFINITY;
        }
        __syncthreads();

        // B: online softmax of head sh over this tile's keys
        {
            const float sv = S[sh][sj];
            float mt = sv;
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, off));
            const float m_new = fmaxf(m_run, mt);
            const float p = m_new == -INFINITY ? 0.0f : expf(sv - m_new);
            float ps = p;
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
            const float cr = m_new == -INFINITY ? 1.0f : expf(m_run - m_new);
            l_run = l_run * cr + ps;
            m_run = m_new;
            P[sj][sh] = p;
            if (sj == 0) corr[sh] = cr;
        }
        __syncthreads();

        // C: o = o·corr + Σ_j p_j·k_j
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int item = tid + kSaThreads * r;
            if (item < d) {
                const int iq = item / c4, c = item % c4;
                const float4 cq = *reinterpret_cast<const float4*>(&corr[4 * iq]);
                const float cs[4] = {cq.x, cq.y, cq.z, cq.w};
#pragma unroll
                for (int a = 0; a < 4; ++a) {
                    o[r][a].x *= cs[a];
                    o[r][a].y *= cs[a];
                    o[r][a].z *= cs[a];
                    o[r][a].w *= cs[a];
                }
#pragma unroll 4
                for (int j = 0; j < kSaKeys; ++j) {
                    const float4 kk = *reinterpret_cast<const float4*>(kb + j * d + 4 * c);
                    const float4 pp = *reinterpret_cast<const float4*>(&P[j][4 * iq]);
                    const float ps[4] = {pp.x, pp.y, pp.z, pp.w};
#pragma unroll
                    for (int a = 0; a < 4; ++a) {
                        o[r][a].x = fmaf(ps[a], kk.x, o[r][a].x);
                        o[r][a].y = fmaf(ps[a], kk.y, o[r][a].y);
                        o[r][a].z = fmaf(ps[a], kk.z, o[r][a].z);
                        o[r][a].w = fmaf(ps[a], kk.w, o[r][a].w);
                    }
                }
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();  // nothing may stay in flight at exit (only q when the split had no tile)

    const int64_t row0 = t * H + h0;  // (query, head) row of local head 0
    if (splits == 1) {
        if (sj == 0 && h0 + sh < H) {
            const float sk = sink[h0 + sh], M = fmaxf(sk, m_run);
            const float w = m_run == -INFINITY ? 0.0f : expf(m_run - M);
            fin[sh] = w / (l_run * w + expf(sk - M));
        }
        __syncthreads();
    } else if (sj == 0 && h0 + sh < H) {
        part_m[(row0 + sh) * splits + s] = m_run;
        part_l[(row0 + sh) * splits + s] = l_run;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int item = tid + kSaThreads * r;
        if (item >= d) continue;
        const int iq = item / c4, c = item % c4;
#pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int hl = 4 * iq + a;
            if (h0 + hl >= H) continue;
            float4 v = o[r][a];
            float* dst;
            if (splits == 1) {
                const float f = fin[hl];
                v.x *= f, v.y *= f, v.z *= f, v.w *= f;
                dst = out + (row0 + hl) * d + 4 * c;
            } else {
                dst = part_o + ((row0 + hl) * splits + s) * d + 4 * c;
            }
            dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
        }
    }
}

// grid (H · ceil(d / 128), n): out = Σ_s e^{m_s − M}·o_s / (e^{sink − M} + Σ_s e^{m_s − M}·l_s) with
// M = max(sink, m_s), splits in order.
__global__ void __launch_bounds__(kSaMergeThreads)
    sink_attention_merge_kernel(const float* part_o, const float* part_m, const float* part_l, int64_t H,
                                int64_t d, int64_t splits, const float* sink, float* out, OutRope ro) {
    pdl_wait();
    __shared__ float w[kSaMaxSplits];
    __shared__ float denom;
    const int64_t nd = (d + kSaMergeThreads - 1) / kSaMergeThreads;
    const int64_t h = blockIdx.x / nd, i = (blockIdx.x % nd) * kSaMergeThreads + threadIdx.x;
    const int64_t row = int64_t(blockIdx.y) * H + h;
    const float* pm = part_m + row * splits;
    if (threadIdx.x < 32) {
        float M = sink[h];
        for (int64_t s = 0; s < splits; ++s) M = fmaxf(M, pm[s]);
        for (int64_t s = threadIdx.x; s < splits; s += 32) w[s] = pm[s] == -INFINITY ? 0.0f : expf(pm[s] - M);
        __syncwarp();
        if (threadIdx.x == 0) {
            float den = expf(sink[h] - M);
            for (int64_t s = 0; s < splits; ++s) den += part_l[row * splits + s] * w[s];
            denom = den;
        }
    }
    __syncthreads();
    float acc = 0.0f;
    if (i < d)
        for (int64_t s = 0; s < splits; ++s) acc += w[s] * part_o[(row * splits + s) * d + i];
    float v = acc / denom;
    if (ro.n_pairs > 0) {  // inverse RoPE of pair (off + 2p, off + 2p + 1): lanes 2p', 2p' + 1 (off even)
        const float other = __shfl_xor_sync(0xffffffffu, v, 1);
        const int64_t j = i - ro.off;
        if (j >= 0 && j < 2 * ro.n_pairs) {
            const float angle = float(ro.pos[blockIdx.y]) * ro.inv_freq[j / 2];  // as rope_kernel
            const float c = cosf(angle), sn = -sinf(angle);
            v = (j % 2 == 0) ? v * c - other * sn : other * sn + v * c;
        }
    }
    if (i < d) out[row * d + i] = v;
}

__global__ void compress_pool_kernel(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz,
                                     int64_t d, float* C) {
    pdl_wait();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= d) return;
    float mx = -INFINITY;
    for (int64_t s = 0; s < slots; ++s) mx = fmaxf(mx, z[s * ldz + i]);
    float sum = 0.0f, acc = 0.0f;
    for (int64_t s = 0; s < slots; ++s) {
        const float e = expf(z[s * ldz + i] - mx);
        sum += e;
        acc += e * a[s * lda + i];
    }
    C[i] = acc / sum;
}

constexpr int kIdxWarps = 8;

// grid (ceil(n_keys / kIdxWarps), n): one warp per key s of token t.
__global__ void __launch_bounds__(kIdxWarps * 32)
    indexer_scores_kernel(const float* qi, const float* w, int64_t Hi, int64_t di, const float* keys,
                          int64_t n_keys, const int64_t* n_avail, float* scores) {
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t t = blockIdx.y, s = int64_t(blockIdx.x) * kIdxWarps + (threadIdx.x >> 5);
    if (s >= n_keys) return;
    if (s >= n_avail[t]) {
        if (lane == 0) scores[t * n_keys + s] = -INFINITY;
        return;
    }
    const float acc = indexer_score_warp(qi + t * Hi * di, w + t * Hi, Hi, di, keys + s * di);
    if (lane == 0) scores[t * n_keys + s] = acc;
}

}  // namespace

int64_t sink_attention_work_floats(int64_t n, int64_t H, int64_t d, int64_t max_keys) {
    if (n <= 0 || H <= 0 || !sa_split_supported(d)) return 0;
    const SaPlan p = sa_plan(n, H, max_keys);
    return p.splits > 1 ? n * H * p.splits * (d + 2) : 0;
}

Status sink_attention(const float* q, int64_t n, int64_t H, int64_t d, const float* kv, const float* kv2,
                      int64_t split, const int32_t* idx, int64_t max_keys, const float* sink, float scale,
                      float* out, cudaStream_t s, float* work, const OutRope* rope) {
    if (n == 0 || H == 0) return Status::ok();
    const OutRope ro = rope ? *rope : OutRope{};
    // the inverse RoPE of out: in the merge kernel when there is one (pairs on adjacent lanes), else after
    const auto rope_after = [&]() -> Status {
        if (ro.n_pairs == 0) return Status::ok();
        return cuda::rope(out, n, H, d, ro.off, ro.n_pairs, ro.pos, ro.inv_freq, true, s);
    };
    if (work != nullptr && sa_split_supported(d)) {
        if (n > 65535) return error("cuda::sink_attention: {} queries exceed the grid", n);
        const SaPlan p = sa_plan(n, H, max_keys);
        auto a16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
        const bool vec16 = a16(q) && a16(kv) && (kv2 == nullptr || a16(kv2));
        const size_t smem = size_t(kSaHeads + 2 * kSaKeys) * size_t(d) * sizeof(float);
        if (smem > 48 * 1024)
            DSV4_CUDA_CHECK(cudaFuncSetAttribute(sink_attention_split_kernel,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        float* part_o = work;
        float* part_m = part_o + n * H * p.splits * d;
        float* part_l = part_m + n * H * p.splits;
        launch_pdl(sink_attention_split_kernel, dim3(unsigned(p.groups * p.splits), unsigned(n)), kSaThreads,
                   smem, s, q, H, int(d), kv, kv2, split, idx, max_keys, sink, scale, p.tiles_per_split,
                   p.splits, vec16, out, part_o, part_m, part_l);
        DSV4_CUDA_LAUNCH_CHECK("sink_attention_split_kernel");
        if (p.splits > 1) {
            const int64_t nd = (d + kSaMergeThreads - 1) / kSaMergeThreads;
            const bool fuse = ro.off % 2 == 0 && kSaMergeThreads % 32 == 0;
            OutRope mro = fuse ? ro : OutRope{};
            launch_pdl(sink_attention_merge_kernel, dim3(unsigned(H * nd), unsigned(n)), kSaMergeThreads, 0,
                       s, part_o, part_m, part_l, H, d, p.splits, sink, out, mro);
            DSV4_CUDA_LAUNCH_CHECK("sink_attention_merge_kernel");
            return fuse ? Status::ok() : rope_after();
        }
        return rope_after();
    }
    const size_t smem = size_t(max_keys) * sizeof(float);
    if (smem > 200 * 1024)
        return error("cuda::sink_attention: {} keys per query exceed shared memory", max_keys);
    if (smem > 48 * 1024)
        DSV4_CUDA_CHECK(cudaFuncSetAttribute(sink_attention_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    launch_pdl(sink_attention_kernel, dim3(unsigned(H), unsigned(n)), kAttnThreads, smem, s, q, H, d, kv, kv2,
               split, idx, max_keys, sink, scale, out);
    DSV4_CUDA_LAUNCH_CHECK("sink_attention_kernel");
    return rope_after();
}

Status compress_pool(const float* a, const float* z, int64_t slots, int64_t lda, int64_t ldz, int64_t d,
                     float* C, cudaStream_t s) {
    if (d == 0) return Status::ok();
    launch_pdl(compress_pool_kernel, ceil_div_u(d, 128), 128, 0, s, a, z, slots, lda, ldz, d, C);
    DSV4_CUDA_LAUNCH_CHECK("compress_pool_kernel");
    return Status::ok();
}

Status indexer_scores(const float* qi, const float* w, int64_t n, int64_t Hi, int64_t di, const float* keys,
                      int64_t n_keys, const int64_t* n_avail, float* scores, cudaStream_t s) {
    if (n == 0 || n_keys == 0) return Status::ok();
    launch_pdl(indexer_scores_kernel, dim3(ceil_div_u(n_keys, kIdxWarps), unsigned(n)), kIdxWarps * 32, 0, s,
               qi, w, Hi, di, keys, n_keys, n_avail, scores);
    DSV4_CUDA_LAUNCH_CHECK("indexer_scores_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
