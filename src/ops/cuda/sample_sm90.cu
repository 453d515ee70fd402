// GPU sampler: the token of cpu::sample_row for every row of a batch of logits, one CTA per row. Greedy and
// plain temperature are one pass and a block argmax; top-k / min-p without top-p find the kept set by
// counting (radix select); top-p bounds its candidates (integer probability mass over arg buckets, min-p,
// top-k), gathers them, sorts them by (logit desc, id asc) in shared memory (bitonic) and walks them on one
// thread with the CPU's own double steps. Tested bitwise against cpu::sample_row
// (tests/ops/op_cases_sample.cpp); note: docs/kernels/sample.md.
#include <cstdint>

#include "ops/cuda/cuda_check.h"
#include "ops/cuda/launch.cuh"
#include "ops/cuda/ops_cuda.h"
#include "ops/sample_params.h"

namespace dsv4::cuda {

namespace {

constexpr int kThreads = 384;
constexpr int kWarps = kThreads / 32;
constexpr int kCap = int(kSampleMaxCandidates);
constexpr unsigned kFull = 0xffffffffu;
constexpr int32_t kNoId = 0x7fffffff;
// candidates: sort keys (later the unnormalized probabilities, as bits) [kCap] u64, q = prob / S [kCap] f64,
// ids [kCap] i32
constexpr size_t kSmemBytes = size_t(kCap) * (sizeof(uint64_t) + sizeof(double) + sizeof(int32_t));
static_assert(kThreads % 32 == 0 && kThreads >= 256, "the radix scan clears 256 buckets in one sweep");
static_assert(kCap >= 1 && (kCap & (kCap - 1)) == 0, "bitonic sort needs a power-of-two capacity");
static_assert(kSmemBytes <= 200 * 1024, "candidate buffers must leave room in 227 KB of shared memory");

// Running state of a radix select (or the top-p bucket scan): the digits chosen so far (after 4 passes: the
// whole key) and the count and integer mass of the elements below them (lt) and inside them (eq).
struct Radix {
    uint32_t key;
    uint32_t cnt_lt, cnt_eq;
    unsigned long long mass_lt, mass_eq;
    int found;
};

struct Shared {
    uint32_t hist_cnt[256];
    unsigned long long hist_mass[256];
    unsigned long long red_u64[kWarps];
    double red_f64[kWarps];
    float red_f32[kWarps];
    uint32_t scan_a[kWarps], scan_b[kWarps];
    unsigned long long mass_target;  // top-p bound: from the row's total mass
    Radix rx;
    double S;        // sorted path: the sum of the kept probabilities
    int64_t n_keep;  // sorted path: kept after the walks
    int fallback;
    uint32_t n_gathered;  // sorted path: slots taken so far
};

__device__ __forceinline__ int lane_id() {
    return int(threadIdx.x & 31);
}
__device__ __forceinline__ int warp_id() {
    return int(threadIdx.x >> 5);
}

// Calls f(x, i) for the ids i ≡ threadIdx.x (mod kThreads) of a row, ascending, with the loads batched
// kUnroll deep (one CTA reads a whole row: latency, not bandwidth, bounds a pass). Every thread makes the
// same number of calls, so f may use warp and block collectives; past the row f gets i ≥ V and x = NaN.
// Consecutive calls of the block cover the tiles [base, base + kThreads) in order. kUnroll: 8 for light f, 4
// where f evaluates exp or log (8 copies of those run out of registers).
template <int kUnroll, typename F>
__device__ __forceinline__ void for_row(const float* __restrict__ row, int64_t V, F&& f) {
    for (int64_t base = 0; base < V; base += int64_t(kThreads) * kUnroll) {
        float xs[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int64_t i = base + int64_t(u) * kThreads + threadIdx.x;
            xs[u] = i < V ? __ldg(row + i) : NAN;
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) f(xs[u], base + int64_t(u) * kThreads + threadIdx.x);
    }
}

// Sort key: ascending key = the CPU's order (logit descending); −0 == +0 (they tie, as under float compare);
// NaN last (the CPU order is undefined with NaN; the kernel only has to stay in bounds).
__device__ __forceinline__ uint32_t desc_key(float x) {
    if (x != x) return 0xffffffffu;
    uint32_t u = __float_as_uint(x);
    if ((u << 1) == 0) u = 0;
    const uint32_t ascending = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~ascending;
}
__device__ __forceinline__ float key_to_float(uint32_t key) {  // inverse of desc_key (−0 comes back as +0)
    const uint32_t s = ~key;
    return __uint_as_float((s & 0x80000000u) ? (s & 0x7fffffffu) : ~s);
}
constexpr uint32_t kKeyNegInf = 0xff800000u;  // desc_key(−inf): every finite logit has a smaller key

struct OpAdd {
    template <typename T>
    __device__ T operator()(T a, T b) const {
        return a + b;
    }
};
struct OpMin {
    template <typename T>
    __device__ T operator()(T a, T b) const {
        return b < a ? b : a;
    }
};
struct OpMax64 {
    __device__ unsigned long long operator()(unsigned long long a, unsigned long long b) const {
        return a > b ? a : b;
    }
};
struct OpMaxF {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Block reduction with a fixed tree (warp butterfly, then warps in order): deterministic for doubles too.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, Op op, T* red) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFull, v, o));
    if (lane_id() == 0) red[warp_id()] = v;
    __syncthreads();
    T r = red[0];
    for (int w = 1; w < kWarps; ++w) r = op(r, red[w]);
    __syncthreads();
    return r;
}

// (score, tiebreak) pairs: the higher score wins, equal scores go to the smaller tiebreak: the id or the
// position in the CPU order, which its strict '>' over ascending positions prefers. Empty: (−inf, ~0).
__device__ __forceinline__ bool better(double sa, uint64_t ta, double sb, uint64_t tb) {
    return sa > sb || (sa == sb && ta < tb);
}
__device__ __forceinline__ uint64_t block_best(double s, uint64_t t, Shared& sh) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const double s2 = __shfl_xor_sync(kFull, s, o);
        const uint64_t t2 = __shfl_xor_sync(kFull, static_cast<unsigned long long>(t), o);
        if (better(s2, t2, s, t)) s = s2, t = t2;
    }
    if (lane_id() == 0) sh.red_f64[warp_id()] = s, sh.red_u64[warp_id()] = t;
    __syncthreads();
    double bs = sh.red_f64[0];
    uint64_t bt = sh.red_u64[0];
    for (int w = 1; w < kWarps; ++w)
        if (better(sh.red_f64[w], sh.red_u64[w], bs, bt)) bs = sh.red_f64[w], bt = sh.red_u64[w];
    __syncthreads();
    return bs > -INFINITY ? bt : ~0ull;
}

// Ordered ranks of this thread's two flags among the threads of the block that raise them (thread order =
// id order inside a tile of the row), and the block's totals. Two barriers: the scratch is reusable on
// return.
struct Ranks {
    uint32_t a, b, total_a, total_b;
};
__device__ __forceinline__ Ranks block_rank(bool fa, bool fb, Shared& sh) {
    const unsigned ba = __ballot_sync(kFull, fa), bb = __ballot_sync(kFull, fb);
    if (lane_id() == 0) sh.scan_a[warp_id()] = __popc(ba), sh.scan_b[warp_id()] = __popc(bb);
    __syncthreads();
    Ranks r{0, 0, 0, 0};
    for (int w = 0; w < kWarps; ++w) {
        if (w < warp_id()) r.a += sh.scan_a[w], r.b += sh.scan_b[w];
        r.total_a += sh.scan_a[w];
        r.total_b += sh.scan_b[w];
    }
    __syncthreads();
    const unsigned below_me = (1u << lane_id()) - 1u;
    r.a += __popc(ba & below_me);
    r.b += __popc(bb & below_me);
    return r;
}

// Integer mass of a logit for the top-p bound, from its arg a = (x − mx) / T: floor(p · 2^40) with p =
// exp(a), the walk's own value (sample_prob), so p ≥ m / 2^40 and p < (m + 1) / 2^40. Integer sums are exact
// in any order. Arg buckets of 1/8 nat (0 .. 223) cover a > −28; below, p < e^-28 < 2^-40 and m = 0.
constexpr int kArgBucketNone = 255;
__device__ __forceinline__ unsigned long long mass_of_arg(double a) {
    return (unsigned long long)(exp(a) * 1099511627776.0);
}
__device__ __forceinline__ int arg_bucket(double a) {  // non-increasing in a (a ≤ 0)
    return a > -28.0 ? int(-a * 8.0) : kArgBucketNone;
}
__device__ __forceinline__ double arg_of(float x, double mx, double inv_t) {
    return (double(x) - mx) * inv_t;  // NaN past the row and for NaN logits; −inf for −inf
}

// Mass target of the top-p bound: any value prefix C with M_C ≥ target has Σ_C p ≥ frac · Σ_all p, because
// Σ_all p < (M_all + V) / 2^40 (the 1e-12 and +2 cover the rounding of this double expression).
__device__ __forceinline__ unsigned long long mass_target(unsigned long long total, int64_t V, double frac) {
    if (!(frac > 0.0)) return 1;
    const double t = frac * (double(total) + double(V)) * (1.0 + 1e-12) + 2.0;
    return t < 1.8e19 ? (unsigned long long)t : ~0ull;
}

// Warp 0, after a histogram pass: picks the bucket where the running weight (count, or mass) reaches the
// target, and appends its digit to sh.rx.
template <bool kMass>
__device__ void radix_scan(Shared& sh, int pass, unsigned long long target, double frac, int64_t V) {
    const int lane = lane_id();
    uint32_t c[8];
    unsigned long long m[8];
    uint32_t lc = 0;
    unsigned long long lm = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        c[j] = sh.hist_cnt[lane * 8 + j];
        m[j] = kMass ? sh.hist_mass[lane * 8 + j] : 0ull;
        lc += c[j];
        lm += m[j];
    }
    uint32_t ic = lc;  // inclusive scans over the lanes (bucket order)
    unsigned long long im = lm;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint32_t tc = __shfl_up_sync(kFull, ic, o);
        const unsigned long long tm = __shfl_up_sync(kFull, im, o);
        if (lane >= o) ic += tc, im += tm;
    }
    const Radix prev = pass == 0 ? Radix{0u, 0u, 0u, 0ull, 0ull, 1} : sh.rx;  // pass 0: a fresh search
    if (kMass) {
        if (pass == 0) {
            target = mass_target(__shfl_sync(kFull, im, 31), V, frac);  // pass 0 sees every element
            if (lane == 0) sh.mass_target = target;
        } else {
            target = sh.mass_target;
        }
    }
    __syncwarp();  // every lane has read sh.rx before one of them writes it
    const unsigned long long below = kMass ? prev.mass_lt + (im - lm) : prev.cnt_lt + (ic - lc);
    const unsigned long long upto = kMass ? prev.mass_lt + im : prev.cnt_lt + ic;
    const unsigned hit = __ballot_sync(kFull, upto >= target);
    if (hit == 0) {
        if (lane == 0) sh.rx.found = 0;
        return;
    }
    if (lane == __ffs(hit) - 1) {
        unsigned long long run = below;
        uint32_t cnt_lt = prev.cnt_lt + (ic - lc);
        unsigned long long mass_lt = prev.mass_lt + (im - lm);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const unsigned long long w = kMass ? m[j] : c[j];
            if (run + w >= target) {
                sh.rx = Radix{(prev.key << 8) | uint32_t(lane * 8 + j), cnt_lt, c[j], mass_lt, m[j], 1};
                break;
            }
            run += w;
            cnt_lt += c[j];
            mass_lt += m[j];
        }
    }
}

// The key of the count-th id of the CPU order (count ≥ 1): the smallest key k such that
// #{i : desc_key(x_i) ≤ k} ≥ count, with the counts below and at it. MSB-first, 8-bit digits, 4 passes over
// the row; histograms with one shared atomic per distinct digit of a warp (integers: exact).
__device__ Radix radix_select(const float* __restrict__ row, int64_t V, unsigned long long count,
                              Shared& sh) {
    const int lane = lane_id();
    Radix res{};
    for (int pass = 0; pass < 4; ++pass) {
        const int shift = 24 - 8 * pass;
        for (int b = int(threadIdx.x); b < 256; b += kThreads) sh.hist_cnt[b] = 0;
        __syncthreads();
        const uint32_t prefix = pass == 0 ? 0u : sh.rx.key;
        for_row<8>(row, V, [&](float x, int64_t i) {
            uint32_t digit = 256;  // 256: not in this pass's bucket
            if (i < V) {
                const uint32_t k = desc_key(x);
                if (pass == 0 || (k >> (shift + 8)) == prefix) digit = (k >> shift) & 255u;
            }
            const unsigned peers = __match_any_sync(kFull, digit);
            if (digit < 256 && lane == __ffs(peers) - 1)
                atomicAdd(&sh.hist_cnt[digit], uint32_t(__popc(peers)));
        });
        __syncthreads();
        if (warp_id() == 0) radix_scan<false>(sh, pass, count, 0.0, V);
        __syncthreads();
        res = sh.rx;
        __syncthreads();  // everyone has read sh.rx before the next pass (or search) writes it
        if (!res.found) break;
    }
    return res;
}

// Top-p bound in one pass: a histogram of count and integer mass over arg buckets, then the first bucket b*
// (from the top) where the mass reaches mass_target(M_all, V, frac). Every id with arg_bucket ≤ b* is a value
// prefix of the CPU order holding a mass fraction ≥ frac. Returns found = 0 when no bucket gets there; else
// key = b* and cnt_lt + cnt_eq = the prefix's size.
__device__ Radix top_p_bound(const float* __restrict__ row, int64_t V, double mx, double inv_t, double frac,
                             Shared& sh) {
    for (int b = int(threadIdx.x); b < 256; b += kThreads) {
        sh.hist_cnt[b] = 0;
        sh.hist_mass[b] = 0;
    }
    __syncthreads();
    for_row<4>(row, V, [&](float x, int64_t) {
        const double a = arg_of(x, mx, inv_t);
        const int b = arg_bucket(a);
        if (b == kArgBucketNone) return;  // mass 0; also −inf, NaN and past the row
        atomicAdd(&sh.hist_cnt[b], 1u);   // buckets are spread: direct atomics rarely collide
        atomicAdd(&sh.hist_mass[b], mass_of_arg(a));
    });
    __syncthreads();
    if (warp_id() == 0) radix_scan<true>(sh, 0, 0ull, frac, V);
    __syncthreads();
    const Radix res = sh.rx;
    __syncthreads();
    return res;
}

// Σ over one row's elements of f(x) as a deterministic double sum (thread-strided, then the fixed tree).
template <typename F>
__device__ double row_sum_f64(const float* __restrict__ row, int64_t V, F f, Shared& sh) {
    double acc = 0.0;
    for_row<4>(row, V, [&](float x, int64_t i) {
        if (i < V) acc += f(x);
    });
    return block_reduce(acc, OpAdd{}, sh.red_f64);
}

// The row's facts every truncation needs (pass 1).
struct RowStats {
    double mx;       // the largest logit
    int64_t n_fin;   // logits above −inf
    int32_t inf_id;  // the first +inf, or kNoId
};

__device__ RowStats row_stats(const float* __restrict__ row, int64_t V, Shared& sh) {
    float mx = -INFINITY;
    uint32_t n_fin = 0;
    int32_t inf_id = kNoId;
    for_row<8>(row, V, [&](float x, int64_t i) {  // past the row x is NaN: no effect
        mx = fmaxf(mx, x);
        n_fin += x > -INFINITY;
        if (x == INFINITY && int32_t(i) < inf_id) inf_id = int32_t(i);
    });
    RowStats st;
    st.mx = block_reduce(mx, OpMaxF{}, sh.red_f32);
    st.n_fin = int64_t(block_reduce(static_cast<unsigned long long>(n_fin), OpAdd{}, sh.red_u64));
    st.inf_id = int32_t(block_reduce(static_cast<unsigned long long>(inf_id), OpMin{}, sh.red_u64));
    return st;
}

// A set of ids that is a prefix of the CPU order: keys below `key`, then the `n_eq` lowest ids of `key`;
// `split` when that is not every id of `key` (then only an ordered scan over the ids can tell which).
struct Prefix {
    uint32_t key;
    int64_t n_lt, n_eq;
    bool split;
    __device__ bool holds_all(uint32_t k) const { return k < key || (!split && n_eq > 0 && k == key); }
};

// Without top-p (top-k and/or min-p): the kept set is found by counting, with no sort and no size cap.
// Returns the token, or kSampleFallback.
__device__ int32_t sample_counted(const float* __restrict__ row, int64_t V, const SampleParams& sp,
                                  int64_t position, double inv_t, const RowStats& st, int64_t n_keep0,
                                  Shared& sh) {
    const int tid = int(threadIdx.x);
    // (5) top-k: the first n_keep0 ids of the CPU order
    Prefix kept{kKeyNegInf, st.n_fin, 0, false};  // every finite logit
    if (n_keep0 < st.n_fin) {
        const Radix rk = radix_select(row, V, (unsigned long long)n_keep0, sh);
        const int64_t n_eq = n_keep0 - int64_t(rk.cnt_lt);
        kept = Prefix{rk.key, int64_t(rk.cnt_lt), n_eq, n_eq < int64_t(rk.cnt_eq)};
    }
    // (7) min-p: the CPU's walk keeps position 0 and stops at the first prob < min_p (prob[0] == 1). When
    // the passing keys all precede the failing ones (exp is monotone), that is: the passing ids, at least 1.
    if (sp.min_p > 0.0f) {
        const double mp = double(sp.min_p);
        uint32_t n_pass = 0;
        unsigned long long max_pass = 0, min_fail = ~0ull;  // keys, widened so that "none" is out of range
        for_row<4>(row, V, [&](float x, int64_t) {
            const uint32_t k = desc_key(x);  // past the row: NaN, key 0xffffffff, skipped
            if (k >= kept.key) return;       // outside the top-k (the boundary value is done below)
            if (sample_prob(x, st.mx, inv_t) >= mp) {
                n_pass++;
                max_pass = max(max_pass, (unsigned long long)k);
            } else {
                min_fail = min(min_fail, (unsigned long long)k);
            }
        });
        if (kept.n_eq > 0 && tid == 0) {  // the boundary value's kept ids all share one outcome
            if (sample_prob(key_to_float(kept.key), st.mx, inv_t) >= mp) {
                n_pass += uint32_t(kept.n_eq);
                max_pass = max(max_pass, (unsigned long long)kept.key);
            } else {
                min_fail = min(min_fail, (unsigned long long)kept.key);
            }
        }
        n_pass = uint32_t(block_reduce(static_cast<unsigned long long>(n_pass), OpAdd{}, sh.red_u64));
        max_pass = block_reduce(max_pass, OpMax64{}, sh.red_u64);
        min_fail = block_reduce(min_fail, OpMin{}, sh.red_u64);
        if (n_pass > 0 && max_pass >= min_fail) return kSampleFallback;  // exp not monotone here: host
        if (n_pass == 0) {
            kept = Prefix{desc_key(float(st.mx)), 0, 1, true};  // position 0 only: the first id of the max
        } else if (int64_t(n_pass) < n_keep0) {
            kept = Prefix{uint32_t(min_fail), int64_t(n_pass), 0, false};  // every id above the first failure
        }
    }
    // (8) Gumbel-max over the kept ids (tiebreak: the CPU order); a split boundary value takes its lowest
    // ids through an ordered scan
    double bs = -INFINITY;
    uint64_t bt = ~0ull;
    auto consider = [&](float x, uint32_t k, int64_t i) {
        if (sample_prob(x, st.mx, inv_t) == 0.0) return;
        const double s = gumbel_score(x, inv_t, sp.seed, position, i);
        const uint64_t t = (uint64_t(k) << 32) | uint64_t(i);
        if (better(s, t, bs, bt)) bs = s, bt = t;
    };
    if (!kept.split) {
        for_row<4>(row, V, [&](float x, int64_t i) {
            const uint32_t k = desc_key(x);
            if (kept.holds_all(k)) consider(x, k, i);
        });
    } else {
        int64_t run_eq = 0;
        for_row<4>(row, V, [&](float x, int64_t i) {
            const uint32_t k = desc_key(x);
            const Ranks rk = block_rank(k == kept.key, false, sh);
            if (k < kept.key || (k == kept.key && run_eq + rk.a < kept.n_eq)) consider(x, k, i);
            run_eq += rk.total_a;
        });
    }
    const uint64_t best = block_best(bs, bt, sh);
    return best == ~0ull ? 0 : int32_t(best & 0xffffffffu);
}

// With top-p: the candidates (a prefix of the CPU order holding every id the walks can reach) are gathered,
// sorted and walked like the CPU. Returns the token, or kSampleFallback when they exceed kCap.
__device__ int32_t sample_sorted(const float* __restrict__ row, int64_t V, const SampleParams& sp,
                                 int64_t position, double inv_t, const RowStats& st, int64_t n_keep0,
                                 uint64_t* cand, double* q, int32_t* ids, Shared& sh) {
    const int tid = int(threadIdx.x);
    const double mx = st.mx;
    const double tp = double(sp.top_p) - 1e-6;  // the CPU's test: cum >= tp
    const double mp = double(sp.min_p);

    // Candidate bound n_c. When every kept id fits, take them all: S is then the CPU's own sequential sum.
    // Otherwise bound by min-p (past c_m every prob is surely < min_p, so the min-p walk ends by c_m) and by
    // top-p (a value prefix holding a mass fraction ≥ tp + 1e-9 ends the top-p walk inside it).
    enum class Bound { kept, min_p, top_p } bound = Bound::kept;
    int64_t n_c = n_keep0, c_m = INT64_MAX;
    const double lm = log(mp) - 1e-6;  // arg < lm => p < min_p · e^-1e-6 (1e-6 ≫ exp's error)
    int b_star = 0;
    if (n_keep0 > kCap) {
        if (sp.min_p > 0.0f) {
            uint32_t cnt = 0;
            for_row<8>(row, V, [&](float x, int64_t) { cnt += arg_of(x, mx, inv_t) >= lm; });  // NaN: false
            c_m = max(int64_t(1),
                      int64_t(block_reduce(static_cast<unsigned long long>(cnt), OpAdd{}, sh.red_u64)));
            if (c_m < n_c) n_c = c_m, bound = Bound::min_p;
        }
        if (n_c > kCap) {
            const Radix rp = top_p_bound(row, V, mx, inv_t, tp + 1e-9, sh);
            if (rp.found && int64_t(rp.cnt_lt) + rp.cnt_eq < n_c)
                n_c = int64_t(rp.cnt_lt) + rp.cnt_eq, bound = Bound::top_p, b_star = int(rp.key);
        }
        if (n_c > kCap) return kSampleFallback;
    }

    // S over the kept ids when they are not all candidates: a deterministic parallel sum (docs: "exactness")
    double S_par = 0.0;
    if (n_c < n_keep0) {
        uint32_t k_lim = kKeyNegInf;  // every finite logit ...
        int64_t extra = 0;            // ... or the top-k: keys below k_lim and `extra` ids of its value
        if (n_keep0 < st.n_fin) {
            const Radix rk = radix_select(row, V, (unsigned long long)n_keep0, sh);
            k_lim = rk.key;
            extra = n_keep0 - int64_t(rk.cnt_lt);
        }
        S_par = row_sum_f64(
            row, V, [&](float x) { return desc_key(x) < k_lim ? sample_prob(x, mx, inv_t) : 0.0; }, sh);
        if (extra > 0)
            S_par = __dadd_rn(S_par, __dmul_rn(double(extra), sample_prob(key_to_float(k_lim), mx, inv_t)));
    }

    // gather the first n_c ids of the CPU order: a value prefix (min-p, top-p, every finite logit: any slot
    // order, the sort fixes it), or keys below the n_c-th key then the lowest ids of its value (top-k)
    int n_sort = 1;
    while (n_sort < n_c) n_sort <<= 1;
    for (int j = tid; j < n_sort; j += kThreads) cand[j] = ~0ull;  // padding sorts last
    if (tid == 0) sh.n_gathered = 0;
    __syncthreads();
    const unsigned below_me = (1u << lane_id()) - 1u;
    auto gather_where = [&](auto&& take_if) {
        for_row<8>(row, V, [&](float x, int64_t i) {
            const uint32_t k = desc_key(x);
            const bool take = i < V && take_if(x, k);
            const unsigned ball = __ballot_sync(kFull, take);
            if (ball == 0) return;  // uniform in the warp
            uint32_t at = 0;
            if (lane_id() == __ffs(ball) - 1) at = atomicAdd(&sh.n_gathered, uint32_t(__popc(ball)));
            at = __shfl_sync(kFull, at, __ffs(ball) - 1) + __popc(ball & below_me);
            if (take && at < uint32_t(n_c)) cand[at] = (uint64_t(k) << 32) | uint64_t(i);
        });
    };
    if (bound == Bound::min_p && c_m > 1) {
        gather_where([&](float x, uint32_t) { return arg_of(x, mx, inv_t) >= lm; });
    } else if (bound == Bound::top_p) {
        gather_where([&](float x, uint32_t) { return arg_bucket(arg_of(x, mx, inv_t)) <= b_star; });
    } else if (bound == Bound::kept && n_keep0 == st.n_fin) {
        gather_where([&](float, uint32_t k) { return k < kKeyNegInf; });
    } else {  // top-k, or min-p keeping position 0 only
        const Radix rc = radix_select(row, V, (unsigned long long)n_c, sh);
        const Prefix pre{rc.key, int64_t(rc.cnt_lt), n_c - int64_t(rc.cnt_lt),
                         n_c - int64_t(rc.cnt_lt) < rc.cnt_eq};
        if (!pre.split) {
            gather_where([&](float, uint32_t k) { return pre.holds_all(k); });
        } else {  // ids in order, so that the boundary value keeps its lowest ids
            int64_t run_lt = 0, run_eq = 0;
            for_row<8>(row, V, [&](float x, int64_t i) {
                const uint32_t k = desc_key(x);
                const Ranks rk = block_rank(k < pre.key, k == pre.key, sh);
                const uint64_t packed = (uint64_t(k) << 32) | uint64_t(i);
                if (k < pre.key && run_lt + rk.a < pre.n_lt) cand[run_lt + rk.a] = packed;
                if (k == pre.key && run_eq + rk.b < pre.n_eq) cand[pre.n_lt + run_eq + rk.b] = packed;
                run_lt += rk.total_a;
                run_eq += rk.total_b;
            });
        }
    }
    __syncthreads();
    // (5) the CPU order: bitonic sort of the (key, id) words, ascending
    for (int k = 2; k <= n_sort; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int t = tid; t < n_sort / 2; t += kThreads) {
                const int i = 2 * t - (t & (j - 1)), ixj = i + j;  // the pair (i, i + j): bit j of i clear
                const uint64_t a = cand[i], b = cand[ixj];
                if ((a > b) == ((i & k) == 0)) cand[i] = b, cand[ixj] = a;
            }
            __syncthreads();
        }
    for (int i = tid; i < n_c; i += kThreads) ids[i] = int32_t(cand[i] & 0xffffffffu);
    __syncthreads();
    const double mx_cpu = row[ids[0]];  // the CPU's x[order[0]] (the same value as mx; ±0 give equal probs)
    for (int i = tid; i < n_c; i += kThreads)  // the key words are no longer needed: probs take their place
        cand[i] = uint64_t(__double_as_longlong(sample_prob(row[ids[i]], mx_cpu, inv_t)));
    __syncthreads();
    auto prob = [&](int64_t i) { return __longlong_as_double((long long)cand[i]); };
    if (tid == 0) {
        double S = S_par;
        if (n_c == n_keep0) {  // the CPU's sum, in its order
            S = 0.0;
            for (int64_t i = 0; i < n_c; ++i) S += prob(i);
        }
        sh.S = S;
    }
    __syncthreads();
    const double S = sh.S;
    for (int i = tid; i < n_c; i += kThreads) q[i] = prob(i) / S;  // the CPU's prob[i] / sum
    __syncthreads();
    // (6) top-p and (7) min-p: the CPU's loops, on one thread
    if (tid == 0) {
        int64_t n_keep = n_keep0;
        int fallback = 0;
        double cum = 0.0;
        bool done = false;
        for (int64_t i0 = 0; !done && i0 < n_keep; i0 += 8) {  // the loads run ahead of the sequential sum
            double qs[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) qs[u] = i0 + u < n_c ? q[i0 + u] : 0.0;
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const int64_t i = i0 + u;
                if (done || i >= n_keep) {
                    done = true;
                } else if (i >=
                           n_c) {  // top-p ends past the candidates: only fine when min-p ends by c_m == n_c
                    fallback = n_c < c_m;
                    done = true;
                } else {
                    cum += qs[u];
                    if (cum >= tp) {
                        n_keep = i + 1;
                        done = true;
                    }
                }
            }
        }
        if (!fallback && sp.min_p > 0.0f) {
            int64_t cut = 1;
            while (cut < n_keep) {
                if (cut >= n_c) {
                    fallback = cut < c_m;  // from c_m on, every id fails the test
                    break;
                }
                if (!(prob(cut) >= mp * prob(0))) break;
                cut++;
            }
            n_keep = cut;
        }
        sh.n_keep = n_keep;
        sh.fallback = fallback;
    }
    __syncthreads();
    const int64_t n_keep = sh.n_keep;
    const int fallback = sh.fallback;
    if (fallback) return kSampleFallback;
    // (8) Gumbel-max over the kept ids; equal scores go to the earlier position
    double bs = -INFINITY;
    uint64_t bt = ~0ull;
    for (int i = tid; i < n_keep; i += kThreads) {
        if (prob(i) == 0.0) continue;
        const double s = gumbel_score(row[ids[i]], inv_t, sp.seed, position, ids[i]);
        if (better(s, uint64_t(i), bs, bt)) bs = s, bt = uint64_t(i);
    }
    const uint64_t best = block_best(bs, bt, sh);
    return best == ~0ull ? 0 : ids[best];
}

// grid (n_rows), block kThreads; dynamic shared memory kSmemBytes.
__global__ void __launch_bounds__(kThreads, 1)
    sample_rows_kernel(const float* __restrict__ logits, int64_t V, const SampleParams* __restrict__ sps,
                       const int64_t* __restrict__ positions, int32_t* __restrict__ out) {
    pdl_wait();
    __shared__ Shared sh;
    extern __shared__ uint64_t cand[];  // [kCap]
    double* q = reinterpret_cast<double*>(cand + kCap);
    int32_t* ids = reinterpret_cast<int32_t*>(q + kCap);

    const int64_t r = blockIdx.x;
    const float* row = logits + r * V;
    const SampleParams sp = sps[r];
    const int64_t position = positions[r];
    const int tid = int(threadIdx.x);
    int32_t token = 0;

    if (sp.temperature < 1e-5f) {
        // (4) greedy: the first maximum; a NaN at id 0 wins outright (the CPU's argmax never leaves it)
        unsigned long long best = ~0ull;
        for_row<8>(row, V, [&](float x, int64_t i) {
            if (i < V) best = min(best, (static_cast<unsigned long long>(desc_key(x)) << 32) | uint64_t(i));
        });
        best = block_reduce(best, OpMin{}, sh.red_u64);
        token = row[0] != row[0] ? 0 : int32_t(best & 0xffffffffu);
    } else {
        const double inv_t = 1.0 / double(sp.temperature);
        const bool truncate = (sp.top_k > 0 && sp.top_k < V) || sp.top_p < 1.0f || sp.min_p > 0.0f;
        if (!truncate) {
            // temperature only: Gumbel-max over every id that is not −inf
            double bs = -INFINITY;
            uint64_t bt = ~0ull;
            for (int64_t i = tid; i < V; i += kThreads) {  // compute bound (two double logs per id)
                const float x = row[i];
                if (x == -INFINITY || x != x) continue;
                const double s = gumbel_score(x, inv_t, sp.seed, position, i);
                if (better(s, uint64_t(i), bs, bt)) bs = s, bt = uint64_t(i);
            }
            const uint64_t best = block_best(bs, bt, sh);
            token = best == ~0ull ? 0 : int32_t(best);
        } else {
            const RowStats st = row_stats(row, V, sh);
            if (st.n_fin == 0 || st.inf_id != kNoId) {
                // the CPU's arithmetic on such rows: all −inf keeps its initial token 0; with a +inf the
                // first +inf scores +inf and every other kept id has probability 0 or NaN
                token = st.n_fin == 0 ? 0 : st.inf_id;
            } else {
                // kept after top-k and the −inf tail: the CPU's n_keep before top-p
                const int64_t K = (sp.top_k > 0 && sp.top_k < V) ? int64_t(sp.top_k) : V;
                const int64_t n_keep0 = max(int64_t(1), min(K, st.n_fin));
                token = sp.top_p < 1.0f
                            ? sample_sorted(row, V, sp, position, inv_t, st, n_keep0, cand, q, ids, sh)
                            : sample_counted(row, V, sp, position, inv_t, st, n_keep0, sh);
            }
        }
    }
    if (tid == 0) out[r] = token;
}

}  // namespace

Status sample_rows(const float* logits, int64_t n_rows, int64_t n_vocab, const SampleParams* sp,
                   const int64_t* positions, int32_t* out, cudaStream_t s) {
    if (n_vocab < 1 || n_vocab > INT32_MAX)
        return error("cuda::sample_rows: n_vocab = {}, expected 1 .. {}", n_vocab, INT32_MAX);
    if (n_rows < 0 || n_rows > INT32_MAX) return error("cuda::sample_rows: n_rows = {}", n_rows);
    if (n_rows == 0) return Status::ok();
    DSV4_CUDA_CHECK(cudaFuncSetAttribute(sample_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(kSmemBytes)));
    launch_pdl(sample_rows_kernel, unsigned(n_rows), kThreads, kSmemBytes, s, logits, n_vocab, sp, positions,
               out);
    DSV4_CUDA_LAUNCH_CHECK("sample_rows_kernel");
    return Status::ok();
}

}  // namespace dsv4::cuda
