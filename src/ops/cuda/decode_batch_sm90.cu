// Decode steps of many sequences at once (every sequence feeds one token): the state-reading ops of
// model/forward_cuda.cpp, which otherwise run one sequence at a time, as one launch each over a table of
// per-sequence descriptors: compressor emit + RMSNorm + RoPE + state commit, indexer scores over each
// sequence's own keys, the window ring write, and the gather of every sequence's keys into one pool for
// a single sink-attention call. Same arithmetic as the per-sequence kernels (model_helpers_sm90.cu,
// norm_rope_sm90.cu, attention_sm90.cu) in the same order; tested through the whole model
// (tests/model/test_cuda_model.cpp: a decode batch equals each sequence alone).
#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ const DecodeCompressor& pick(const DecodeSeq& q, int which) {
    return which == 0 ? q.cmp : q.idx;
}

// One CTA per sequence. C [d] in dynamic shared memory.
__global__ void __launch_bounds__(kThreads)
    compressor_decode_kernel(const float* a, const float* z, const float* ape, const DecodeSeq* seqs,
                             int which, int64_t m, int64_t c, int64_t d, const float* nrm, float eps,
                             int64_t rd, const float* inv_freq) {
    pdl_wait();
    extern __shared__ float C[];
    __shared__ float red[32];
    const DecodeSeq& q = seqs[blockIdx.x];
    const DecodeCompressor& st = pick(q, which);
    const int64_t p = q.p, cd = c * d, slot_p = p % m;
    const float* ra = a + int64_t(blockIdx.x) * cd;  // this token's projections
    const float* rz = z + int64_t(blockIdx.x) * cd;
    const float* rape = ape + slot_p * cd;
    if ((p + 1) % m == 0) {  // window w = p / m completes: pool, norm, RoPE, append
        const int64_t w = p / m, n_prev = (c == 2 && w > 0) ? m : 0, n_slots = n_prev + m;
        for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
            auto slot = [&](int64_t j, float& av, float& zv) {
                const int64_t half = (c == 2 && j >= n_prev) ? 1 : 0;
                if (j < n_prev) {  // previous window: its A halves
                    av = st.prev_a[j * d + i];
                    zv = st.prev_z[j * d + i];
                } else if (j - n_prev < m - 1) {  // this window's earlier tokens: pending rows (ape included)
                    const int64_t s = j - n_prev;
                    av = st.pend_a[s * cd + half * d + i];
                    zv = st.pend_z[s * cd + half * d + i];
                } else {  // this token
                    av = ra[half * d + i];
                    zv = rz[half * d + i] + rape[half * d + i];
                }
            };
            C[i] = pool_slots(n_slots, slot);
        }
        __syncthreads();
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < d; i += blockDim.x) ss += C[i] * C[i];
        ss = block_sum(ss, red);
        const float inv = 1.0f / sqrtf(ss / float(d) + eps);
        for (int64_t i = threadIdx.x; i < d; i += blockDim.x) C[i] = C[i] * inv * nrm[i];
        __syncthreads();
        const int64_t off = d - rd, pos = w * m;  // RoPE at the window's first token
        for (int64_t i = threadIdx.x; i < rd / 2; i += blockDim.x) {
            const float angle = float(pos) * inv_freq[i];
            const float cs = cosf(angle), sn = sinf(angle);
            const float x0 = C[off + 2 * i], x1 = C[off + 2 * i + 1];
            C[off + 2 * i] = x0 * cs - x1 * sn;
            C[off + 2 * i + 1] = x0 * sn + x1 * cs;
        }
        __syncthreads();
        float* out = st.entries + st.n_entries * d;
        for (int64_t i = threadIdx.x; i < d; i += blockDim.x) out[i] = C[i];
        if (c == 2)  // keep the A halves of this window for the next one (rows before this token: pending)
            for (int64_t e = threadIdx.x; e < m * d; e += blockDim.x) {
                const int64_t s = e / d, i = e % d;
                st.prev_a[e] = s < m - 1 ? st.pend_a[s * cd + i] : ra[i];
                st.prev_z[e] = s < m - 1 ? st.pend_z[s * cd + i] : rz[i] + rape[i];
            }
        __syncthreads();
    }
    for (int64_t k = threadIdx.x; k < cd; k += blockDim.x) {
        st.pend_a[slot_p * cd + k] = ra[k];
        st.pend_z[slot_p * cd + k] = rz[k] + rape[k];
    }
}

constexpr int kIdxWarps = 8;

// grid (ceil(max_keys / kIdxWarps), B): one warp per key s of sequence b (as indexer_scores_kernel). The
// fallback for head shapes the staged kernel below does not take.
__global__ void __launch_bounds__(kIdxWarps * 32)
    indexer_decode_kernel(const float* qi, const float* w, int64_t Hi, int64_t di, const DecodeSeq* seqs,
                          int64_t max_keys, float* scores) {
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t b = blockIdx.y, s = int64_t(blockIdx.x) * kIdxWarps + (threadIdx.x >> 5);
    if (s >= max_keys) return;
    const DecodeSeq& q = seqs[b];
    const int64_t n_keys = q.idx.n_entries + ((q.p + 1) % 4 == 0 ? 1 : 0), avail = (q.p + 1) / 4;
    if (s >= n_keys || s >= avail) {
        if (lane == 0) scores[b * max_keys + s] = -INFINITY;
        return;
    }
    const float acc = indexer_score_warp(qi + b * Hi * di, w + b * Hi, Hi, di, q.idx.entries + s * di);
    if (lane == 0) scores[b * max_keys + s] = acc;
}

// The same scores with sequence b's q [Hi, di] staged once per CTA in shared memory (rows padded to di + 1,
// so lanes reading one dim of 32 different heads hit 32 banks) and lane l owning heads l + 32j (j < HPL):
// its dot products run over di in order from shared memory, then Σ_h w[h]·ReLU(dot_h) is one warp sum.
// (indexer_score_warp re-reads q from L1/L2 for every key, 64 warp sums per key: ~29 µs for 256 keys.)
// grid (min(ceil(max_keys / kIdxWarps), kIdxMaxCtas), B); warp w takes keys blockIdx.x·8 + w, + grid·8, ...
constexpr int64_t kIdxMaxCtas = 264;
int64_t idx_staged_smem(int64_t Hi, int64_t di) {
    return (Hi * (di + 1) + kIdxWarps * di) * int64_t(sizeof(float));
}
template <int HPL>
__global__ void __launch_bounds__(kIdxWarps * 32)
    indexer_decode_staged_kernel(const float* qi, const float* w, int64_t Hi, int64_t di,
                                 const DecodeSeq* seqs, int64_t max_keys, float* scores) {
    extern __shared__ float sm[];  // [Hi, di + 1] q | [kIdxWarps, di] the warps' keys
    pdl_wait();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t b = blockIdx.y, ld = di + 1;
    const DecodeSeq& q = seqs[b];
    const int64_t n_keys = q.idx.n_entries + ((q.p + 1) % 4 == 0 ? 1 : 0), avail = (q.p + 1) / 4;
    float* sk = sm + Hi * ld + warp * di;
    const float* qb = qi + b * Hi * di;
    for (int64_t e = threadIdx.x; e < Hi * di; e += blockDim.x) sm[(e / di) * ld + e % di] = qb[e];
    float wl[HPL];
    const float* qrow[HPL];
#pragma unroll
    for (int j = 0; j < HPL; ++j) {
        const int64_t h = lane + 32 * j;
        wl[j] = h < Hi ? w[b * Hi + h] : 0.0f;
        qrow[j] = sm + (h < Hi ? h : Hi - 1) * ld;  // past Hi: a valid row, weight 0
    }
    __syncthreads();
    for (int64_t s = int64_t(blockIdx.x) * kIdxWarps + warp; s < max_keys;
         s += int64_t(gridDim.x) * kIdxWarps) {
        if (s >= n_keys || s >= avail) {
            if (lane == 0) scores[b * max_keys + s] = -INFINITY;
            continue;
        }
        const float* key = q.idx.entries + s * di;
        for (int64_t i = lane; i < di; i += 32) sk[i] = key[i];
        __syncwarp();
        float dot[HPL];
#pragma unroll
        for (int j = 0; j < HPL; ++j) dot[j] = 0.0f;
#pragma unroll 4
        for (int64_t i = 0; i < di; ++i) {
            const float kv = sk[i];
#pragma unroll
            for (int j = 0; j < HPL; ++j) dot[j] += qrow[j][i] * kv;
        }
        float acc = 0.0f;
#pragma unroll
        for (int j = 0; j < HPL; ++j) acc += wl[j] * fmaxf(dot[j], 0.0f);
        acc = warp_sum(acc);
        if (lane == 0) scores[b * max_keys + s] = acc;
        __syncwarp();  // the key row is read by all lanes before the next key overwrites it
    }
}

// grid (max_keys, B): key k of sequence b = window position (oldest first) or compressed entry; pool row
// b·max_keys + k, idx[b, k] that row or −1.
__global__ void gather_keys_decode_kernel(const DecodeSeq* seqs, int64_t W, int64_t m, const int32_t* sel,
                                          int64_t topk, int64_t max_keys, int64_t d, float* pool,
                                          int32_t* idx, const float* kv) {
    pdl_wait();
    const int64_t b = blockIdx.y, k = blockIdx.x;
    const DecodeSeq& q = seqs[b];
    const int64_t nw = q.p + 1 < W ? q.p + 1 : W;
    const float* src = nullptr;
    float* ring_row =
        nullptr;  // kv: the newest key also goes to its ring slot (no other CTA reads that slot)
    if (kv != nullptr && k == nw - 1) {
        src = kv + b * d;
        ring_row = q.ring + (q.p % W) * d;
    } else if (k < nw) {
        src = q.ring + ((q.p - nw + 1 + k) % W) * d;
    } else if (m != 0) {
        const int64_t n_cmp = q.cmp.n_entries + ((q.p + 1) % m == 0 ? 1 : 0);  // after this step's emit
        const int64_t avail = min((q.p + 1) / m, n_cmp), j = k - nw;
        if (sel) {
            const int32_t s = j < topk ? sel[b * topk + j] : -1;  // valid ids come first, −1 after
            if (s >= 0 && s < avail) src = q.cmp.entries + int64_t(s) * d;
        } else if (j < avail) {
            src = q.cmp.entries + j * d;
        }
    }
    if (threadIdx.x == 0) idx[b * max_keys + k] = src ? int32_t(b * max_keys + k) : -1;
    if (!src) return;
    float* dst = pool + (b * max_keys + k) * d;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        const float v = src[i];
        dst[i] = v;
        if (ring_row) ring_row[i] = v;
    }
}

}  // namespace

Status compressor_decode(const float* a, const float* z, const float* ape, const DecodeSeq* seqs, int64_t B,
                         int which, int64_t m, int64_t c, int64_t d, const float* nrm, double eps, int64_t rd,
                         const float* inv_freq, cudaStream_t s) {
    if (B == 0) return Status::ok();
    const size_t smem = size_t(d) * sizeof(float);
    if (smem > 48 * 1024) return error("cuda::compressor_decode: entry width {} too large", d);
    launch_pdl(compressor_decode_kernel, unsigned(B), kThreads, smem, s, a, z, ape, seqs, which, m, c, d, nrm,
               float(eps), rd, inv_freq);
    DSV4_CUDA_LAUNCH_CHECK("compressor_decode_kernel");
    return Status::ok();
}

Status indexer_scores_decode(const float* qi, const float* w, int64_t B, int64_t Hi, int64_t di,
                             const DecodeSeq* seqs, int64_t max_keys, float* scores, cudaStream_t s) {
    if (B == 0 || max_keys == 0) return Status::ok();
    const int64_t smem = idx_staged_smem(Hi, di);
    const unsigned gx = unsigned(std::min<int64_t>(ceil_div_u(max_keys, kIdxWarps), kIdxMaxCtas));
    if (Hi <= 128 && smem <= 48 * 1024) {
        auto go = [&](auto kernel) {
            launch_pdl(kernel, dim3(gx, unsigned(B)), kIdxWarps * 32, size_t(smem), s, qi, w, Hi, di, seqs,
                       max_keys, scores);
        };
        if (Hi <= 32)
            go(indexer_decode_staged_kernel<1>);
        else if (Hi <= 64)
            go(indexer_decode_staged_kernel<2>);
        else
            go(indexer_decode_staged_kernel<4>);
        DSV4_CUDA_LAUNCH_CHECK("indexer_decode_staged_kernel");
        return Status::ok();
    }
    launch_pdl(indexer_decode_kernel, dim3(ceil_div_u(max_keys, kIdxWarps), unsigned(B)), kIdxWarps * 32, 0,
               s, qi, w, Hi, di, seqs, max_keys, scores);
    DSV4_CUDA_LAUNCH_CHECK("indexer_decode_kernel");
    return Status::ok();
}

Status gather_keys_decode(const DecodeSeq* seqs, int64_t B, int64_t W, int64_t m, const int32_t* sel,
                          int64_t topk, int64_t max_keys, int64_t d, float* pool, int32_t* idx,
                          cudaStream_t s, const float* kv) {
    if (B == 0 || max_keys == 0) return Status::ok();
    launch_pdl(gather_keys_decode_kernel, dim3(unsigned(max_keys), unsigned(B)), 128, 0, s, seqs, W, m, sel,
               topk, max_keys, d, pool, idx, kv);
    DSV4_CUDA_LAUNCH_CHECK("gather_keys_decode_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
