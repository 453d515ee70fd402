// Selection kernels with dsv4's tie rule (score descending, ties to the LOWER index, −0 == +0): the
// indexer top-k and the MoE router (sqrtsoftplus, hash routing or top-k of score + bias, normalised
// weights). The indexer top-k is a per-row radix select (one CTA per row) on a 64-bit composite key that
// orders the elements exactly as the tie rule does: (order-preserving score key, inverted index), so every
// key is distinct and "the k largest composites" is exactly cpu::topk_lower_index's set. Histogram passes
// of 11 bits narrow the k-th composite down until at most `cap` candidates remain, those are gathered and
// sorted in shared memory (64-runs by bitonic stages in registers, then merge rounds by rank). k above
// kTopkMaxK falls back to the rank kernel (O(n²) per row). Tested against cpu::topk_lower_index /
// cpu::moe_route (bitwise indices) in tests/ops (op_cases.cpp, op_cases_topk.cpp); note:
// docs/kernels/topk.md.
#include <algorithm>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4::cuda {

namespace {

// a precedes b: greater score, or equal score (−0 == +0 under float compare) and lower index
__device__ __forceinline__ bool before(float sa, int64_t a, float sb, int64_t b) {
    return sa > sb || (sa == sb && a < b);
}

// Fallback for k > kTopkMaxK. grid (ceil(n_cols / 256), n): thread = element i of row t.
__global__ void topk_rank_kernel(const float* scores, int64_t n_cols, const int64_t* n_valid, int64_t k,
                                 int32_t* sel) {
    pdl_wait();
    const int64_t t = blockIdx.y, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const float* row = scores + t * n_cols;
    const int64_t nv = min(n_valid[t], n_cols);
    if (i < nv) {
        const float si = row[i];
        int64_t rank = 0;
        for (int64_t j = 0; j < nv; ++j) rank += before(row[j], j, si, i);
        if (rank < k) sel[t * k + rank] = int32_t(i);
    }
    // slots no element can fill: ranks nv .. k−1
    for (int64_t j = nv + i; j < k; j += int64_t(gridDim.x) * blockDim.x) sel[t * k + j] = -1;
}

// ---- radix select
using u64 = unsigned long long;
constexpr unsigned kFull = 0xffffffffu;
constexpr int kTopkThreads = 512;
constexpr int kTopkWarps = kTopkThreads / 32;
constexpr int kTopkDigitBits = 11;  // bits of the composite resolved per histogram pass
constexpr int kTopkBins = 1 << kTopkDigitBits;
constexpr int kTopkBinsPerThread = kTopkBins / kTopkThreads;
constexpr int64_t kTopkMaxK = 2048;  // larger k: the rank kernel
constexpr int kTopkSortMax = 4096;   // candidates: cap = 2·pow2(k), 512 .. 4096 composites (×2 buffers)
constexpr int64_t kTopkCacheCols = 16384;     // keys of a row's first 16384 columns kept in shared memory,
constexpr int64_t kTopkCacheColsFew = 40960;  // or 40960 when the rows fit one CTA per SM (decode)
constexpr int64_t kTopkFewRows = 128;
constexpr int kTopkLoadUnroll = 8;  // loads in flight per thread
constexpr int kTopkScanUnroll = 4;  // elements per thread and round of the histogram passes and the gather
static_assert(kTopkBins % kTopkThreads == 0, "every thread owns the same number of histogram bins");
static_assert(kTopkSortMax >= 2 * kTopkMaxK, "the candidate buffer must hold k + one bucket");

// Order-preserving map float -> u32 (a > b as floats <=> key(a) > key(b)), −0 mapped to +0 first so the two
// zeros share a key; NaNs land beyond ±inf (no crash; the CPU order with NaN is unspecified anyway).
__device__ __forceinline__ uint32_t order_key(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u << 1) == 0u) u = 0u;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Composite of element i: key in the high bits, (lo_mask − i) in the low idx_bits bits. Larger composite =
// earlier in dsv4's order (greater score, then lower index); composites of one row are all distinct.
__device__ __forceinline__ u64 composite(uint32_t key, int i, int idx_bits, u64 lo_mask) {
    return (u64(key) << idx_bits) | (lo_mask - u64(i));
}

// Running state of the select: the digits chosen so far (prefix), the number of elements whose composite
// prefix is greater (count_gt), inside the chosen bucket (count_eq), and how many the bucket must still give.
struct TopkSelect {
    u64 prefix;
    int count_gt, count_eq, k_rem, done;
};

// The whole block, after a histogram pass's barrier: thread tid owns bins kTopkBins − 1 − (tid·4 + j)
// (descending digits); a block-wide scan finds the bucket where the count from the top reaches k_rem, its
// digit (width bits) is appended to the prefix. Clears the histogram; ends with a barrier.
__device__ __forceinline__ void topk_pick_bucket(uint32_t* hist, uint32_t* warp_sums, TopkSelect& st,
                                                 int width, int cap) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const TopkSelect s = st;
    uint32_t h[kTopkBinsPerThread], sum = 0;
#pragma unroll
    for (int j = 0; j < kTopkBinsPerThread; ++j) {
        const int b = kTopkBins - 1 - (tid * kTopkBinsPerThread + j);
        h[j] = hist[b];
        hist[b] = 0u;
        sum += h[j];
    }
    uint32_t incl = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint32_t v = __shfl_up_sync(kFull, incl, o);
        if (lane >= o) incl += v;
    }
    if (lane == 31) warp_sums[warp] = incl;
    __syncthreads();  // also: every thread has read st before one of them writes it
    uint32_t above = incl - sum;
    for (int w = 0; w < warp; ++w) above += warp_sums[w];
    const uint32_t need = uint32_t(s.k_rem);
#pragma unroll
    for (int j = 0; j < kTopkBinsPerThread; ++j) {
        if (above < need && above + h[j] >= need) {  // exactly one (thread, j): counts are ≥ 0, Σ ≥ need
            const int gt = s.count_gt + int(above);
            st.prefix = (s.prefix << width) | u64(kTopkBins - 1 - (tid * kTopkBinsPerThread + j));
            st.count_gt = gt;
            st.count_eq = int(h[j]);
            st.k_rem = s.k_rem - int(above);
            st.done = gt + int(h[j]) <= cap;
        }
        above += h[j];
    }
    __syncthreads();
}

// Sorts each 64-element run of buf[0 .. n64) descending, in registers: a warp per run (lane holds positions
// lane and lane + 32 of it), bitonic stages of strides 32 (in the thread) and 16 .. 1 (shuffles).
__device__ __forceinline__ void sort_runs64(u64* buf, int n64) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int seg = warp; seg < n64 / 64; seg += kTopkWarps) {
        u64 v[2] = {buf[seg * 64 + lane], buf[seg * 64 + 32 + lane]};
        for (int size = 2; size <= 64; size <<= 1) {
            int stride = size >> 1;
            if (stride == 32) {  // size 64: the pair is (v[0], v[1]), descending
                if (v[0] < v[1]) {
                    const u64 tmp = v[0];
                    v[0] = v[1];
                    v[1] = tmp;
                }
                stride = 16;
            }
            for (; stride > 0; stride >>= 1) {
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const int e = lane + 32 * h;  // position in the run
                    const u64 y = __shfl_xor_sync(kFull, v[h], stride);
                    // lower position of a pair keeps the larger in a descending block ((e & size) == 0)
                    const bool keep_max = ((e & stride) == 0) == ((e & size) == 0);
                    v[h] = (y > v[h]) == keep_max ? y : v[h];  // equal values: either
                }
            }
        }
        buf[seg * 64 + lane] = v[0];
        buf[seg * 64 + 32 + lane] = v[1];
    }
}

// How many of the first len elements of the descending run r satisfy r[j] > x (or ≥ x when or_equal): they
// form a prefix, found by binary lifting with steps from pow2 ≥ len down to 1.
__device__ __forceinline__ int count_before(const u64* r, int len, int pow2, u64 x, bool or_equal) {
    int cnt = 0;
    for (int step = pow2; step > 0; step >>= 1)
        if (cnt + step <= len) {
            const u64 y = r[cnt + step - 1];
            if (y > x || (or_equal && y == x)) cnt += step;
        }
    return cnt;
}

// Sorts x[0 .. n64) descending (n64 a multiple of 64, block-uniform; values distinct except equal pads, which
// stay a permutation): 64-runs in registers, then merge rounds that place every element at its rank in the
// merged pair of runs (own index + how many of the partner run go before it), ping-ponging between x and y.
// Returns the buffer holding the result. One barrier per round.
__device__ __forceinline__ u64* sort_desc(u64* x, u64* y, int n64) {
    sort_runs64(x, n64);
    __syncthreads();
    for (int L = 64; L < n64; L <<= 1) {
        for (int p = threadIdx.x; p < n64; p += kTopkThreads) {
            const int s =
                p & ~(2 * L - 1);  // the pair of runs [s, s + L) and [s + L, s + 2L), clipped to n64
            const u64 v = x[p];
            int to;
            if ((p & L) == 0) {  // first run: after the partner's elements that are greater
                const int len_b = min(max(n64 - (s + L), 0), L);
                to = p + count_before(x + s + L, len_b, L, v, false);
            } else {  // second run: after the first run's elements that are greater or equal
                to = p - L + count_before(x + s, L, L, v, true);
            }
            y[to] = v;
        }
        __syncthreads();
        u64* t = x;
        x = y;
        y = t;
    }
    return x;
}

// One CTA per row. Dynamic shared memory: buf [cap] u64 (candidates), buf2 [cap] u64 (the sort's other
// buffer), then keys [n_cache] u32 (the order keys of the row's first n_cache columns; later columns are
// re-read from global memory by each pass).
// cap: a power of two ≥ max(2·k, 512); idx_bits: n_cols ≤ 2^idx_bits, ≤ 31.
__global__ void __launch_bounds__(kTopkThreads, 3)
    topk_radix_kernel(const float* __restrict__ scores, int64_t n_cols, const int64_t* __restrict__ n_valid,
                      int k, int cap, int n_cache, int idx_bits, int32_t* __restrict__ sel) {
    pdl_wait();
    extern __shared__ __align__(16) unsigned char topk_smem[];
    u64* buf = reinterpret_cast<u64*>(topk_smem);
    u64* buf2 = buf + cap;
    uint32_t* keys = reinterpret_cast<uint32_t*>(buf2 + cap);  // 16-byte aligned: cap is a multiple of 2
    __shared__ uint32_t hist[kTopkBins];
    __shared__ uint32_t warp_sums[kTopkWarps];
    __shared__ TopkSelect st;
    __shared__ int n_gathered;

    const int tid = threadIdx.x, lane = tid & 31;
    const int64_t t = blockIdx.x;
    const float* row = scores + t * n_cols;
    const int64_t nv64 = min(n_valid[t], n_cols);
    const int nv = nv64 > 0 ? int(nv64) : 0;
    const u64 lo_mask = (u64(1) << idx_bits) - 1u;
    const int total_bits = 32 + idx_bits;

    int n;  // candidates in buf[0 .. n), block-uniform
    if (nv <= cap) {
        // every valid element is a candidate, at slot = its index (cap ≤ kTopkLoadUnroll · kTopkThreads:
        // one round of loads)
        for (int base = 0; base < nv; base += kTopkLoadUnroll * kTopkThreads) {
            float v[kTopkLoadUnroll];
#pragma unroll
            for (int u = 0; u < kTopkLoadUnroll; ++u) {
                const int i = base + u * kTopkThreads + tid;
                v[u] = i < nv ? row[i] : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < kTopkLoadUnroll; ++u) {
                const int i = base + u * kTopkThreads + tid;
                if (i < nv) buf[i] = composite(order_key(v[u]), i, idx_bits, lo_mask);
            }
        }
        n = nv;
    } else {
        const int n_cached = min(nv, n_cache);
        for (int b = tid; b < kTopkBins; b += kTopkThreads) hist[b] = 0u;
        if (tid == 0) {
            st = TopkSelect{0ull, 0, nv, k, 0};
            n_gathered = 0;
        }
        if ((reinterpret_cast<uintptr_t>(row) & 15u) == 0) {  // 16-byte loads, then the < 4 left over
            const float4* row4 = reinterpret_cast<const float4*>(row);
            uint4* keys4 = reinterpret_cast<uint4*>(keys);
            const int n4 = n_cached / 4;
            for (int base = 0; base < n4; base += 4 * kTopkThreads) {
                float4 v[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int q = base + u * kTopkThreads + tid;
                    v[u] = q < n4 ? row4[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                }
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const int q = base + u * kTopkThreads + tid;
                    if (q < n4)
                        keys4[q] = make_uint4(order_key(v[u].x), order_key(v[u].y), order_key(v[u].z),
                                              order_key(v[u].w));
                }
            }
            for (int i = 4 * n4 + tid; i < n_cached; i += kTopkThreads) keys[i] = order_key(row[i]);
        } else {
            for (int base = 0; base < n_cached; base += kTopkLoadUnroll * kTopkThreads) {
                float v[kTopkLoadUnroll];
#pragma unroll
                for (int u = 0; u < kTopkLoadUnroll; ++u) {
                    const int i = base + u * kTopkThreads + tid;
                    v[u] = i < n_cached ? row[i] : 0.0f;
                }
#pragma unroll
                for (int u = 0; u < kTopkLoadUnroll; ++u) {
                    const int i = base + u * kTopkThreads + tid;
                    if (i < n_cached) keys[i] = order_key(v[u]);
                }
            }
        }
        __syncthreads();
        auto key_at = [&](int i) { return i < n_cached ? keys[i] : order_key(row[i]); };

        // histogram passes over the composite, kTopkDigitBits from the top each, until the elements at or
        // above the chosen prefix fit in buf (at the latest when the whole composite is fixed: count_eq = 1,
        // count_gt = k − 1). The selection is then {i : composite(i) >> lo_bit ≥ prefix}.
        int lo_bit = total_bits;
        u64 prefix = 0;
        for (int pass = 0; lo_bit > 0; ++pass) {
            const int hi = lo_bit;
            lo_bit = max(hi - kTopkDigitBits, 0);
            const int width = hi - lo_bit;
            const uint32_t digit_mask = (1u << width) - 1u;
            // digits inside the score key (the first passes) are taken from the 32-bit key alone
            const bool in_key = lo_bit >= idx_bits;
            for (int base = 0; base < nv; base += kTopkScanUnroll * kTopkThreads) {  // warp-uniform trips
                uint32_t kv[kTopkScanUnroll];
#pragma unroll
                for (int u = 0; u < kTopkScanUnroll; ++u) {
                    const int i = base + u * kTopkThreads + tid;
                    kv[u] = i < nv ? key_at(i) : 0u;
                }
#pragma unroll
                for (int u = 0; u < kTopkScanUnroll; ++u) {
                    const int i = base + u * kTopkThreads + tid;
                    bool match;
                    uint32_t d;
                    if (in_key) {
                        match = pass == 0 || (kv[u] >> (hi - idx_bits)) == uint32_t(prefix);
                        d = (kv[u] >> (lo_bit - idx_bits)) & digit_mask;
                    } else {
                        const u64 c = composite(kv[u], i, idx_bits, lo_mask);
                        match = (c >> hi) == prefix;  // pass ≥ 2 here
                        d = uint32_t(c >> lo_bit) & digit_mask;
                    }
                    const uint32_t digit =
                        i < nv && match ? d : uint32_t(kTopkBins);  // kTopkBins: not counted
                    // a warp whose 32 digits agree (ties) adds once; otherwise one shared atomic per element
                    // (__match_any_sync aggregation measured slower on H100)
                    const uint32_t d0 = __shfl_sync(kFull, digit, 0);
                    if (__all_sync(kFull, digit == d0)) {
                        if (lane == 0 && d0 < kTopkBins) atomicAdd(&hist[d0], 32u);
                    } else if (digit < kTopkBins) {
                        atomicAdd(&hist[digit], 1u);
                    }
                }
            }
            __syncthreads();
            topk_pick_bucket(hist, warp_sums, st, width, cap);
            prefix = st.prefix;
            if (st.done) break;
        }

        // gather: every element with composite prefix ≥ the chosen one (count_gt + count_eq ≤ cap of them)
        const bool in_key = lo_bit >= idx_bits;
        for (int base = 0; base < nv; base += kTopkScanUnroll * kTopkThreads) {
            uint32_t kv[kTopkScanUnroll];
#pragma unroll
            for (int u = 0; u < kTopkScanUnroll; ++u) {
                const int i = base + u * kTopkThreads + tid;
                kv[u] = i < nv ? key_at(i) : 0u;
            }
            unsigned m[kTopkScanUnroll];
            int n_take = 0;
#pragma unroll
            for (int u = 0; u < kTopkScanUnroll; ++u) {
                const int i = base + u * kTopkThreads + tid;
                const bool take = in_key ? u64(kv[u] >> (lo_bit - idx_bits)) >= prefix
                                         : (composite(kv[u], i, idx_bits, lo_mask) >> lo_bit) >= prefix;
                m[u] = __ballot_sync(kFull, i < nv && take);
                n_take += __popc(m[u]);
            }
            if (n_take > 0) {  // warp-uniform: one slot reservation per warp and round
                int slot = 0;
                if (lane == 0) slot = atomicAdd(&n_gathered, n_take);
                slot = __shfl_sync(kFull, slot, 0);
#pragma unroll
                for (int u = 0; u < kTopkScanUnroll; ++u) {
                    const int i = base + u * kTopkThreads + tid;
                    const int my = slot + __popc(m[u] & ((1u << lane) - 1u));
                    if (((m[u] >> lane) & 1u) && my < cap)  // my < cap: holds when the counts are right
                        buf[my] = composite(kv[u], i, idx_bits, lo_mask);
                    slot += __popc(m[u]);
                }
            }
        }
        __syncthreads();
        n = min(n_gathered, cap);
    }

    // pad to a multiple of 64 with 0 (sorts last; a real composite equal to 0 decodes identically)
    const int n64 = (max(n, 1) + 63) & ~63;
    for (int i = n + tid; i < n64; i += kTopkThreads) buf[i] = 0ull;
    __syncthreads();
    const u64* sorted = n > 1 ? sort_desc(buf, buf2, n64) : buf;  // n is block-uniform

    const int n_out = min(n, k);
    int32_t* out = sel + t * k;
    for (int j = tid; j < k; j += kTopkThreads)
        out[j] = j < n_out ? int32_t(lo_mask - (sorted[j] & lo_mask)) : -1;
}

// PyTorch softplus (beta 1, threshold 20)
__device__ __forceinline__ float softplus_dev(float x) {
    return x > 20.0f ? x : log1pf(expf(x));
}

constexpr int kRouteThreads = 256;
constexpr int kRouteGroupMaxK = 32;

// One CTA per token; scores in dynamic shared memory [E + 4], then the token's expert ids [k] (thread 0's
// sums and the grouping read them there, not through global memory).
__global__ void __launch_bounds__(kRouteThreads)
    moe_route_kernel(const float* logits, int64_t E, int64_t k, const int32_t* ids, const int64_t* tid2eid,
                     int64_t n_vocab, const float* bias, float route_scale, int32_t* out_idx, float* out_w,
                     MoeGroupOut g) {
    pdl_wait();
    extern __shared__ float s[];  // [E + 4] scores | [k] ids
    __shared__ int32_t s_order[kRouteGroupMaxK];
    const int64_t t = blockIdx.x;
    int32_t* si = reinterpret_cast<int32_t*>(s + E + 4);
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x) s[e] = sqrtf(softplus_dev(logits[t * E + e]));
    __syncthreads();
    if (tid2eid) {
        const int64_t id = ids[t];
        for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
            const int64_t e = (id >= 0 && id < n_vocab) ? tid2eid[id * k + j] : -1;
            si[j] = (e >= 0 && e < E) ? int32_t(e) : -1;  // the host validates ids and the table at load
        }
    } else {
        for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
            const float se = s[e] + (bias ? bias[e] : 0.0f);
            int64_t rank = 0;
            for (int64_t f = 0; f < E; ++f) rank += before(s[f] + (bias ? bias[f] : 0.0f), f, se, e);
            if (rank < k) si[rank] = int32_t(e);
        }
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < k; j += blockDim.x) out_idx[t * k + j] = si[j];
    if (threadIdx.x == 0) {  // sequential sum in slot order, as cpu::moe_route
        float sum = 0.0f;
        for (int64_t j = 0; j < k; ++j) sum += si[j] >= 0 ? s[si[j]] : __uint_as_float(0x7fc00000u);
        for (int64_t j = 0; j < k; ++j)
            out_w[t * k + j] =
                (si[j] >= 0 ? s[si[j]] : __uint_as_float(0x7fc00000u)) / (sum + 1e-20f) * route_scale;
        if (g.perm) {  // one token: moe_group's table of its k pairs (stable by expert, chunks of ≤ tok)
            int np = 0;
            for (int j = 0; j < int(k); ++j) {
                const int32_t e = si[j];
                if (e < 0) continue;  // an invalid hash id (the host validates them): no pair
                int at = np++;
                for (; at > 0 && si[s_order[at - 1]] > e; --at) s_order[at] = s_order[at - 1];
                s_order[at] = int32_t(j);
            }
            int nc = 0;
            for (int i = 0; i < np;) {
                const int32_t e = si[s_order[i]];
                int run = 1;
                while (i + run < np && si[s_order[i + run]] == e) ++run;
                for (int c = 0; c < run; c += g.tok, ++nc) {
                    g.chunks[3 * nc] = e, g.chunks[3 * nc + 1] = i + c;
                    g.chunks[3 * nc + 2] = min(g.tok, run - c);
                }
                i += run;
            }
            for (int i = 0; i < np; ++i) g.perm[i] = s_order[i];
            *g.n_chunks = nc;
        }
    }
}

}  // namespace

Status topk_lower_index(const float* scores, int64_t n, int64_t n_cols, const int64_t* n_valid, int64_t k,
                        int32_t* sel, cudaStream_t s) {
    if (n == 0 || k == 0) return Status::ok();
    if (n < 0 || k < 0 || n_cols < 0 || n_cols > INT32_MAX)
        return error("cuda::topk_lower_index: n = {}, n_cols = {}, k = {}", n, n_cols, k);
    if (k > kTopkMaxK) {
        if (n > 65535)
            return error("cuda::topk_lower_index: k = {} > {} supports at most 65535 rows", k, kTopkMaxK);
        const int64_t cols = n_cols > k ? n_cols : k;
        launch_pdl(topk_rank_kernel, dim3(ceil_div_u(cols, 256), unsigned(n)), 256, 0, s, scores, n_cols,
                   n_valid, k, sel);
        DSV4_CUDA_LAUNCH_CHECK("topk_rank_kernel");
        return Status::ok();
    }
    if (n > INT32_MAX) return error("cuda::topk_lower_index: {} rows exceed the grid", n);
    int cap = 512;
    while (cap < 2 * k) cap <<= 1;  // ≤ kTopkSortMax
    // few rows (one CTA per SM): keys of up to 40960 columns within 200 KB of shared memory
    const int64_t cache_max = n <= kTopkFewRows
                                  ? std::min<int64_t>(kTopkCacheColsFew, (200 * 1024 - 16 * int64_t(cap)) / 4)
                                  : kTopkCacheCols;
    const int n_cache = n_cols > cap ? int(n_cols < cache_max ? n_cols : cache_max) : 0;
    int idx_bits = 0;  // n_cols ≤ 2^idx_bits
    while ((int64_t(1) << idx_bits) < n_cols) ++idx_bits;
    const size_t smem = 2 * size_t(cap) * sizeof(unsigned long long) + size_t(n_cache) * sizeof(uint32_t);
    if (smem > 32 * 1024)  // with the static histogram, past the default 48 KB
        DSV4_CUDA_CHECK(
            cudaFuncSetAttribute(topk_radix_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    launch_pdl(topk_radix_kernel, unsigned(n), kTopkThreads, smem, s, scores, n_cols, n_valid, int(k), cap,
               n_cache, idx_bits, sel);
    DSV4_CUDA_LAUNCH_CHECK("topk_radix_kernel");
    return Status::ok();
}

Status moe_route(const float* logits, int64_t n, int64_t E, int64_t k, const int32_t* ids,
                 const int64_t* tid2eid, int64_t n_vocab, const float* bias, double route_scale,
                 int32_t* out_idx, float* out_w, cudaStream_t s, const MoeGroupOut* group) {
    if (k > E) return error("cuda::moe_route: top-{} of {} experts", k, E);
    if (n == 0) return Status::ok();
    MoeGroupOut g{};
    if (group) {
        if (n != 1 || k > kRouteGroupMaxK || group->tok < 1 || !group->perm || !group->chunks ||
            !group->n_chunks)
            return error(
                "cuda::moe_route: the grouped form takes one token, k <= {}, tok >= 1 (n = {}, k = {})",
                kRouteGroupMaxK, n, k);
        g = *group;
    }
    // NOTE(cuda): shared memory padded by 4 floats: compute-sanitizer saw 12-byte shared loads from the
    // unrolled rank loop read past s[E − 1] when E = 9 (the values read there are never used).
    const size_t smem = size_t(E + 4) * sizeof(float) + size_t(k) * sizeof(int32_t);
    if (smem > 48 * 1024) return error("cuda::moe_route: {} experts exceed shared memory", E);
    launch_pdl(moe_route_kernel, unsigned(n), kRouteThreads, smem, s, logits, E, k, ids, tid2eid, n_vocab,
               bias, float(route_scale), out_idx, out_w, g);
    DSV4_CUDA_LAUNCH_CHECK("moe_route_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
