// CUDA forward pass (see forward_cuda.h). Order of steps follows model.cpp (embed -> hc streams -> per
// layer {hc_pre, attn_norm, attention, hc_post, hc_pre, ffn_norm, MoE, hc_post} -> hc_head -> norm ->
// head), attention.cpp (spec §6.10), compressor.cpp (spec §6.5) and moe.cpp (spec §7). All sizes of a
// step follow from the positions, so the host never reads device memory inside a step; the only
// host<->device traffic is the token ids/positions in and the logits out.
#include "model/forward_cuda.h"

#include <cstring>

#if DSV4_HAVE_CUDA

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>

#include "core/log.h"
#include "model/weights.h"
#include "ops/cuda/cuda_check.h"
#include "ops/cuda/ops_cuda.h"

namespace dsv4 {

namespace {

int64_t scale_bytes(const WeightRef& w) {
    if (!w.scale) return 0;
    return ((w.scale_row0 + w.n_rows + w.block_rows - 1) / w.block_rows) * w.scale_cols;
}

// Device buffers owned by one object; freed together.
struct DeviceAllocs {
    std::vector<void*> ptrs;
    int64_t bytes = 0;
    ~DeviceAllocs() {
        for (void* p : ptrs) cudaFree(p);
    }
    Status alloc(void** out, size_t n) {
        DSV4_ASSERT(out != nullptr, "alloc");
        cudaError_t e = cudaMalloc(out, std::max<size_t>(n, 16));
        if (e != cudaSuccess) {
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            return error("cudaMalloc of {} bytes failed ({} bytes free of {}): {}", n, free_b, total_b,
                         cudaGetErrorString(e));
        }
        ptrs.push_back(*out);
        bytes += int64_t(n);
        return Status::ok();
    }
    template <typename T>
    Status upload(T** out, const void* src, size_t n) {
        DSV4_TRY(alloc(reinterpret_cast<void**>(out), n));
        DSV4_CUDA_CHECK(cudaMemcpy(*out, src, n, cudaMemcpyHostToDevice));
        return Status::ok();
    }
};

// Grow-only bump allocator for the activations of one forward call (reset at the start of each call;
// after the first call of a given size it allocates nothing). Chunks are never freed before the end, so a
// pointer stays valid (a CUDA graph may hold it) for the object's life. While frozen (CUDA graph capture:
// cudaMalloc is not allowed there) a get that would need a new chunk fails and sets refused().
class Workspace {
public:
    ~Workspace() {
        for (auto& c : chunks_) cudaFree(c.base);
    }
    void reset() { cur_ = 0, off_ = 0; }
    std::pair<size_t, size_t> cursor() const { return {cur_, off_}; }
    void rewind(std::pair<size_t, size_t> c) { cur_ = c.first, off_ = c.second; }
    void freeze(bool on) { frozen_ = on, refused_ = false; }
    bool refused() const { return refused_; }
    template <typename T>
    Result<T*> get(int64_t count) {
        const size_t bytes = (size_t(std::max<int64_t>(count, 1)) * sizeof(T) + 255) & ~size_t(255);
        while (cur_ < chunks_.size() && off_ + bytes > chunks_[cur_].size) ++cur_, off_ = 0;
        if (cur_ == chunks_.size()) {
            if (frozen_) {
                refused_ = true;
                return error("workspace: a new chunk of {} bytes is needed during CUDA graph capture", bytes);
            }
            Chunk c{nullptr, std::max<size_t>(bytes, size_t(64) << 20)};
            DSV4_CUDA_CHECK(cudaMalloc(&c.base, c.size));
            chunks_.push_back(c);
            off_ = 0;
        }
        T* p = reinterpret_cast<T*>(static_cast<uint8_t*>(chunks_[cur_].base) + off_);
        off_ += bytes;
        return p;
    }

private:
    struct Chunk {
        void* base;
        size_t size;
    };
    std::vector<Chunk> chunks_;
    size_t cur_ = 0, off_ = 0;
    bool frozen_ = false, refused_ = false;
};

// DSV4_CUDA_PROFILE=1: events between the segments of every step; at exit the time per segment summed
// over all steps is logged (Phase-A breakdown for bench/NOTES.md; the events cost ~1 us each).
class StepProfiler {
public:
    bool on = false;
    ~StepProfiler() {
        report("decode-step", totals_, steps_, "step");
        report("prefill-call", ptotals_, psteps_, "call");
        for (auto& e : pool_) cudaEventDestroy(e);
    }
    void mark(const char* name, cudaStream_t s) {
        if (!on) return;
        if (used_ == pool_.size()) {
            cudaEvent_t e;
            cudaEventCreate(&e);
            pool_.push_back(e);
        }
        cudaEventRecord(pool_[used_], s);
        names_.push_back(name);
        ++used_;
    }
    // After the call's stream synchronize: decode steps and prefill calls are summed apart.
    void finish(bool decode) {
        if (!on) return;
        auto& tot = decode ? totals_ : ptotals_;
        for (size_t i = 1; i < used_; ++i) {
            float ms = 0.0f;
            cudaEventElapsedTime(&ms, pool_[i - 1], pool_[i]);
            auto& t = tot[names_[i]];
            t.first += ms;
            t.second += 1;
        }
        ++(decode ? steps_ : psteps_);
        used_ = 0;
        names_.clear();
    }

private:
    std::vector<cudaEvent_t> pool_;
    std::vector<const char*> names_;
    size_t used_ = 0;
    int steps_ = 0, psteps_ = 0;
    std::map<std::string, std::pair<double, int>> totals_, ptotals_;
    static void report(const char* what, const std::map<std::string, std::pair<double, int>>& tot, int n,
                       const char* unit) {
        if (tot.empty()) return;
        double all = 0.0;
        for (auto& [k, v] : tot) all += v.first;
        std::string r = fmt::format("cuda {} profile ({} {}s, {:.3f} ms per {}):", what, n, unit,
                                    all / std::max(n, 1), unit);
        for (auto& [k, v] : tot)
            r += fmt::format("\n  {:<18} {:9.3f} ms/{} {:5.1f}%  ({} segments)", k, v.first / std::max(n, 1),
                             unit, 100.0 * v.first / all, v.second);
        log_info("{}", r);
    }
};

// DSV4_CUDA_GRAPHS: off ("0"); reuse (default): a decode step is recorded only when its launch parameters
// changed since the last recording for its batch size, else the instantiated graph is launched again;
// capture ("capture"): recorded every step (cudaGraphExecUpdate'd), to check reuse against.
enum class GraphMode { off, reuse, capture };

// The CUDA graph of the decode steps of one batch size.
struct DecodeGraph {
    cudaGraphExec_t exec = nullptr;
    bool warm = false;           // an eager decode step of this size ran: workspace and GEMM scratch sized
    uint64_t epoch = 0;          // the eager-step epoch it was recorded in (see Impl::eager_epoch)
    std::vector<int64_t> key;    // the launch parameters it was recorded with (Impl::forward's decode key)
    const void* inputs[3] = {};  // the uploads it reads: ids, step metadata, DecodeSeq table
    float* lg = nullptr;         // the logits it writes [N, V]
};

struct GraphCounters {
    std::atomic<int64_t> launches{0}, captures{0}, instantiations{0}, updates{0}, refused{0};
};
GraphCounters g_graph_counters;  // process-wide, read by CudaForward::graph_stats

// Tokens from which a reference-numerics FP8/FP4 linear (and the routed experts) run the FP8 tensor-core
// GEMM of fp8_gemm_sm90.cu (fewer: FP8 rounding + the GEMV of cuda::linear).
constexpr int64_t kFp8GemmMinTokens = 16;

// The weights whose input reference numerics rounds to FP8 (numerics_linear).
bool quantized(const WeightRef& w) {
    return w.dtype == DType::f8_e4m3 || w.dtype == DType::fp4_e2m1;
}

// Queries of one sequence in one call from which the indexer scores go through SGEMM (prefill chunks).
constexpr int64_t kIndexerGemmMinTokens = 32;

struct DevLayer {
    const float *hc_attn_fn, *hc_attn_base, *hc_attn_scale, *hc_ffn_fn, *hc_ffn_base, *hc_ffn_scale;
    const float *attn_norm, *ffn_norm, *q_norm, *kv_norm, *attn_sink;
    WeightRef wq_a, wq_b, wkv, wo_a, wo_b;
    const float *cmp_ape = nullptr, *cmp_norm = nullptr;
    WeightRef cmp_wkv, cmp_wgate;
    WeightRef idx_wq_b, idx_weights_proj, idx_cmp_wkv, idx_cmp_wgate;
    const float *idx_cmp_ape = nullptr, *idx_cmp_norm = nullptr;
    WeightRef gate, sh_w1, sh_w2, sh_w3;
    const float* gate_bias = nullptr;
    const int64_t* tid2eid = nullptr;
    const cuda::DevWeight *w1 = nullptr, *w2 = nullptr, *w3 = nullptr;  // [E] device tables
    WeightRef w1_proto, w2_proto;
};

// One compressor's device state (mirrors CompressorState).
struct DevCompressor {
    int64_t m = 0, c = 1, d = 0;
    float *pend_a = nullptr, *pend_z = nullptr, *prev_a = nullptr, *prev_z = nullptr;
    float* entries = nullptr;  // [cap, d]
    int64_t cap = 0, n_entries = 0;
};

struct DevLayerState {
    float* ring = nullptr;  // [W, head_dim]
    DevCompressor cmp, idx;
};

class CudaSeqState : public DeviceSeqState {
public:
    std::vector<DevLayerState> layers;
    std::vector<void*> owned;  // everything but the entries buffers
    int64_t ring_elems = 0;    // W · head_dim

    ~CudaSeqState() override {
        for (void* p : owned) cudaFree(p);
        for (auto& L : layers) {
            cudaFree(L.cmp.entries);
            cudaFree(L.idx.entries);
        }
    }
    std::unique_ptr<DeviceSeqState> clone() const override;

    Status alloc_zero(float** p, int64_t count) {
        DSV4_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(p), size_t(std::max<int64_t>(count, 1)) * 4));
        owned.push_back(*p);
        DSV4_CUDA_CHECK(cudaMemset(*p, 0, size_t(std::max<int64_t>(count, 1)) * 4));
        return Status::ok();
    }
    // Makes room for `need` entries (doubling); copies the old ones.
    static Status reserve(DevCompressor& c, int64_t need, cudaStream_t s) {
        if (need <= c.cap) return Status::ok();
        const int64_t cap = std::max<int64_t>({need, 2 * c.cap, 64});
        float* p = nullptr;
        DSV4_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), size_t(cap * c.d) * 4));
        if (c.n_entries)
            DSV4_CUDA_CHECK(
                cudaMemcpyAsync(p, c.entries, size_t(c.n_entries * c.d) * 4, cudaMemcpyDeviceToDevice, s));
        DSV4_CUDA_CHECK(cudaStreamSynchronize(s));
        cudaFree(c.entries);
        c.entries = p, c.cap = cap;
        return Status::ok();
    }
};

Status copy_compressor(const DevCompressor& src, DevCompressor& dst, CudaSeqState& owner) {
    dst = src;
    dst.entries = nullptr;
    dst.cap = 0;
    const int64_t cd = src.m * src.c * src.d, md = src.m * src.d;
    if (src.m == 0) return Status::ok();
    DSV4_TRY(owner.alloc_zero(&dst.pend_a, cd));
    DSV4_TRY(owner.alloc_zero(&dst.pend_z, cd));
    DSV4_CUDA_CHECK(cudaMemcpy(dst.pend_a, src.pend_a, size_t(cd) * 4, cudaMemcpyDeviceToDevice));
    DSV4_CUDA_CHECK(cudaMemcpy(dst.pend_z, src.pend_z, size_t(cd) * 4, cudaMemcpyDeviceToDevice));
    if (src.c == 2) {
        DSV4_TRY(owner.alloc_zero(&dst.prev_a, md));
        DSV4_TRY(owner.alloc_zero(&dst.prev_z, md));
        DSV4_CUDA_CHECK(cudaMemcpy(dst.prev_a, src.prev_a, size_t(md) * 4, cudaMemcpyDeviceToDevice));
        DSV4_CUDA_CHECK(cudaMemcpy(dst.prev_z, src.prev_z, size_t(md) * 4, cudaMemcpyDeviceToDevice));
    }
    dst.n_entries = 0;
    DSV4_TRY(CudaSeqState::reserve(dst, src.n_entries, nullptr));
    if (src.n_entries)
        DSV4_CUDA_CHECK(cudaMemcpy(dst.entries, src.entries, size_t(src.n_entries * src.d) * 4,
                                   cudaMemcpyDeviceToDevice));
    dst.n_entries = src.n_entries;
    return Status::ok();
}

}  // namespace

struct CudaForward::Impl {
    Dsv4Config cfg;
    DeviceAllocs mem;
    // The stream the ops launch on: `main` outside branches, a side stream inside one (on_side).
    mutable cudaStream_t stream = nullptr;
    cudaStream_t main = nullptr;
    // Decode steps of few tokens (decode_branches): the sublayers' independent chains — the compressor,
    // the indexer, the shared expert — run on side streams, forked from and joined back to `main` with
    // events (in a graph: parallel branches). Their kernels are latency-bound at such batches, so running
    // them beside the main chain hides most of their time. Side 2 runs each mHC site's Sinkhorn (deferred
    // by the site's kernel, joined before the next site reads comb). DSV4_CUDA_BRANCHES=0 turns it off.
    static constexpr int kSides = 3;
    cudaStream_t side[kSides] = {};
    cudaEvent_t fork_ev[kSides] = {}, join_ev[kSides] = {};
    mutable bool joined[kSides] = {true, true, true};
    bool branches_on = true;
    std::vector<DevLayer> layers;
    WeightRef embed, head;
    const float *norm = nullptr, *hc_head_fn = nullptr, *hc_head_base = nullptr, *hc_head_scale = nullptr;
    const float *inv_main = nullptr, *inv_compress = nullptr;
    mutable Workspace ws;
    mutable StepProfiler prof;
    // Numerics::reference: the REF roundings of model/numerics.cpp at the CPU's points (attention.cpp,
    // compressor.cpp, moe.cpp), with the FP8 tensor-core GEMM for ≥ kFp8GemmMinTokens tokens unless
    // DSV4_FP8_GEMM=0 (then rounded activations through the exact fp32 linears).
    bool ref = false;
    bool fp8_gemm_on = true;
    void mark(const char* name) const { prof.mark(name, main); }
    GraphMode graph_mode = GraphMode::reuse;
    mutable std::map<int64_t, DecodeGraph> graphs;  // by batch size
    // Counts eager steps. Only an eager step may grow the workspace or linear's GEMM scratch (both are
    // frozen or refused under capture), so a graph recorded in the current epoch still points at live
    // buffers; one from an older epoch is recorded again before its next launch.
    mutable uint64_t eager_epoch = 0;

    ~Impl() {
        for (auto& [n, g] : graphs)
            if (g.exec) cudaGraphExecDestroy(g.exec);
        for (int i = 0; i < kSides; ++i) {
            if (fork_ev[i]) cudaEventDestroy(fork_ev[i]);
            if (join_ev[i]) cudaEventDestroy(join_ev[i]);
            if (side[i]) cudaStreamDestroy(side[i]);
        }
        if (main) cudaStreamDestroy(main);
    }

    // Side stream i waits for everything launched on `main` so far (call it with stream == main).
    Status fork(int i) const {
        DSV4_CUDA_CHECK(cudaEventRecord(fork_ev[i], main));
        DSV4_CUDA_CHECK(cudaStreamWaitEvent(side[i], fork_ev[i], 0));
        joined[i] = false;
        return Status::ok();
    }
    // f's launches go to side stream i (after a fork(i)); `stream` is back to main on every path out.
    template <typename F>
    Status on_side(int i, F&& f) const {
        stream = side[i];
        Status st = f();
        stream = main;
        return st;
    }
    // `main` waits for everything launched on side stream i so far; no-op when it has nothing pending.
    Status join(int i) const {
        if (joined[i]) return Status::ok();
        joined[i] = true;
        DSV4_CUDA_CHECK(cudaEventRecord(join_ev[i], side[i]));
        DSV4_CUDA_CHECK(cudaStreamWaitEvent(main, join_ev[i], 0));
        return Status::ok();
    }
    // Joins every side stream (the end of compute(), also when it fails part-way: a capture must end with
    // every forked stream joined, or it is refused as unjoined).
    Status join_all() const {
        Status st = Status::ok();
        for (int i = 0; i < kSides; ++i) {
            Status s = join(i);
            if (st.is_ok() && !s.is_ok()) st = std::move(s);
        }
        return st;
    }

    // A linear weight in its stored format.
    Status up_weight(const WeightRef& w, WeightRef& out) {
        out = w;
        if (!w.valid()) return Status::ok();
        void* d = nullptr;
        DSV4_TRY(mem.upload(&d, w.data, size_t(dtype_bytes(w.dtype, w.numel()))));
        out.data = d;
        if (w.scale) {
            uint8_t* s = nullptr;
            DSV4_TRY(mem.upload(&s, w.scale, size_t(scale_bytes(w))));
            out.scale = s;
        }
        return Status::ok();
    }
    // A small parameter (norm, sink, hc, bias, ape), as f32.
    Status up_f32(const WeightRef& w, const float*& out) {
        out = nullptr;
        if (!w.valid()) return Status::ok();
        std::vector<float> v(size_t(w.numel()));
        for (int64_t r = 0; r < w.n_rows; ++r) w.row_to_f32(r, v.data() + r * w.n_cols);
        float* d = nullptr;
        DSV4_TRY(mem.upload(&d, v.data(), v.size() * 4));
        out = d;
        return Status::ok();
    }
    Status up_experts(const std::vector<WeightRef>& ws, const cuda::DevWeight*& table, WeightRef& proto) {
        std::vector<cuda::DevWeight> t;
        for (const WeightRef& w : ws) {
            WeightRef d;
            DSV4_TRY(up_weight(w, d));
            if (w.dtype != ws[0].dtype || w.n_rows != ws[0].n_rows || w.n_cols != ws[0].n_cols)
                return error("routed experts of one layer differ in dtype or shape");
            t.push_back(cuda::DevWeight::from(d));
            if (t.size() == 1) proto = d;
        }
        cuda::DevWeight* d = nullptr;
        DSV4_TRY(mem.upload(&d, t.data(), t.size() * sizeof(cuda::DevWeight)));
        table = d;
        return Status::ok();
    }

    Status upload(const Weights& W, const std::vector<float>& inv_m, const std::vector<float>& inv_c) {
        DSV4_TRY(up_weight(W.embed, embed));
        DSV4_TRY(up_weight(W.head, head));
        DSV4_TRY(up_f32(W.norm, norm));
        DSV4_TRY(up_f32(W.hc_head_fn, hc_head_fn));
        DSV4_TRY(up_f32(W.hc_head_base, hc_head_base));
        DSV4_TRY(up_f32(W.hc_head_scale, hc_head_scale));
        float* d = nullptr;
        DSV4_TRY(mem.upload(&d, inv_m.data(), inv_m.size() * 4));
        inv_main = d;
        DSV4_TRY(mem.upload(&d, inv_c.data(), inv_c.size() * 4));
        inv_compress = d;
        for (int il = 0; il < cfg.num_hidden_layers; ++il) {
            const LayerWeights& L = W.layers[size_t(il)];
            DevLayer D;
            DSV4_TRY(up_f32(L.hc_attn_fn, D.hc_attn_fn));
            DSV4_TRY(up_f32(L.hc_attn_base, D.hc_attn_base));
            DSV4_TRY(up_f32(L.hc_attn_scale, D.hc_attn_scale));
            DSV4_TRY(up_f32(L.hc_ffn_fn, D.hc_ffn_fn));
            DSV4_TRY(up_f32(L.hc_ffn_base, D.hc_ffn_base));
            DSV4_TRY(up_f32(L.hc_ffn_scale, D.hc_ffn_scale));
            DSV4_TRY(up_f32(L.attn_norm, D.attn_norm));
            DSV4_TRY(up_f32(L.ffn_norm, D.ffn_norm));
            DSV4_TRY(up_f32(L.q_norm, D.q_norm));
            DSV4_TRY(up_f32(L.kv_norm, D.kv_norm));
            DSV4_TRY(up_f32(L.attn_sink, D.attn_sink));
            DSV4_TRY(up_weight(L.wq_a, D.wq_a));
            DSV4_TRY(up_weight(L.wq_b, D.wq_b));
            DSV4_TRY(up_weight(L.wkv, D.wkv));
            DSV4_TRY(up_weight(L.wo_a, D.wo_a));
            DSV4_TRY(up_weight(L.wo_b, D.wo_b));
            DSV4_TRY(up_f32(L.cmp_ape, D.cmp_ape));
            DSV4_TRY(up_f32(L.cmp_norm, D.cmp_norm));
            DSV4_TRY(up_weight(L.cmp_wkv, D.cmp_wkv));
            DSV4_TRY(up_weight(L.cmp_wgate, D.cmp_wgate));
            DSV4_TRY(up_weight(L.idx_wq_b, D.idx_wq_b));
            DSV4_TRY(up_weight(L.idx_weights_proj, D.idx_weights_proj));
            DSV4_TRY(up_weight(L.idx_cmp_wkv, D.idx_cmp_wkv));
            DSV4_TRY(up_weight(L.idx_cmp_wgate, D.idx_cmp_wgate));
            DSV4_TRY(up_f32(L.idx_cmp_ape, D.idx_cmp_ape));
            DSV4_TRY(up_f32(L.idx_cmp_norm, D.idx_cmp_norm));
            DSV4_TRY(up_weight(L.gate, D.gate));
            DSV4_TRY(up_weight(L.sh_w1, D.sh_w1));
            DSV4_TRY(up_weight(L.sh_w2, D.sh_w2));
            DSV4_TRY(up_weight(L.sh_w3, D.sh_w3));
            if (cfg.is_hash_layer(il)) {
                const void* t = L.tid2eid.data;  // may be misaligned in the mmap: read through memcpy
                for (int64_t i = 0; i < L.tid2eid.numel(); ++i) {
                    int64_t e;
                    std::memcpy(&e, static_cast<const uint8_t*>(t) + i * 8, 8);
                    if (e < 0 || e >= cfg.n_routed_experts)
                        return error("layer {}: tid2eid[{}] = {} outside [0, {})", il, i, e,
                                     cfg.n_routed_experts);
                }
                int64_t* dt = nullptr;
                DSV4_TRY(mem.upload(&dt, t, size_t(L.tid2eid.numel()) * 8));
                D.tid2eid = dt;
            } else {
                DSV4_TRY(up_f32(L.gate_bias, D.gate_bias));
            }
            WeightRef w3_proto;
            DSV4_TRY(up_experts(L.w1, D.w1, D.w1_proto));
            DSV4_TRY(up_experts(L.w3, D.w3, w3_proto));
            DSV4_TRY(up_experts(L.w2, D.w2, D.w2_proto));
            layers.push_back(D);
        }
        return Status::ok();
    }

    // ---- one forward call over several sequences: sequence q feeds its tokens at positions
    // p0 .. p0+n−1; all tokens are stacked (rows off .. off+n−1 of every activation). Token-parallel ops
    // (projections, norms, RoPE, MoE, hyper-connections, head) run once over all rows; the ops that read a
    // sequence's own state (compressors, indexer, key pools, sink attention, window ring) run per sequence.
    struct Seq {
        CudaSeqState* st;
        int64_t p0, n, off;
    };
    struct Step {
        int64_t N;               // all tokens of the call
        const int32_t* ids;      // [N] device
        const int64_t* pos;      // [N] device
        const int64_t* navail4;  // [N] device: (pos + 1) / 4, the CSA entries a query may see
        std::vector<Seq> seqs;
        // decode-only steps (every sequence feeds one token): per layer a device table of the sequences'
        // states, so the state-reading ops run as one launch over all of them (decode_batch_sm90.cu)
        const cuda::DecodeSeq* dec = nullptr;  // [layers, seqs]
        const cuda::DecodeSeq* dec_layer(int il) const { return dec + int64_t(il) * int64_t(seqs.size()); }
    };

    // Whether step S runs its independent chains on the side streams: decode steps below linear's GEMM
    // path (the per-stream cuBLAS scratch would be allocated again for every side stream).
    bool decode_branches(const Step& S) const { return branches_on && S.dec != nullptr && S.N < 16; }

    // Projects x [N, D] for one compressor kind into a, z [N, c·d] (the caller passes the widths); then
    // per sequence emits the completed windows' entries (normed, RoPE'd) and commits the pending state.
    Status compressor(const Step& S, const WeightRef& wkv, const WeightRef& wgate, const float* ape,
                      const float* nrm, const float* x, int il, bool index_keys) const {
        const int64_t N = S.N, rd = cfg.qk_rope_head_dim, D = cfg.hidden_size;
        const DevCompressor& c0 =
            index_keys ? S.seqs[0].st->layers[size_t(il)].idx : S.seqs[0].st->layers[size_t(il)].cmp;
        const int64_t m = c0.m, cd = c0.c * c0.d, d = c0.d;
        float *a, *z;
        DSV4_TRY_ASSIGN(a, ws.get<float>(N * cd));
        DSV4_TRY_ASSIGN(z, ws.get<float>(N * cd));
        DSV4_TRY(nlinear_multi({{x, D, wkv, a, cd}, {x, D, wgate, z, cd}}, N));
        if (S.dec) {  // entries buffers were reserved and the table built at the start of the step
            DSV4_TRY(cuda::compressor_decode(a, z, ape, S.dec_layer(il), N, index_keys ? 1 : 0, m, c0.c, d,
                                             nrm, cfg.rms_norm_eps, rd, inv_compress, stream));
            if (ref)  // the entries emitted this step: FP8 nope dims (KV) or Hadamard + FP4 (index keys)
                DSV4_TRY(
                    cuda::round_decode_entries(S.dec_layer(il), N, index_keys ? 1 : 0, m, d, d - rd, stream));
            for (const Seq& q : S.seqs) {
                DevLayerState& L = q.st->layers[size_t(il)];
                (index_keys ? L.idx : L.cmp).n_entries += (q.p0 + 1) % m == 0 ? 1 : 0;
            }
            return Status::ok();
        }
        for (const Seq& q : S.seqs) {
            DevLayerState& L = q.st->layers[size_t(il)];
            DevCompressor& c = index_keys ? L.idx : L.cmp;
            const float *qa = a + q.off * cd, *qz = z + q.off * cd;
            const int64_t w_first = q.p0 / m, n_emit = (q.p0 + q.n) / m - w_first;
            if (n_emit > 0) {
                DSV4_TRY(CudaSeqState::reserve(c, c.n_entries + n_emit, stream));
                float* C = c.entries + c.n_entries * d;
                int64_t* epos;
                DSV4_TRY_ASSIGN(epos, ws.get<int64_t>(n_emit));
                DSV4_TRY(cuda::compressor_emit(qa, qz, ape, c.pend_a, c.pend_z, c.prev_a, c.prev_z, q.p0, q.n,
                                               m, c.c, d, w_first, n_emit, C, epos, stream));
                DSV4_TRY(cuda::rms_norm_rope(C, n_emit, d, nrm, cfg.rms_norm_eps, 1, d - rd, rd / 2, epos,
                                             inv_compress, stream));
                if (ref && index_keys) DSV4_TRY(cuda::hadamard_rows(C, n_emit, d, true, stream));
                if (ref && !index_keys)
                    DSV4_TRY(cuda::fp8_roundtrip_rows(C, d, C, d, n_emit, d - rd, 64, stream));
            }
            DSV4_TRY(cuda::compressor_commit(qa, qz, ape, c.pend_a, c.pend_z, c.prev_a, c.prev_z, q.p0, q.n,
                                             m, c.c, d, stream));
            c.n_entries += n_emit;
        }
        return Status::ok();
    }

    // Lightning indexer (spec §6.6), first part: the index keys' compressor and the head weights wts [N, HI]
    // — everything that reads only x.
    Result<float*> indexer_keys(const Step& S, int il, const float* x) const {
        const DevLayer& L = layers[size_t(il)];
        const int64_t N = S.N, HI = cfg.index_n_heads, dI = cfg.index_head_dim, D = cfg.hidden_size;
        DSV4_TRY(compressor(S, L.idx_cmp_wkv, L.idx_cmp_wgate, L.idx_cmp_ape, L.idx_cmp_norm, x, il, true));
        float* wts;
        DSV4_TRY_ASSIGN(wts, ws.get<float>(N * HI));
        DSV4_TRY(cuda::linear(x, N, D, L.idx_weights_proj, wts, HI, stream));
        const float wscale = 1.0f / (std::sqrt(float(dI)) * std::sqrt(float(HI)));
        DSV4_TRY(cuda::scale(wts, N * HI, wscale, stream));
        return wts;
    }

    // Second part (after indexer_keys): sel [N, index_topk] (−1 padded), each sequence over its own keys.
    Result<int32_t*> indexer(const Step& S, int il, const float* cq, const float* wts) const {
        const DevLayer& L = layers[size_t(il)];
        const int64_t N = S.N, HI = cfg.index_n_heads, dI = cfg.index_head_dim, rd = cfg.qk_rope_head_dim;
        const int64_t rq = cfg.q_lora_rank, topk = cfg.index_topk;
        float* qi;
        DSV4_TRY_ASSIGN(qi, ws.get<float>(N * HI * dI));
        DSV4_TRY(nlinear(cq, N, rq, L.idx_wq_b, qi, HI * dI));
        DSV4_TRY(cuda::rope(qi, N, HI, dI, dI - rd, rd / 2, S.pos, inv_compress, false, stream));
        if (ref) DSV4_TRY(cuda::hadamard_rows(qi, N * HI, dI, true, stream));
        int32_t* sel;
        DSV4_TRY_ASSIGN(sel, ws.get<int32_t>(N * topk));
        if (S.dec) {
            int64_t max_keys = 1;
            for (const Seq& q : S.seqs) max_keys = std::max(max_keys, q.st->layers[size_t(il)].idx.n_entries);
            float* scores;
            DSV4_TRY_ASSIGN(scores, ws.get<float>(N * max_keys));
            DSV4_TRY(
                cuda::indexer_scores_decode(qi, wts, N, HI, dI, S.dec_layer(il), max_keys, scores, stream));
            DSV4_TRY(cuda::topk_lower_index(scores, N, max_keys, S.navail4, topk, sel, stream));
            return sel;
        }
        for (const Seq& q : S.seqs) {
            const DevCompressor& ic = q.st->layers[size_t(il)].idx;
            const int64_t n_keys = ic.n_entries;
            float* scores;
            DSV4_TRY_ASSIGN(scores, ws.get<float>(q.n * std::max<int64_t>(n_keys, 1)));
            if (q.n >= kIndexerGemmMinTokens) {  // prefill: SGEMM, only the keys the last query may see
                const int64_t nk = std::min(n_keys, (q.p0 + q.n) / 4);
                float* work;
                DSV4_TRY_ASSIGN(work, ws.get<float>(cuda::indexer_gemm_work_floats(q.n, HI, nk)));
                DSV4_TRY(cuda::indexer_scores_gemm(qi + q.off * HI * dI, wts + q.off * HI, q.n, HI, dI,
                                                   ic.entries, nk, S.navail4 + q.off, scores,
                                                   std::max<int64_t>(n_keys, 1), work, stream));
            } else {
                DSV4_TRY(cuda::indexer_scores(qi + q.off * HI * dI, wts + q.off * HI, q.n, HI, dI, ic.entries,
                                              n_keys, S.navail4 + q.off, scores, stream));
            }
            DSV4_TRY(cuda::topk_lower_index(scores, q.n, n_keys, S.navail4 + q.off, topk, sel + q.off * topk,
                                            stream));
        }
        return sel;
    }

    Status attention(const Step& S, int il, const float* x, float* out) const {
        const DevLayer& L = layers[size_t(il)];
        const int64_t N = S.N, H = cfg.num_attention_heads, dh = cfg.head_dim, D = cfg.hidden_size;
        const int64_t rd = cfg.qk_rope_head_dim, nope = dh - rd, rq = cfg.q_lora_rank, W = cfg.sliding_window;
        const int64_t G = cfg.o_groups, ro = cfg.o_lora_rank, m = cfg.compress_ratio(il);
        const float* inv = m == 0 ? inv_main : inv_compress;
        const double eps = cfg.rms_norm_eps;
        float *cq, *q, *kv;
        DSV4_TRY_ASSIGN(cq, ws.get<float>(N * rq));
        DSV4_TRY_ASSIGN(q, ws.get<float>(N * H * dh));
        DSV4_TRY_ASSIGN(kv, ws.get<float>(N * dh));
        // Branches (decode_branches): side 0 runs the compressor, side 1 the indexer (its keys and weights
        // from x at once, its queries once cq is normed); both join before the key gather. Otherwise the
        // same ops run in this order on the one stream.
        const bool br = decode_branches(S) && m != 0;
        float* wts = nullptr;
        if (br) {
            DSV4_TRY(fork(0));
            DSV4_TRY(on_side(0, [&] {
                return compressor(S, L.cmp_wkv, L.cmp_wgate, L.cmp_ape, L.cmp_norm, x, il, false);
            }));
            if (m == 4) {
                DSV4_TRY(fork(1));
                DSV4_TRY(on_side(1, [&]() -> Status {
                    DSV4_TRY_ASSIGN(wts, indexer_keys(S, il, x));
                    return Status::ok();
                }));
            }
        }
        // 1. queries
        // wq_a and wkv read the same x: one launch under exact numerics
        DSV4_TRY(nlinear_multi({{x, D, L.wq_a, cq, rq}, {x, D, L.wkv, kv, dh}}, N));
        DSV4_TRY(cuda::rms_norm(cq, N, rq, L.q_norm, eps, cq, stream));
        int32_t* sel = nullptr;
        if (br && m == 4) {
            DSV4_TRY(fork(1));  // the indexer's queries read cq
            DSV4_TRY(on_side(1, [&]() -> Status {
                DSV4_TRY_ASSIGN(sel, indexer(S, il, cq, wts));
                return Status::ok();
            }));
        }
        DSV4_TRY(nlinear(cq, N, rq, L.wq_b, q, H * dh));
        DSV4_TRY(cuda::rms_norm_rope(q, N * H, dh, nullptr, eps, H, nope, rd / 2, S.pos, inv, stream));
        mark("attn.q");
        // 2. the shared K=V head
        DSV4_TRY(cuda::rms_norm_rope(kv, N, dh, L.kv_norm, eps, 1, nope, rd / 2, S.pos, inv, stream));
        if (ref) DSV4_TRY(cuda::fp8_roundtrip_rows(kv, dh, kv, dh, N, nope, 64, stream));
        mark("attn.kv");
        // 3. compressed entries and the indexer's choice among them
        if (br) {
            DSV4_TRY(join(0));
            DSV4_TRY(join(1));
        } else {
            if (m != 0) DSV4_TRY(compressor(S, L.cmp_wkv, L.cmp_wgate, L.cmp_ape, L.cmp_norm, x, il, false));
            if (m != 0) mark("attn.compressor");
            if (m == 4) {
                DSV4_TRY_ASSIGN(wts, indexer_keys(S, il, x));
                DSV4_TRY_ASSIGN(sel, indexer(S, il, cq, wts));
                mark("attn.indexer");
            }
        }
        // 4.–5. per sequence: key pool = [window history | this call's kv] ∪ compressed entries (a second
        // segment), key lists, sink attention; then the window ring update
        float *o, *u;
        DSV4_TRY_ASSIGN(o, ws.get<float>(N * H * dh));
        DSV4_TRY_ASSIGN(u, ws.get<float>(N * G * ro));
        cuda::OutRope derot;  // the attention output's inverse RoPE (REF: after the attention)
        derot.off = nope, derot.n_pairs = rd / 2, derot.pos = S.pos, derot.inv_freq = inv;
        if (S.dec) {  // one pool of every sequence's keys, one attention call
            int64_t max_keys = W;
            if (m == 4) max_keys += cfg.index_topk;
            if (m > 4) {
                int64_t mx = 0;
                for (const Seq& sq : S.seqs) mx = std::max(mx, sq.st->layers[size_t(il)].cmp.n_entries);
                max_keys += mx;
            }
            float* pool;
            int32_t* idx;
            DSV4_TRY_ASSIGN(pool, ws.get<float>(N * max_keys * dh));
            DSV4_TRY_ASSIGN(idx, ws.get<int32_t>(N * max_keys));
            // the ring write of this step's kv in the gather (its newest window key)
            DSV4_TRY(cuda::gather_keys_decode(S.dec_layer(il), N, W, m, sel, cfg.index_topk, max_keys, dh,
                                              pool, idx, stream, kv));
            float* aw;
            DSV4_TRY_ASSIGN(aw, ws.get<float>(cuda::sink_attention_work_floats(N, H, dh, max_keys)));
            DSV4_TRY(cuda::sink_attention(q, N, H, dh, pool, nullptr, INT64_MAX, idx, max_keys, L.attn_sink,
                                          1.0f / std::sqrt(float(dh)), o, stream, aw, &derot));
        } else {
            for (const Seq& sq : S.seqs) {
                DevLayerState& st = sq.st->layers[size_t(il)];
                const int64_t hist0 = std::max<int64_t>(0, sq.p0 - (W - 1)), n_hist = sq.p0 - hist0;
                const int64_t n_cmp = m ? st.cmp.n_entries : 0;
                const int64_t max_keys = W + (m == 0 ? 0 : (m == 4 ? cfg.index_topk : n_cmp));
                float* pool;
                int32_t* idx;
                DSV4_TRY_ASSIGN(pool, ws.get<float>((n_hist + sq.n) * dh));
                DSV4_TRY_ASSIGN(idx, ws.get<int32_t>(sq.n * max_keys));
                const float* qkv = kv + sq.off * dh;
                float* aw;
                DSV4_TRY_ASSIGN(aw, ws.get<float>(cuda::sink_attention_work_floats(sq.n, H, dh, max_keys)));
                DSV4_TRY(cuda::attn_pool_build(st.ring, W, sq.p0, n_hist, qkv, sq.n, dh, pool, stream));
                DSV4_TRY(cuda::build_attn_index(sq.p0, sq.n, W, n_hist, m, n_cmp,
                                                sel ? sel + sq.off * cfg.index_topk : nullptr, cfg.index_topk,
                                                max_keys, idx, stream));
                cuda::OutRope dr = derot;
                dr.pos = S.pos + sq.off;
                DSV4_TRY(cuda::sink_attention(q + sq.off * H * dh, sq.n, H, dh, pool,
                                              m ? st.cmp.entries : nullptr, n_hist + sq.n, idx, max_keys,
                                              L.attn_sink, 1.0f / std::sqrt(float(dh)), o + sq.off * H * dh,
                                              stream, aw, &dr));
                DSV4_TRY(cuda::ring_write(qkv, sq.n, dh, sq.p0, W, st.ring, stream));
            }
        }
        // 6. de-rotation (in sink_attention: derot), grouped low-rank output
        mark("attn.core");
        const int64_t gin = H * dh / G;
        std::vector<cuda::LinearSeg> wo_a;  // the G groups in one launch (few tokens)
        for (int64_t g = 0; g < G; ++g)
            wo_a.push_back({o + g * gin, H * dh, L.wo_a.rows(g * ro, ro), u + g * ro, G * ro});
        DSV4_TRY(cuda::linear_multi(wo_a.data(), int(wo_a.size()), N, stream));
        DSV4_TRY(nlinear(u, N, G * ro, L.wo_b, out, D));  // wo_a above: REF runs it unrounded
        mark("attn.out");
        return Status::ok();
    }

    Status moe(const Step& S, int il, const float* x, float* out) const {
        const DevLayer& L = layers[size_t(il)];
        const int64_t n = S.N, D = cfg.hidden_size, E = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
        const int64_t Is = L.sh_w1.n_rows, I = L.w1_proto.n_rows;
        float *logits, *wsel, *g, *u, *h, *G, *U, *Hh, *Y;
        int32_t* esel;
        DSV4_TRY_ASSIGN(logits, ws.get<float>(n * E));
        DSV4_TRY_ASSIGN(wsel, ws.get<float>(n * k));
        DSV4_TRY_ASSIGN(esel, ws.get<int32_t>(n * k));
        // shared expert: out = shared(x); with branches on side stream 0 beside the router and the routed
        // experts, joined before the combine adds them to out
        DSV4_TRY_ASSIGN(g, ws.get<float>(n * Is));
        DSV4_TRY_ASSIGN(u, ws.get<float>(n * Is));
        DSV4_TRY_ASSIGN(h, ws.get<float>(n * Is));
        auto shared = [&]() -> Status {
            if (ref) {
                DSV4_TRY(nlinear_multi({{x, D, L.sh_w1, g, Is}, {x, D, L.sh_w3, u, Is}}, n));
                DSV4_TRY(cuda::swiglu_clamp(g, u, n, Is, Is, cfg.swiglu_limit, h, stream));
            } else {  // one launch at batch 1 (the b1 kernel's gate/up form)
                DSV4_TRY(cuda::linear_glu(x, n, D, L.sh_w1, L.sh_w3, cfg.swiglu_limit, g, u, h, stream));
            }
            return nlinear(h, n, Is, L.sh_w2, out, D);
        };
        if (decode_branches(S)) {
            DSV4_TRY(fork(0));
            DSV4_TRY(on_side(0, shared));
        } else {
            DSV4_TRY(shared());
            mark("moe.shared");
        }
        // one token: the router kernel also writes the expert grouping (moe_group's chunk table)
        const int64_t np = n * k;
        int32_t *perm, *n_chunks, *scratch, *chunks = nullptr;
        DSV4_TRY_ASSIGN(perm, ws.get<int32_t>(np));
        DSV4_TRY_ASSIGN(n_chunks, ws.get<int32_t>(1));
        DSV4_TRY_ASSIGN(scratch, ws.get<int32_t>(E + 1));
        const int64_t max_chunks = cuda::moe_max_chunks(np, E);
        const bool route_groups = n == 1 && k <= 32;
        cuda::MoeGroupOut grp;
        if (route_groups) {
            DSV4_TRY_ASSIGN(chunks, ws.get<int32_t>(3 * max_chunks));
            grp.perm = perm, grp.chunks = chunks, grp.n_chunks = n_chunks;
        }
        DSV4_TRY(cuda::linear(x, n, D, L.gate, logits, E, stream));
        const bool hash = cfg.is_hash_layer(il);
        DSV4_TRY(cuda::moe_route(logits, n, E, k, S.ids, hash ? L.tid2eid : nullptr, cfg.vocab_size,
                                 hash ? nullptr : L.gate_bias, cfg.routed_scaling_factor, esel, wsel, stream,
                                 route_groups ? &grp : nullptr));
        mark("moe.router");
        // routed experts: (token, slot) pairs grouped by expert on the device, each expert's weights read
        // once per chunk of up to 8 pairs
        DSV4_TRY_ASSIGN(G, ws.get<float>(n * k * I));
        DSV4_TRY_ASSIGN(U, ws.get<float>(n * k * I));
        DSV4_TRY_ASSIGN(Hh, ws.get<float>(n * k * I));
        DSV4_TRY_ASSIGN(Y, ws.get<float>(n * k * D));
        // Reference numerics with ≥ kFp8GemmMinTokens tokens: the experts on the FP8 tensor cores (x and h
        // quantized once, chunks of fp8_gemm_group_rows() pairs).
        if (ref && fp8_gemm_on && n >= kFp8GemmMinTokens && cuda::fp8_gemm_weight_ok(L.w1_proto) &&
            cuda::fp8_gemm_weight_ok(L.w2_proto)) {
            const int64_t mc = cuda::moe_max_chunks(np, E, cuda::fp8_gemm_group_rows());
            int32_t* gchunks;
            DSV4_TRY_ASSIGN(gchunks, ws.get<int32_t>(3 * mc));
            DSV4_TRY(cuda::moe_group(esel, np, E, perm, gchunks, n_chunks, scratch, stream,
                                     int(cuda::fp8_gemm_group_rows())));
            uint8_t *xq, *hq;
            float *xs, *hs;
            DSV4_TRY_ASSIGN(xq, ws.get<uint8_t>(n * D));
            DSV4_TRY_ASSIGN(xs, ws.get<float>(n * (D / 128)));
            DSV4_TRY_ASSIGN(hq, ws.get<uint8_t>(np * I));
            DSV4_TRY_ASSIGN(hs, ws.get<float>(np * (I / 128)));
            DSV4_TRY(cuda::fp8_quantize_act(x, n, D, D, n, xq, xs, stream));
            DSV4_TRY(cuda::fp8_gemm_grouped_q(xq, xs, n, k, L.w1, L.w1_proto, perm, gchunks, n_chunks, mc, G,
                                              I, stream));
            DSV4_TRY(cuda::fp8_gemm_grouped_q(xq, xs, n, k, L.w3, L.w1_proto, perm, gchunks, n_chunks, mc, U,
                                              I, stream));
            DSV4_TRY(cuda::swiglu_clamp(G, U, np, I, I, cfg.swiglu_limit, Hh, stream));
            DSV4_TRY(cuda::scale_rows(Hh, np, I, I, wsel, stream));
            DSV4_TRY(cuda::fp8_quantize_act(Hh, np, I, I, np, hq, hs, stream));
            DSV4_TRY(cuda::fp8_gemm_grouped_q(hq, hs, np, 1, L.w2, L.w2_proto, perm, gchunks, n_chunks, mc, Y,
                                              D, stream));
            DSV4_TRY(join(0));
            DSV4_TRY(cuda::moe_combine(Y, nullptr, n, k, D, out, stream));  // weights already in h
            mark("moe.routed");
            return Status::ok();
        }
        if (!route_groups) {
            DSV4_TRY_ASSIGN(chunks, ws.get<int32_t>(3 * max_chunks));
            DSV4_TRY(cuda::moe_group(esel, np, E, perm, chunks, n_chunks, scratch, stream));
        }
        // Reference numerics (moe.cpp expert_ffn): x rounded to FP8 once for all experts (the rounding is per
        // row), the routing weight applied to h before W2's FP8 rounding, then combined with weight 1.
        const float* xe = x;
        const float* wcomb = wsel;
        if (ref && quantized(L.w1_proto)) {
            DSV4_TRY_ASSIGN(xe, rounded_fp8(x, n, D, D));
        }
        DSV4_TRY(cuda::linear_grouped_glu(xe, np, D, k, L.w1, L.w3, L.w1_proto, perm, chunks, n_chunks,
                                          max_chunks, cfg.swiglu_limit, G, U, Hh, stream, n));
        if (ref) {
            DSV4_TRY(cuda::scale_rows(Hh, np, I, I, wsel, stream));
            if (quantized(L.w2_proto)) DSV4_TRY(cuda::fp8_roundtrip_rows(Hh, I, Hh, I, np, I, 128, stream));
            wcomb = nullptr;  // combined with weight 1
        }
        DSV4_TRY(cuda::linear_grouped(Hh, np, I, 1, L.w2, L.w2_proto, perm, chunks, n_chunks, max_chunks, Y,
                                      D, stream, n));
        DSV4_TRY(join(0));
        DSV4_TRY(cuda::moe_combine(Y, wcomb, n, k, D, out, stream));
        mark("moe.routed");
        return Status::ok();
    }

    // numerics_linear (model/numerics.cpp) on the GPU: under reference numerics the input of an FP8/FP4
    // weight is rounded to FP8 e4m3 in blocks of 128 first. ≥ kFp8GemmMinTokens tokens on a weight
    // fp8_gemm takes: the FP8 tensor-core GEMM on the rounded codes; otherwise the rounded copy of x goes
    // through cuda::linear.
    Status nlinear(const float* x, int64_t n, int64_t ldx, const WeightRef& w, float* y, int64_t ldy) const {
        if (!ref || !quantized(w)) return cuda::linear(x, n, ldx, w, y, ldy, stream);
        const int64_t K = w.n_cols;
        if (fp8_gemm_on && n >= kFp8GemmMinTokens && cuda::fp8_gemm_weight_ok(w)) {
            uint8_t* work;
            DSV4_TRY_ASSIGN(work, ws.get<uint8_t>(cuda::fp8_gemm_work_bytes(n, K)));
            return cuda::fp8_gemm(x, n, ldx, w, y, ldy, work, stream);
        }
        float* xr;
        DSV4_TRY_ASSIGN(xr, rounded_fp8(x, n, ldx, K));
        return cuda::linear(xr, n, K, w, y, ldy, stream);
    }

    // A workspace copy [n, K] of x rounded to FP8 in blocks of 128 (REF act_quant as a round trip).
    Result<float*> rounded_fp8(const float* x, int64_t n, int64_t ldx, int64_t K) const {
        float* xr;
        DSV4_TRY_ASSIGN(xr, ws.get<float>(n * K));
        DSV4_TRY(cuda::fp8_roundtrip_rows(x, ldx, xr, K, n, K, 128, stream));
        return xr;
    }

    // Linears over the same rows: under exact numerics one cuda::linear_multi (a launch per weight format
    // for few tokens, plain linears otherwise); under reference numerics each through nlinear.
    Status nlinear_multi(std::initializer_list<cuda::LinearSeg> segs, int64_t n) const {
        if (!ref) return cuda::linear_multi(segs.begin(), int(segs.size()), n, stream);
        // Few tokens: every quantized segment's x rounded once per distinct (x, ldx, K), then one
        // linear_multi (rounding is per row and block, so a shared copy is the same rounding); ≥
        // kFp8GemmMinTokens: each through nlinear (the FP8 GEMM).
        if (n >= kFp8GemmMinTokens || segs.size() > 8) {
            for (const cuda::LinearSeg& g : segs) DSV4_TRY(nlinear(g.x, n, g.ldx, g.w, g.y, g.ldy));
            return Status::ok();
        }
        cuda::LinearSeg rs[8];
        int m = 0;
        for (const cuda::LinearSeg& g : segs) {
            rs[m] = g;
            if (quantized(g.w)) {
                const int64_t K = g.w.n_cols;
                int same = -1;
                for (int i = 0; i < m; ++i)
                    if (quantized(rs[i].w) && segs.begin()[i].x == g.x && segs.begin()[i].ldx == g.ldx &&
                        rs[i].w.n_cols == K)
                        same = i;
                if (same >= 0) {
                    rs[m].x = rs[same].x, rs[m].ldx = rs[same].ldx;
                } else {
                    float* xr;
                    DSV4_TRY_ASSIGN(xr, rounded_fp8(g.x, n, g.ldx, K));
                    rs[m].x = xr, rs[m].ldx = K;
                }
            }
            ++m;
        }
        return cuda::linear_multi(rs, m, n, stream);
    }

    // Kernels of one step from the embedding to the LM head, on `stream`: no host<->device copy, no host
    // sync, no allocation but the workspace (so the whole sequence can be recorded by stream capture).
    // lg: the logits [n_out, V] in the workspace.
    Status compute(const Step& S, const int32_t* d_ids, const int64_t* d_meta, int64_t n_out,
                   float*& lg) const {
        Status st = compute_layers(S, d_ids, d_meta, n_out, lg);
        stream = main;
        Status j = join_all();  // also after a failure part-way (see join_all)
        return st.is_ok() ? j : st;
    }
    Status compute_layers(const Step& S, const int32_t* d_ids, const int64_t* d_meta, int64_t n_out,
                          float*& lg) const {
        const int64_t N = S.N, D = cfg.hidden_size, hc = cfg.hc_mult, V = cfg.vocab_size;
        const double eps = cfg.rms_norm_eps;
        float *h, *X, *X2, *y, *post, *comb, *sub;
        DSV4_TRY_ASSIGN(h, ws.get<float>(N * D));
        DSV4_TRY_ASSIGN(X, ws.get<float>(N * hc * D));
        DSV4_TRY_ASSIGN(X2, ws.get<float>(N * hc * D));
        DSV4_TRY_ASSIGN(y, ws.get<float>(N * D));
        DSV4_TRY_ASSIGN(post, ws.get<float>(N * hc));
        DSV4_TRY_ASSIGN(comb, ws.get<float>(N * hc * hc));
        DSV4_TRY_ASSIGN(sub, ws.get<float>(N * D));
        float* hcw;  // K-split workspace of hc_pre (all rows) and hc_head (n_out ≤ N rows)
        DSV4_TRY_ASSIGN(hcw, ws.get<float>(cuda::hc_work_floats(N, hc, D)));
        DSV4_TRY(cuda::embed(d_ids, N, embed, h, stream));
        DSV4_TRY(cuda::hc_expand(h, N, hc, D, X, stream));
        mark("embed");
        const int iters = cfg.hc_sinkhorn_iters;
        // branches: each site's Sinkhorn (comb) on side 2, beside the sublayer; joined before the next site
        const bool defer = decode_branches(S);
        const auto sinkhorn_side = [&]() -> Status {
            if (!defer) return Status::ok();
            DSV4_TRY(fork(2));
            return on_side(2, [&] { return cuda::hc_sinkhorn(comb, N, hc, iters, cfg.hc_eps, stream); });
        };
        for (int il = 0; il < cfg.num_hidden_layers; ++il) {
            const DevLayer& L = layers[size_t(il)];
            const auto layer_ws = ws.cursor();  // a layer's scratch is reused by the next one
            // one launch per site boundary (docs/kernels/hc.md): post-mix of the sublayer just run, pre-mix
            // of the next site, its RMSNorm; post/comb are overwritten in place
            if (il == 0) {
                DSV4_TRY(cuda::hc_pre(X, N, hc, D, L.hc_attn_fn, L.hc_attn_base, L.hc_attn_scale, iters,
                                      cfg.hc_eps, eps, y, post, comb, stream, hcw, L.attn_norm, defer));
                DSV4_TRY(sinkhorn_side());
                mark("hc_pre+norm");
            }
            DSV4_TRY(attention(S, il, y, sub));
            DSV4_TRY(join(2));
            DSV4_TRY(cuda::hc_post_pre(X, sub, post, comb, N, hc, D, X2, L.hc_ffn_fn, L.hc_ffn_base,
                                       L.hc_ffn_scale, iters, cfg.hc_eps, eps, L.ffn_norm, y, post, comb, hcw,
                                       stream, defer));
            DSV4_TRY(sinkhorn_side());
            mark("hc_post+pre+norm");
            DSV4_TRY(moe(S, il, y, sub));
            DSV4_TRY(join(2));
            if (il + 1 < cfg.num_hidden_layers) {
                const DevLayer& Ln = layers[size_t(il + 1)];
                DSV4_TRY(cuda::hc_post_pre(X2, sub, post, comb, N, hc, D, X, Ln.hc_attn_fn, Ln.hc_attn_base,
                                           Ln.hc_attn_scale, iters, cfg.hc_eps, eps, Ln.attn_norm, y, post,
                                           comb, hcw, stream, defer));
                DSV4_TRY(sinkhorn_side());
                mark("hc_post+pre+norm");
            } else {
                DSV4_TRY(cuda::hc_post(X2, sub, post, comb, N, hc, D, X, stream));
                mark("hc_post");
            }
            ws.rewind(layer_ws);
        }
        // head: the rows that want logits, streams collapsed, final norm, LM head
        float *Xs = X, *z;
        if (n_out != N) {
            DSV4_TRY_ASSIGN(Xs, ws.get<float>(n_out * hc * D));
            DSV4_TRY(cuda::gather_rows(X, hc * D, d_meta + 2 * N, n_out, Xs, stream));
        }
        DSV4_TRY_ASSIGN(z, ws.get<float>(n_out * D));
        DSV4_TRY_ASSIGN(lg, ws.get<float>(n_out * V));
        float* hw;
        DSV4_TRY_ASSIGN(hw, ws.get<float>(cuda::hc_work_floats(n_out, hc, D)));
        DSV4_TRY(cuda::hc_head(Xs, n_out, hc, D, hc_head_fn, hc_head_base, hc_head_scale, cfg.hc_eps, eps, z,
                               stream, hw));
        DSV4_TRY(cuda::rms_norm(z, n_out, D, norm, eps, z, stream));
        DSV4_TRY(cuda::linear(z, n_out, D, head, lg, V, stream));
        mark("head");
        return Status::ok();
    }

    // The host bookkeeping of a decode step's compressors (what compressor() does as it launches): a
    // sequence whose token completes a window has one more entry. Graph steps call it after the launch.
    static void advance_entries(const Step& S) {
        for (const Seq& q : S.seqs)
            for (DevLayerState& L : q.st->layers)
                for (DevCompressor* c : {&L.cmp, &L.idx})
                    if (c->m && (q.p0 + 1) % c->m == 0) ++c->n_entries;
    }

    // Records compute() of a decode step into g (stream capture in thread-local mode, so other threads'
    // CUDA calls are not restricted), then updates g's executable graph with it or instantiates a new one
    // when the update is refused. Every path out of the capture ends it and destroys the partial graph.
    // The entry counts compute() advances are put back (nothing has run yet). A capture abandoned because
    // the workspace would have to grow sets `refused`, rewinds the workspace and returns ok: the caller
    // runs the step eagerly.
    Status record(const Step& S, const int32_t* d_ids, const int64_t* d_meta, DecodeGraph& g,
                  bool& refused) const {
        refused = false;
        std::vector<int64_t> saved;  // entry counts, restored when the capture is abandoned
        saved.reserve(S.seqs.size() * size_t(cfg.num_hidden_layers) * 2);
        for (const Seq& q : S.seqs)
            for (const DevLayerState& L : q.st->layers)
                saved.push_back(L.cmp.n_entries), saved.push_back(L.idx.n_entries);
        const auto cursor = ws.cursor();
        DSV4_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        ws.freeze(true);
        float* lg = nullptr;
        Status st = compute(S, d_ids, d_meta, S.N, lg);
        cudaGraph_t graph = nullptr;
        const cudaError_t e = cudaStreamEndCapture(stream, &graph);
        const bool grew = ws.refused();
        ws.freeze(false);
        // nothing ran yet: put the entry counts back (the caller advances them once the graph is launched),
        // checking that compute() advanced them as advance_entries will
        size_t i = 0;
        for (const Seq& q : S.seqs)
            for (DevLayerState& L : q.st->layers)
                for (DevCompressor* c : {&L.cmp, &L.idx}) {
                    const int64_t want = saved[i] + (c->m && (q.p0 + 1) % c->m == 0 ? 1 : 0);
                    if (st.is_ok() && c->n_entries != want)
                        st = error("cuda: a recorded decode step left {} compressor entries, expected {}",
                                   c->n_entries, want);
                    c->n_entries = saved[i++];
                }
        if (!st.is_ok() || e != cudaSuccess) {
            if (graph) cudaGraphDestroy(graph);
            cudaGetLastError();  // a capture error must not surface at the next launch check
            ws.rewind(cursor);
            if (grew && e == cudaSuccess) {
                refused = true;
                ++g_graph_counters.refused;
                log_debug("cuda: decode step of batch {} runs eagerly (the workspace grows)", S.N);
                return Status::ok();
            }
            return error("cuda: CUDA graph capture of a decode step (batch {}) failed: {}", S.N,
                         !st.is_ok() ? st.message() : std::string(cudaGetErrorString(e)));
        }
        if (g.exec) {
            cudaGraphExecUpdateResultInfo info{};
            if (cudaGraphExecUpdate(g.exec, graph, &info) == cudaSuccess) {
                ++g_graph_counters.updates;
            } else {  // topology or a node kind changed (e.g. attention got a merge kernel): start afresh
                cudaGetLastError();
                cudaGraphExecDestroy(g.exec);
                g.exec = nullptr;
            }
        }
        if (!g.exec) {
            const cudaError_t ie = cudaGraphInstantiate(&g.exec, graph, 0);
            if (ie != cudaSuccess) {
                g.exec = nullptr;
                cudaGraphDestroy(graph);
                cudaGetLastError();
                return error("cuda: cudaGraphInstantiate of a decode step (batch {}) failed: {}", S.N,
                             cudaGetErrorString(ie));
            }
            ++g_graph_counters.instantiations;
        }
        cudaGraphDestroy(graph);
        g.lg = lg;
        ++g_graph_counters.captures;
        return Status::ok();
    }

    // items: (state, n_past, ids, all_logits); logits_out: per item n (all_logits) or 1 rows of [V].
    // Uploads and state reserves come first; then the kernels run eagerly (prefill and mixed steps, the
    // first decode step of a batch size, DSV4_CUDA_PROFILE, DSV4_CUDA_GRAPHS=0) or as the CUDA graph of
    // this batch size: recorded again when the step's launch parameters (decode key) or the eager epoch
    // changed, else launched as it is; the logits are copied out after it.
    Status forward(std::span<const CudaForward::Item> items, std::span<CudaSeqState* const> states,
                   std::vector<float>& logits_out) const {
        const int64_t V = cfg.vocab_size;
        ws.reset();
        Step S;
        int64_t N = 0, n_out = 0;
        for (size_t i = 0; i < items.size(); ++i) {
            const int64_t n = int64_t(items[i].ids.size());
            S.seqs.push_back({states[i], items[i].st->n_past, n, N});
            N += n;
            n_out += items[i].all_logits ? n : 1;
        }
        S.N = N;
        // step metadata: ids, positions, CSA visibility, head rows (one small upload)
        std::vector<int64_t> meta(size_t(2 * N + n_out));
        std::vector<int32_t> tok(static_cast<size_t>(N));
        int64_t r = 0;
        for (size_t i = 0; i < items.size(); ++i) {
            const Seq& q = S.seqs[i];
            for (int64_t j = 0; j < q.n; ++j) {
                const int64_t t = q.off + j, p = q.p0 + j;
                tok[size_t(t)] = items[i].ids[size_t(j)];
                meta[size_t(t)] = p, meta[size_t(N + t)] = (p + 1) / 4;
                if (items[i].all_logits || j == q.n - 1) meta[size_t(2 * N + r++)] = t;
            }
        }
        int32_t* d_ids;
        int64_t* d_meta;
        DSV4_TRY_ASSIGN(d_ids, ws.get<int32_t>(N));
        DSV4_TRY_ASSIGN(d_meta, ws.get<int64_t>(2 * N + n_out));
        DSV4_CUDA_CHECK(cudaMemcpyAsync(d_ids, tok.data(), size_t(N) * 4, cudaMemcpyHostToDevice, stream));
        DSV4_CUDA_CHECK(
            cudaMemcpyAsync(d_meta, meta.data(), meta.size() * 8, cudaMemcpyHostToDevice, stream));
        S.ids = d_ids, S.pos = d_meta, S.navail4 = d_meta + N;
        std::vector<cuda::DecodeSeq> dec;  // alive until the step's end (the upload may be staged)
        // decode key: every host-side launch parameter of a decode step besides N is a function of the
        // compressors' entry counts after this step's emit, through their maximum over the batch per layer
        // (indexer key count, HCA key count, buffer sizes and hence workspace offsets). NOTE: a launch
        // parameter of compressor/indexer/attention/moe that depends on anything else must enter this key.
        std::vector<int64_t> key;
        cuda::DecodeSeq* d_dec = nullptr;
        if (N == int64_t(items.size())) {
            const int nl = cfg.num_hidden_layers;
            dec.resize(size_t(nl) * size_t(N));
            key.reserve(size_t(2 * nl));
            for (int il = 0; il < nl; ++il) {
                int64_t max_cmp = 0, max_idx = 0;
                for (int64_t b = 0; b < N; ++b) {
                    const Seq& q = S.seqs[size_t(b)];
                    DevLayerState& L = q.st->layers[size_t(il)];
                    for (DevCompressor* c : {&L.cmp, &L.idx})
                        if (c->m && (q.p0 + 1) % c->m == 0)
                            DSV4_TRY(CudaSeqState::reserve(*c, c->n_entries + 1, stream));
                    auto desc = [](const DevCompressor& c) {
                        return cuda::DecodeCompressor{c.pend_a, c.pend_z,  c.prev_a,
                                                      c.prev_z, c.entries, c.n_entries};
                    };
                    dec[size_t(il) * size_t(N) + size_t(b)] = {q.p0, L.ring, desc(L.cmp), desc(L.idx)};
                    auto after = [&](const DevCompressor& c) {
                        return c.n_entries + (c.m && (q.p0 + 1) % c.m == 0 ? 1 : 0);
                    };
                    max_cmp = std::max(max_cmp, after(L.cmp));
                    max_idx = std::max(max_idx, after(L.idx));
                }
                key.push_back(max_cmp);
                key.push_back(max_idx);
            }
            DSV4_TRY_ASSIGN(d_dec, ws.get<cuda::DecodeSeq>(int64_t(dec.size())));
            DSV4_CUDA_CHECK(cudaMemcpyAsync(d_dec, dec.data(), dec.size() * sizeof(cuda::DecodeSeq),
                                            cudaMemcpyHostToDevice, stream));
            S.dec = d_dec;
        }
        mark("start");

        float* lg = nullptr;
        const bool graph_step = S.dec && graph_mode != GraphMode::off && !prof.on;
        DecodeGraph* g = graph_step ? &graphs[N] : nullptr;
        if (g && g->warm) {
            const void* inputs[3] = {d_ids, d_meta, d_dec};
            const bool reuse = graph_mode == GraphMode::reuse && g->exec && g->epoch == eager_epoch &&
                               g->key == key && std::equal(inputs, inputs + 3, g->inputs);
            bool refused = false;
            if (!reuse) {
                DSV4_TRY(record(S, d_ids, d_meta, *g, refused));
                if (!refused) {
                    g->epoch = eager_epoch, g->key = std::move(key);
                    std::copy(inputs, inputs + 3, g->inputs);
                }
            }
            if (!refused) {
                DSV4_CUDA_CHECK(cudaGraphLaunch(g->exec, stream));
                ++g_graph_counters.launches;
                advance_entries(S);
                lg = g->lg;
            }
        }
        if (!lg) {  // eager
            ++eager_epoch;
            DSV4_TRY(compute(S, d_ids, d_meta, n_out, lg));
            if (g) g->warm = true;
        }
        logits_out.resize(size_t(n_out * V));
        DSV4_CUDA_CHECK(
            cudaMemcpyAsync(logits_out.data(), lg, size_t(n_out * V) * 4, cudaMemcpyDeviceToHost, stream));
        mark("logits d2h");
        DSV4_CUDA_CHECK(cudaStreamSynchronize(stream));
        prof.finish(N == int64_t(items.size()));
        return Status::ok();
    }
};

std::unique_ptr<DeviceSeqState> CudaSeqState::clone() const {
    auto c = std::make_unique<CudaSeqState>();
    c->ring_elems = ring_elems;
    for (const DevLayerState& s : layers) {
        DevLayerState d;
        DSV4_ASSERT(c->alloc_zero(&d.ring, ring_elems).is_ok(), "clone_state: ring allocation failed");
        DSV4_ASSERT(
            cudaMemcpy(d.ring, s.ring, size_t(ring_elems) * 4, cudaMemcpyDeviceToDevice) == cudaSuccess,
            "clone_state: copy failed");
        c->layers.push_back(d);  // owned entries are freed by c from here on
        Status st = copy_compressor(s.cmp, c->layers.back().cmp, *c);
        if (st.is_ok()) st = copy_compressor(s.idx, c->layers.back().idx, *c);
        DSV4_ASSERT(st.is_ok(), "clone_state: {}", st.message());
    }
    return c;
}

CudaForward::~CudaForward() = default;

Result<std::unique_ptr<CudaForward>> CudaForward::create(const Dsv4Config& cfg, const Weights& w,
                                                         const std::vector<float>& inv_main,
                                                         const std::vector<float>& inv_compress,
                                                         bool reference_numerics) {
    if (!cuda::device_available()) return error("backend 'cuda': no CUDA device is available");
    std::unique_ptr<CudaForward> f(new CudaForward());
    f->impl_ = std::make_unique<Impl>();
    f->impl_->cfg = cfg;
    f->impl_->ref = reference_numerics;
    const char* fg = std::getenv("DSV4_FP8_GEMM");
    f->impl_->fp8_gemm_on = !(fg && std::string(fg) == "0");
    const char* p = std::getenv("DSV4_CUDA_PROFILE");
    f->impl_->prof.on = p && *p && *p != '0';
    const char* g = std::getenv("DSV4_CUDA_GRAPHS");
    const std::string gm = g ? g : "";
    if (gm == "0" || gm == "off")
        f->impl_->graph_mode = GraphMode::off;
    else if (gm == "capture")
        f->impl_->graph_mode = GraphMode::capture;
    else if (!gm.empty() && gm != "1")
        return error("DSV4_CUDA_GRAPHS='{}': expected 0, 1 or capture", gm);
    DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&f->impl_->main, cudaStreamNonBlocking));
    f->impl_->stream = f->impl_->main;
    for (int i = 0; i < Impl::kSides; ++i) {
        DSV4_CUDA_CHECK(cudaStreamCreateWithFlags(&f->impl_->side[i], cudaStreamNonBlocking));
        DSV4_CUDA_CHECK(cudaEventCreateWithFlags(&f->impl_->fork_ev[i], cudaEventDisableTiming));
        DSV4_CUDA_CHECK(cudaEventCreateWithFlags(&f->impl_->join_ev[i], cudaEventDisableTiming));
    }
    const char* br = std::getenv("DSV4_CUDA_BRANCHES");
    f->impl_->branches_on = !(br && std::string(br) == "0");
    DSV4_TRY(f->impl_->upload(w, inv_main, inv_compress));
    return f;
}

int64_t CudaForward::weight_bytes() const {
    return impl_->mem.bytes;
}

CudaForward::GraphStats CudaForward::graph_stats() {
    const GraphCounters& c = g_graph_counters;
    return {c.launches.load(), c.captures.load(), c.instantiations.load(), c.updates.load(),
            c.refused.load()};
}

std::unique_ptr<DeviceSeqState> CudaForward::new_state() const {
    const Dsv4Config& cfg = impl_->cfg;
    auto st = std::make_unique<CudaSeqState>();
    st->ring_elems = int64_t(cfg.sliding_window) * cfg.head_dim;
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        DevLayerState L;
        DSV4_ASSERT(st->alloc_zero(&L.ring, int64_t(cfg.sliding_window) * cfg.head_dim).is_ok(),
                    "ring alloc");
        const int m = cfg.compress_ratio(il);
        auto make = [&](DevCompressor& c, int64_t d) {
            c.m = m == 4 ? 4 : m;
            c.c = m == 4 ? 2 : 1;
            c.d = d;
            DSV4_ASSERT(st->alloc_zero(&c.pend_a, c.m * c.c * d).is_ok(), "alloc");
            DSV4_ASSERT(st->alloc_zero(&c.pend_z, c.m * c.c * d).is_ok(), "alloc");
            if (c.c == 2) {
                DSV4_ASSERT(st->alloc_zero(&c.prev_a, c.m * d).is_ok(), "alloc");
                DSV4_ASSERT(st->alloc_zero(&c.prev_z, c.m * d).is_ok(), "alloc");
            }
        };
        if (m != 0) make(L.cmp, cfg.head_dim);
        if (m == 4) make(L.idx, cfg.index_head_dim);
        st->layers.push_back(L);
    }
    return st;
}

Status CudaForward::forward(SeqState& st, std::span<const int32_t> ids, std::vector<float>& logits,
                            bool all_logits) const {
    const Item it{&st, ids, all_logits};
    return forward_batch(std::span(&it, 1), logits);
}

Status CudaForward::forward_batch(std::span<const Item> items, std::vector<float>& logits) const {
    std::vector<CudaSeqState*> states;
    for (const Item& it : items) {
        auto* ds = dynamic_cast<CudaSeqState*>(it.st->device.p.get());
        if (!ds) return error("forward: the state was not made by this CUDA model (use Model::new_state)");
        states.push_back(ds);
    }
    DSV4_TRY(impl_->forward(items, states, logits));
    for (const Item& it : items) it.st->n_past += int64_t(it.ids.size());
    return Status::ok();
}

}  // namespace dsv4

#else  // no CUDA in this build

namespace dsv4 {
struct CudaForward::Impl {};
CudaForward::~CudaForward() = default;
Result<std::unique_ptr<CudaForward>> CudaForward::create(const Dsv4Config&, const Weights&,
                                                         const std::vector<float>&, const std::vector<float>&,
                                                         bool) {
    return error("backend 'cuda' is not available: this build has no CUDA (configure with -DDSV4_CUDA=ON)");
}
std::unique_ptr<DeviceSeqState> CudaForward::new_state() const {
    return nullptr;
}
Status CudaForward::forward(SeqState&, std::span<const int32_t>, std::vector<float>&, bool) const {
    return error("backend 'cuda' is not available in this build");
}
Status CudaForward::forward_batch(std::span<const Item>, std::vector<float>&) const {
    return error("backend 'cuda' is not available in this build");
}
int64_t CudaForward::weight_bytes() const {
    return 0;
}
CudaForward::GraphStats CudaForward::graph_stats() {
    return {};
}
}  // namespace dsv4

#endif
