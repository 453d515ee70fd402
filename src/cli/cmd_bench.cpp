// `dsv4 bench` (issue 6 item 4): builds a random-weight model IN MEMORY at the REAL V4-Flash dimensions
// (released FP8/FP4 layout, all 256 routed experts; model/random_weights.h) with as many of its layers as
// fit the GPU (--layers 0; at least the first 4, which hold every layer and routing kind), uploads it to
// the CUDA backend through the normal weight table and prints one line per case: decode step time and
// tok/s per batch and context, prefill tok/s per prompt length, bytes moved per step and the achieved rate
// as a % of the device-to-device copy bandwidth, FLOPs per step as a % of the FP8 GEMM peak (both ceilings
// measured in the same run); then the linear kernel alone at the Flash shapes. Reading: bench/NOTES.md.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <map>
#include <numeric>

#include "cli/commands.h"
#include "core/log.h"
#include "format/config.h"
#include "model/inventory.h"
#include "model/model.h"
#include "model/random_weights.h"

#if DSV4_HAVE_CUDA
#include "ops/cuda/ops_bench.h"
#endif

namespace dsv4::cli {

namespace {

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double median_ms(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Floors of one decode step of B sequences at context ctx: the weight bytes (non-expert weights once,
// routed experts once per expert touched: E·(1 − (1 − k/E)^B) per layer for uniform routing), the state
// bytes each sequence's attention reads (window ring, selected/all compressed entries, index keys), and
// the FLOPs (2 per active parameter per token, plus the attention and indexer dots).
struct StepFloor {
    double weight_bytes = 0, state_bytes = 0, flops = 0;
};
StepFloor step_floor(const Dsv4Config& cfg, const ModelCounts& c, int64_t B, int64_t ctx) {
    StepFloor f;
    const double E = double(cfg.n_routed_experts), k = double(cfg.num_experts_per_tok);
    const double routed = double(c.token_bytes[size_t(WeightGroup::routed_experts)]);
    const double touched = E * (1.0 - std::pow(1.0 - k / E, double(B)));
    f.weight_bytes = double(c.token_bytes_total) - routed + routed * touched / k;
    const double dh = double(cfg.head_dim), H = double(cfg.num_attention_heads),
                 W = double(cfg.sliding_window);
    const double HI = double(cfg.index_n_heads), dI = double(cfg.index_head_dim);
    double keys_all = 0, idx_keys = 0;
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        const int m = cfg.compress_ratio(il);
        double keys = std::min<double>(double(ctx), W);
        if (m == 4) {
            const double n_idx = double(ctx / 4);
            keys += std::min<double>(double(cfg.index_topk), n_idx);
            idx_keys += n_idx;
        } else if (m > 0) {
            keys += double(ctx / m);
        }
        keys_all += keys;
    }
    f.state_bytes = double(B) * 4.0 * (keys_all * dh + idx_keys * dI);
    f.flops =
        double(B) * (2.0 * double(c.params_active) + 4.0 * H * dh * keys_all + 2.0 * HI * dI * idx_keys);
    return f;
}

#if DSV4_HAVE_CUDA
// ---- device memory plan for --layers 0 (auto). Estimates, per layer of the config, the device bytes of
// (a) its weights as uploaded (inventory bytes; norms become f32; expert tables), (b) the decode state of
// the largest case (B sequences at the longest context: window ring, compressor buffers, compressed entries
// and index keys, f32; entry buffers double on the first emit after a clone, as CudaSeqState::reserve
// does), and (c) what one forward call takes from the model's activation workspace for the layer (the
// requests of forward_cuda.cpp's attention() and moe(), each rounded to 256 B): that workspace is reset per
// call, not per layer, so it grows with the layer count, ×1.25 for its 64 MiB chunking.
constexpr double kGiB = double(int64_t(1) << 30);

struct WsCount {
    int64_t bytes = 0;
    void f(int64_t n) { bytes += (std::max<int64_t>(n, 1) * 4 + 255) & ~int64_t(255); }  // f32 / i32
    void l(int64_t n) { bytes += (std::max<int64_t>(n, 1) * 8 + 255) & ~int64_t(255); }  // i64
};

// One layer's workspace in a call of N tokens: a decode step of N sequences at position ctx, or a prefill
// chunk of one sequence ending at position ctx.
int64_t layer_workspace_bytes(const Dsv4Config& c, int il, int64_t N, int64_t ctx, bool decode) {
    const int64_t H = c.num_attention_heads, dh = c.head_dim, rq = c.q_lora_rank, W = c.sliding_window;
    const int64_t G = c.o_groups, ro = c.o_lora_rank, HI = c.index_n_heads, dI = c.index_head_dim;
    const int64_t topk = c.index_topk, E = c.n_routed_experts, k = c.num_experts_per_tok;
    const int64_t I = c.moe_intermediate_size, Is = I * c.n_shared_experts, D = c.hidden_size;
    const int64_t m = c.compress_ratio(il);
    WsCount w;
    w.f(N * rq), w.f(N * H * dh), w.f(N * dh);  // cq, q, kv
    if (m != 0) {                               // main compressor a, z (+ entry positions)
        const int64_t cd = (m == 4 ? 2 : 1) * dh;
        w.f(N * cd), w.f(N * cd);
        if (!decode) w.l(N / m + 1);
    }
    if (m == 4) {  // indexer: its compressor, q, weights, selection, scores (+ SGEMM work)
        w.f(N * 2 * dI), w.f(N * 2 * dI);
        if (!decode) w.l(N / 4 + 1);
        w.f(N * HI * dI), w.f(N * HI), w.f(N * topk);
        const int64_t n_keys = std::max<int64_t>(ctx / 4, 1);
        w.f(N * n_keys);
        if (!decode && N >= 32) w.f(cuda::indexer_gemm_work_floats(N, HI, n_keys));
    }
    w.f(N * H * dh), w.f(N * G * ro);  // o, u
    const int64_t max_keys = W + (m == 4 ? topk : (m != 0 ? ctx / m : 0));
    w.f(decode ? N * max_keys * dh : (std::min<int64_t>(ctx - N, W - 1) + N) * dh);  // key pool
    w.f(N * max_keys);                                                               // key lists
    w.f(cuda::sink_attention_work_floats(N, H, dh, max_keys));
    w.f(N * E), w.f(N * k), w.f(N * k);              // router logits, weights, experts
    w.f(N * Is), w.f(N * Is), w.f(N * Is);           // shared expert
    w.f(N * k * I), w.f(N * k * I), w.f(N * k * I);  // routed pairs: gate, up, hidden
    w.f(N * k * D), w.f(N * k), w.f(3 * cuda::moe_max_chunks(N * k, E)), w.f(1), w.f(E + 1);
    return w.bytes;
}

// The per-call part of the workspace (ids, positions, hyper-connection streams, head, logits).
int64_t call_workspace_bytes(const Dsv4Config& c, int L, int64_t N, int64_t n_out, bool decode) {
    const int64_t D = c.hidden_size, hc = c.hc_mult;
    WsCount w;
    w.f(N), w.l(2 * N + n_out);
    if (decode) w.bytes += (int64_t(L) * N * int64_t(sizeof(cuda::DecodeSeq)) + 255) & ~int64_t(255);
    w.f(N * D), w.f(N * hc * D), w.f(N * hc * D), w.f(N * D), w.f(N * hc), w.f(N * hc * hc), w.f(N * D);
    w.f(cuda::hc_work_floats(N, hc, D));
    if (n_out != N) w.f(n_out * hc * D);
    w.f(n_out * D), w.f(n_out * int64_t(c.vocab_size)), w.f(cuda::hc_work_floats(n_out, hc, D));
    return w.bytes;
}

// One sequence's state in layer il at position ctx; `grows`: a decode step after the clone emits an entry.
int64_t layer_state_bytes(const Dsv4Config& c, int il, int64_t ctx, int64_t steps) {
    const int64_t m = c.compress_ratio(il), W = c.sliding_window;
    int64_t b = W * c.head_dim * 4;  // window ring
    auto comp = [&](int64_t ratio, int64_t cc, int64_t d) {
        b += 2 * ratio * cc * d * 4 + (cc == 2 ? 2 * ratio * d * 4 : 0);  // pending (+ previous) window
        const int64_t n = ctx / ratio, emits = (ctx + steps) / ratio - n;
        const int64_t cap =
            emits > 0 ? std::max<int64_t>({n + 1, 2 * n, 64}) : (n > 0 ? std::max<int64_t>(n, 64) : 0);
        b += cap * d * 4;
    };
    if (m != 0) comp(m, m == 4 ? 2 : 1, c.head_dim);
    if (m == 4) comp(4, 2, c.index_head_dim);
    return b;
}

struct MemPlan {
    int layers = 0;
    double global = 0, weights = 0, state = 0, workspace = 0, reserve = 0;
    double total() const { return global + weights + state + workspace + reserve; }
};

// Device bytes of the first L layers of `cfg` (with its n_routed_experts) for the bench's cases.
MemPlan plan_memory(const Dsv4Config& cfg, const std::vector<InventoryEntry>& inv, int L, int64_t max_batch,
                    int64_t max_ctx_decode, int64_t n_contexts, int64_t max_prefill, int64_t chunk, int steps,
                    double total_bytes) {
    MemPlan p;
    p.layers = L;
    const int64_t E = cfg.n_routed_experts;
    for (const InventoryEntry& e : inv) {
        if (e.layer >= L) continue;
        const bool norm = e.dtype == DType::bf16 && e.name.find("norm") != std::string::npos;
        const int64_t numel =
            std::accumulate(e.shape.begin(), e.shape.end(), int64_t(1), std::multiplies<>());
        const double b = double(norm ? numel * 4 : e.bytes) + 512.0 * (e.scale_bytes ? 2 : 1);
        (e.layer < 0 ? p.global : p.weights) += b;
    }
    p.weights += double(L) * 3.0 * double(E) * double(sizeof(cuda::DevWeight));
    const int64_t decode_ctx = max_ctx_decode + steps;  // positions at the last decode step
    const int64_t n_chunk = std::min(chunk, max_prefill);
    int64_t dec = call_workspace_bytes(cfg, L, max_batch, max_batch, true);
    int64_t pre = call_workspace_bytes(cfg, L, n_chunk, 1, false);
    int64_t st_dec = 0, st_pre = 0, dec_layer = 0, pre_layer = 0;
    for (int il = 0; il < L; ++il) {
        // the forward rewinds its workspace after every layer: the largest layer counts, once
        dec_layer = std::max(dec_layer, layer_workspace_bytes(cfg, il, max_batch, decode_ctx, true));
        pre_layer = std::max(pre_layer, layer_workspace_bytes(cfg, il, n_chunk, max_prefill, false));
        // B clones at the longest context + one base state per context; the prefill's own state
        st_dec += max_batch * layer_state_bytes(cfg, il, max_ctx_decode, steps) +
                  n_contexts * layer_state_bytes(cfg, il, max_ctx_decode, 0);
        st_pre += layer_state_bytes(cfg, il, max_prefill, chunk);
    }
    dec += dec_layer, pre += pre_layer;
    p.state = double(std::max(st_dec, st_pre));
    p.workspace = 1.25 * double(std::max(dec, pre));
    // linear's GEMM scratch (≤ 352 MB), cuBLAS handles, the ceiling measurements' buffers, allocator slack
    p.reserve = 2.0 * kGiB + 0.02 * total_bytes;
    return p;
}

// The per-kernel lines: cuda::linear at the decode shapes (GB/s against the copy ceiling bw) and the FP8
// tensor-core GEMM at the prefill shapes (against the FP8 peak), each on random weights of its own.
void print_kernel_lines(double bw, double fp8_peak, bool linear_lines, bool gemm_lines) {
    struct Shape {
        const char* name;
        DType dt;
        int64_t N, K, groups;  // groups > 1: one grouped call over that many experts of m pairs each
        cuda::LinearBench kind = cuda::LinearBench::plain;
    };
    const int64_t D = 4096;
    const Shape shapes[] = {{"wq_a", DType::f8_e4m3, 1024, D, 1},
                            {"wq_b", DType::f8_e4m3, 32768, 1024, 1},
                            {"wo_b", DType::f8_e4m3, D, 8192, 1},
                            {"shared w1", DType::f8_e4m3, 2048, D, 1},
                            {"expert w1", DType::fp4_e2m1, 2048, D, 1},
                            {"expert w2", DType::fp4_e2m1, D, 2048, 1},
                            {"6 experts w1", DType::fp4_e2m1, 2048, D, 6},
                            {"6 experts w2", DType::fp4_e2m1, D, 2048, 6},
                            {"6 experts w1+w3", DType::fp4_e2m1, 2048, D, 6, cuda::LinearBench::glu},
                            {"wo_a (8 groups)", DType::f8_e4m3, 1024, D, 8, cuda::LinearBench::multi},
                            {"compressor wkv", DType::bf16, 1024, D, 1},
                            {"head", DType::bf16, 129280, D, 1}};
    for (const Shape& sh : shapes) {
        if (!linear_lines) break;
        for (int64_t M : {int64_t(1), int64_t(8), int64_t(64), int64_t(256)}) {
            if (sh.groups > 1 && M > 8) break;
            if (sh.kind != cuda::LinearBench::plain && M > 1) break;
            auto us = cuda::bench_linear_us(sh.dt, M, sh.N, sh.K, 20, sh.groups, sh.kind);
            if (!us.is_ok()) {
                log_error("bench: {}", us.message());
                continue;
            }
            const double bytes = double(dtype_bytes(sh.dt, sh.N * sh.K)) * double(sh.groups) *
                                 (sh.kind == cuda::LinearBench::glu ? 2.0 : 1.0);
            const double g = bytes / (us.value() * 1e-6) / 1e9;
            std::printf(
                "linear %-15s %-8s m=%-2lld n=%-6lld k=%-5lld %9.1f us  %7.1f GB/s  %5.1f%% of copy\n",
                sh.name, dtype_name(sh.dt), (long long)M, (long long)sh.N, (long long)sh.K, us.value(), g,
                100.0 * g / bw);
        }
    }
    // one mHC site boundary at decode (the fused hc_post_pre + RMSNorm; deferred: the Sinkhorn left to
    // hc_sinkhorn, which the forward runs on a side stream)
    struct HcLine {
        const char* name;
        cuda::HcBench kind;
    };
    const HcLine hcs[] = {{"hc_post_pre", cuda::HcBench::post_pre},
                          {"hc_post_pre deferred", cuda::HcBench::post_pre_deferred},
                          {"hc_sinkhorn", cuda::HcBench::sinkhorn}};
    for (const HcLine& h : hcs) {
        if (!linear_lines) break;
        for (int64_t M : {int64_t(1), int64_t(8), int64_t(64)}) {
            auto us = cuda::bench_hc_us(M, 4, D, 20, h.kind);
            if (!us.is_ok()) {
                log_error("bench: {}", us.message());
                continue;
            }
            std::printf("hc %-22s m=%-2lld hc=4 d=%-5lld %9.1f us\n", h.name, (long long)M, (long long)D,
                        us.value());
        }
    }
    // the FP8 tensor-core GEMM of reference numerics at prefill shapes (experts: one grouped call
    // over 256 experts at the tokens per expert of a 4k / 16k chunk)
    struct GemmShape {
        const char* name;
        DType dt;
        int64_t groups, M, N, K;
    };
    const GemmShape gemms[] = {
        {"wq_b", DType::f8_e4m3, 1, 4096, 32768, 1024},   {"wo_b", DType::f8_e4m3, 1, 4096, D, 8192},
        {"shared w1", DType::f8_e4m3, 1, 4096, 2048, D},  {"expert w1", DType::fp4_e2m1, 256, 96, 2048, D},
        {"expert w2", DType::fp4_e2m1, 256, 96, D, 2048}, {"expert w1", DType::fp4_e2m1, 256, 384, 2048, D},
        {"expert w2", DType::fp4_e2m1, 256, 384, D, 2048}};
    for (const GemmShape& g : gemms) {
        if (!gemm_lines) break;
        auto r = cuda::bench_fp8_gemm(g.dt, g.groups, g.M, g.N, g.K, 10);
        if (!r.is_ok()) {
            log_error("bench: {}", r.message());
            continue;
        }
        std::printf(
            "fp8_gemm %-10s %-8s x%-3lld m=%-4lld n=%-6lld k=%-5lld %9.1f us/call %7.1f TFLOP/s "
            "%5.1f%% of FP8 peak  rel err %.1e\n",
            g.name, dtype_name(g.dt), (long long)g.groups, (long long)g.M, (long long)g.N, (long long)g.K,
            r->us_per_call, r->tflops, fp8_peak > 0 ? 100.0 * r->tflops / fp8_peak : 0.0, r->rel_err);
    }
}
#endif

}  // namespace

void add_cmd_bench(CLI::App& app) {
    const auto kPositive = CLI::Range(int64_t(1), int64_t(1) << 40);
    struct Opts {
        std::string config = "tests/fixtures/configs/v4-flash.config.json", numerics = "exact";
        int layers = 0, experts = 0, steps = 10;
        std::vector<int64_t> contexts{1024, 16384}, batches{1, 8, 64, 256}, prefills{4096, 32768};
        int64_t chunk = 4096;
        double free_gib = 0;
        bool ops = true, plan_only = false;
        std::string kernels_only;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "bench", "CUDA decode/prefill benchmark of a random-weight model at the real dimensions (in memory)");
    cmd->add_option("--config", o->config, "config.json with the real dimensions");
    cmd->add_option("--layers", o->layers,
                    "first N layers of the config; 0 = as many as fit the GPU (at least 4: every layer and "
                    "routing kind)")
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--experts", o->experts, "routed experts per layer (0 = the config's)")
        ->check(CLI::Range(0, 1 << 20));
    cmd->add_option("--ctx", o->contexts, "contexts at which decode is timed")->check(kPositive);
    cmd->add_option("--batch", o->batches, "decode batch sizes (sequences per step)")->check(kPositive);
    cmd->add_option("--prefill", o->prefills, "prompt lengths whose prefill rate is reported")
        ->check(kPositive);
    cmd->add_option("--chunk", o->chunk, "prefill chunk (tokens per forward call)")->check(kPositive);
    cmd->add_option("--steps", o->steps, "decode steps timed per case (median)")->check(kPositive);
    cmd->add_option("--numerics", o->numerics, "exact (HF parity) or reference (REF FP8/FP4 roundings)")
        ->check(CLI::IsMember({"exact", "reference"}));
    cmd->add_flag("--plan", o->plan_only, "print the device memory plan (layer count) and exit");
    cmd->add_option("--free-gib", o->free_gib,
                    "plan for this much free device memory instead of asking the GPU")
        ->check(CLI::Range(0.0, 1e6));
    cmd->add_flag("!--no-ops", o->ops, "skip the per-kernel lines");
    cmd->add_option("--kernels-only", o->kernels_only,
                    "only the ceilings and the per-kernel lines, no model: all, linear or gemm")
        ->check(CLI::IsMember({"all", "linear", "gemm"}));
    cmd->callback([o] {
#if !DSV4_HAVE_CUDA
        log_error("bench: this build has no CUDA backend");
        exit_code() = 1;
        return;
#else
        auto fail = [](const std::string& what, const Status& s) {
            log_error("bench: {}: {}", what, s.message());
            exit_code() = 1;
        };
        auto secs = [](std::chrono::steady_clock::time_point since) {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
        };
        auto cr = load_config(o->config);
        if (!cr.is_ok()) {
            log_error("bench: {}", cr.message());
            exit_code() = 2;
            return;
        }
        Dsv4Config cfg = cr.value();
        if (o->experts > 0) cfg.n_routed_experts = o->experts;
        if (cfg.n_routed_experts < cfg.num_experts_per_tok) {
            log_error("bench: --experts {} is fewer than the {} experts each token picks",
                      cfg.n_routed_experts, cfg.num_experts_per_tok);
            exit_code() = 2;
            return;
        }
        cfg.num_nextn_predict_layers = 0;

        // ---- the GPU, and how many layers fit on it
        cuda::DeviceInfo dev;
        if (o->free_gib > 0) {
            dev.name = "(planning only: --free-gib)";
            dev.free_bytes = dev.total_bytes = int64_t(o->free_gib * kGiB);
        } else {
            auto di = cuda::device_info();
            if (!di.is_ok()) return fail("device", di.status());
            dev = di.value();
        }
        std::printf("# device: %s (%d SMs, sm_%d%d), %.1f GiB, %.1f GiB free\n", dev.name.c_str(),
                    dev.sm_count, dev.cc_major, dev.cc_minor, double(dev.total_bytes) / kGiB,
                    double(dev.free_bytes) / kGiB);
        const int64_t max_batch = *std::max_element(o->batches.begin(), o->batches.end());
        const int64_t max_dctx = *std::max_element(o->contexts.begin(), o->contexts.end());
        const int64_t max_pre = *std::max_element(o->prefills.begin(), o->prefills.end());
        const int64_t max_ctx = std::max(max_dctx, max_pre);
        const int n_cfg = cfg.num_hidden_layers, min_layers = std::min(4, n_cfg);
        const auto inv_all = released_inventory(cfg);
        auto plan = [&](int L) {
            return plan_memory(cfg, inv_all, L, max_batch, max_dctx, int64_t(o->contexts.size()), max_ctx,
                               o->chunk, o->steps + 2, double(dev.total_bytes));
        };
        auto plan_str = [&](const MemPlan& p) {
            return fmt::format(
                "{:.1f} GiB = weights {:.1f} ({:.2f}/layer + {:.2f} embed/head) + decode state {:.1f} (b={} "
                "ctx={}) + workspace {:.1f} (prefill chunk {} / decode b={}, largest layer) + "
                "reserve {:.1f}",
                p.total() / kGiB, (p.weights + p.global) / kGiB, p.weights / kGiB / p.layers, p.global / kGiB,
                p.state / kGiB, max_batch, max_dctx, p.workspace / kGiB, std::min(o->chunk, max_ctx),
                max_batch, p.reserve / kGiB);
        };
        int L = std::min(o->layers, n_cfg);
        const double free_b = double(dev.free_bytes);
        if (L == 0) {
            L = min_layers;
            while (L < n_cfg && plan(L + 1).total() <= free_b) ++L;
            const MemPlan p = plan(L);
            if (p.total() > free_b) {
                log_error(
                    "bench: even {} layers (one of each kind) do not fit in {:.1f} GiB free: {}; lower "
                    "--batch, --ctx, --chunk or --experts",
                    L, free_b / kGiB, plan_str(p));
                exit_code() = 1;
                return;
            }
            std::printf("# layers: %d of %d fit (auto): %s", L, n_cfg, plan_str(p).c_str());
            if (L < n_cfg) std::printf("; %d layers would need %.1f GiB", L + 1, plan(L + 1).total() / kGiB);
            std::printf(" (of %.1f GiB free)\n", free_b / kGiB);
        } else {
            const MemPlan p = plan(L);
            std::printf("# layers: %d of %d (--layers): %s (of %.1f GiB free)%s\n", L, n_cfg,
                        plan_str(p).c_str(), free_b / kGiB,
                        p.total() > free_b ? "  WARNING: may not fit" : "");
        }
        std::fflush(stdout);
        if (o->plan_only) return;
        if (!o->kernels_only.empty()) {
            auto copy = cuda::measure_copy_gbps(int64_t(1) << 30, 10);
            auto fp8 = cuda::measure_fp8_gemm_tflops(8192, 8192, 8192, 10);
            if (!copy.is_ok() || !fp8.is_ok())
                return fail("ceilings", copy.is_ok() ? fp8.status() : copy.status());
            std::printf(
                "# ceilings measured in this run: device-to-device copy %.0f GB/s; FP8 e4m3 GEMM 8192^3 "
                "(cuBLASLt) %.0f TFLOP/s\n",
                copy.value(), fp8.value());
            print_kernel_lines(copy.value(), fp8.value(), o->kernels_only != "gemm",
                               o->kernels_only != "linear");
            return;
        }
        if (o->free_gib > 0) {
            log_error("bench: --free-gib is for --plan only");
            exit_code() = 2;
            return;
        }
        cfg.num_hidden_layers = L;
        cfg.compress_ratios.resize(size_t(L));
        cfg.mlp_layer_types.resize(size_t(L));

        // ---- the random model in host memory, uploaded through the weight table
        auto t0 = std::chrono::steady_clock::now();
        auto rc = random_checkpoint(cfg, 1, "v4-bench");
        if (!rc.is_ok()) return fail("random model", rc.status());
        const double t_fill = secs(t0);
        const int64_t model_bytes = rc->tensor_bytes, host_bytes = rc->host_bytes;
        t0 = std::chrono::steady_clock::now();
        std::vector<void*> pinned;
        for (auto [p, n] : rc->buffers) {
            if (Status s = cuda::host_register(p, n); s.is_ok())
                pinned.push_back(p);
            else
                log_warn("bench: host buffer of {} bytes not pinned (uploads run from pageable memory): {}",
                         n, s.message());
        }
        const double t_pin = secs(t0);
        LoadOptions lo;
        lo.backend = "cuda";
        lo.verbose = false;
        lo.numerics = o->numerics == "reference" ? Numerics::reference : Numerics::exact;
        t0 = std::chrono::steady_clock::now();
        auto m = Model::load_from(cfg, std::move(rc->checkpoint), lo);
        const double t_load = secs(t0);
        for (void* p : pinned) cuda::host_unregister(p);
        if (!m.is_ok()) return fail("load", m.status());
        const Model& model = *m.value();
        int64_t min_free = dev.free_bytes;
        auto sample_free = [&] {
            if (auto d = cuda::device_info(); d.is_ok()) min_free = std::min(min_free, d->free_bytes);
        };
        sample_free();
        const int64_t used_by_load = dev.free_bytes - min_free;
        auto copy = cuda::measure_copy_gbps(int64_t(1) << 30, 10);
        const double bw = copy.is_ok() ? copy.value() : 0.0;
        auto fp8 = cuda::measure_fp8_gemm_tflops(8192, 8192, 8192, 10);
        const double fp8_peak = fp8.is_ok() ? fp8.value() : 0.0;
        if (!fp8.is_ok()) log_warn("bench: FP8 GEMM peak not measured: {}", fp8.message());
        auto sg = cuda::measure_sgemm_tflops(8192, 8192, 8192, 5);
        const double sgemm_peak = sg.is_ok() ? sg.value() : 0.0;
        const auto counts = count_inventory(cfg, released_inventory(cfg));
        std::printf(
            "# dsv4 bench: %d layers of %s (released FP8/FP4 layout, random weights in memory, %s numerics), "
            "%d routed experts/layer\n"
            "# model: %.2f GB of tensors from %.2f GB of host buffers (filled in %.1f s, pinned in %.1f s); "
            "uploaded in %.1f s (%.1f GB/s), %.2f GiB of device memory\n"
            "# ceilings measured in this run: device-to-device copy %.0f GB/s (read + write, 1 GiB, median "
            "of "
            "10); FP8 e4m3 GEMM 8192^3 (cuBLASLt) %.0f TFLOP/s; fp32 SGEMM 8192^3 %.1f TFLOP/s\n"
            "# batch-1 step: %.1f MB of weights, %.2f GFLOP (2/active parameter + attention)\n",
            L, o->config.c_str(), numerics_name(model.numerics()), cfg.n_routed_experts,
            double(model_bytes) / 1e9, double(host_bytes) / 1e9, t_fill, t_pin, t_load,
            double(model_bytes) / t_load / 1e9, double(used_by_load) / kGiB, bw, fp8_peak, sgemm_peak,
            double(counts.token_bytes_total) / 1e6, 2.0 * double(counts.params_active) / 1e9);
        std::fflush(stdout);
        const int64_t V = cfg.vocab_size;
        std::vector<int32_t> ids(static_cast<size_t>(max_ctx));
        for (int64_t i = 0; i < max_ctx; ++i) ids[size_t(i)] = int32_t(mix(uint64_t(i) + 77) % uint64_t(V));

        // One chunked prefill of the longest prompt; the decode contexts and prefill lengths are chunk
        // boundaries (a chunk never crosses one), so their states and times are read off on the way.
        std::vector<int64_t> marks = o->contexts;
        marks.insert(marks.end(), o->prefills.begin(), o->prefills.end());
        std::sort(marks.begin(), marks.end());
        marks.erase(std::unique(marks.begin(), marks.end()), marks.end());
        std::map<int64_t, std::unique_ptr<SeqState> > at_ctx;
        std::map<int64_t, double> prefill_s;
        auto st = model.new_state();
        std::vector<float> lg;
        auto tp = std::chrono::steady_clock::now();
        for (int64_t done = 0; done < max_ctx;) {
            int64_t end = std::min(done + o->chunk, max_ctx);
            for (int64_t mk : marks)
                if (mk > done && mk < end) end = mk;
            if (Status s = model.forward(*st, std::span(ids).subspan(size_t(done), size_t(end - done)), lg);
                !s.is_ok())
                return fail(fmt::format("prefill at {}", done), s);
            done = end;
            if (std::count(o->prefills.begin(), o->prefills.end(), done)) prefill_s[done] = secs(tp);
            if (std::count(o->contexts.begin(), o->contexts.end(), done)) {  // not counted as prefill time
                const auto tc = std::chrono::steady_clock::now();
                at_ctx[done] = Model::clone_state(*st);
                tp += std::chrono::steady_clock::now() - tc;
            }
        }
        sample_free();
        st.reset();  // the decode cases start from the clones
        const double head_flops = 2.0 * double(counts.params_active - counts.params_active_no_head);
        for (auto& [P, t] : prefill_s) {
            // FLOPs ≈ P tokens at the mean context P/2 (the window and top-k parts are capped, the indexer
            // and HCA parts grow linearly), the LM head once per chunk (only the last position's logits)
            const StepFloor fl = step_floor(cfg, counts, 1, P / 2);
            const double flops =
                double(P) * (fl.flops - head_flops) + double((P + o->chunk - 1) / o->chunk) * head_flops;
            std::printf(
                "prefill tokens=%-6lld layers=%d chunk=%lld  %8.2f s  %9.0f tok/s  %8.1f TFLOP  %6.1f "
                "TFLOP/s  %5.1f%% of FP8 peak  %5.1f%% of SGEMM peak\n",
                (long long)P, L, (long long)o->chunk, t, double(P) / t, flops / 1e12, flops / t / 1e12,
                fp8_peak > 0 ? 100.0 * flops / t / 1e12 / fp8_peak : 0.0,
                sgemm_peak > 0 ? 100.0 * flops / t / 1e12 / sgemm_peak : 0.0);
        }
        std::fflush(stdout);

        for (auto& [ctx, base] : at_ctx) {
            for (int64_t B : o->batches) {
                std::vector<std::unique_ptr<SeqState> > seqs;
                for (int64_t b = 0; b < B; ++b) seqs.push_back(Model::clone_state(*base));
                std::vector<int32_t> next(static_cast<size_t>(B));
                for (int64_t b = 0; b < B; ++b)
                    next[size_t(b)] = int32_t(mix(uint64_t(b) * 31 + 5) % uint64_t(V));
                std::vector<BatchItem> items(static_cast<size_t>(B));
                std::vector<double> ms;
                for (int i = 0; i < o->steps + 2; ++i) {
                    for (int64_t b = 0; b < B; ++b)
                        items[size_t(b)] = {seqs[size_t(b)].get(), std::span(&next[size_t(b)], 1), false};
                    auto ts = std::chrono::steady_clock::now();
                    if (Status s = model.forward_batch(items, lg); !s.is_ok())
                        return fail(fmt::format("decode b={} ctx={}", B, ctx), s);
                    const double t =
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ts)
                            .count();
                    for (int64_t b = 0; b < B; ++b)
                        next[size_t(b)] =
                            int32_t(std::max_element(lg.begin() + b * V, lg.begin() + (b + 1) * V) -
                                    (lg.begin() + b * V));
                    if (i >= 2) ms.push_back(t);
                }
                sample_free();
                const double t_ms = median_ms(ms);
                const StepFloor fl = step_floor(cfg, counts, B, ctx);
                const double bytes = fl.weight_bytes + fl.state_bytes, gbps = bytes / (t_ms * 1e-3) / 1e9;
                const double tflops = fl.flops / (t_ms * 1e-3) / 1e12;
                std::printf(
                    "decode b=%-3lld ctx=%-6lld layers=%d  %9.3f ms/step  %8.1f tok/s  %7.1f MB (w %.0f + kv "
                    "%.0f)  %7.1f GB/s  %5.1f%% of copy  %7.2f GFLOP  %5.2f%% of FP8 peak\n",
                    (long long)B, (long long)ctx, L, t_ms, 1e3 * double(B) / t_ms, bytes / 1e6,
                    fl.weight_bytes / 1e6, fl.state_bytes / 1e6, gbps, bw > 0 ? 100.0 * gbps / bw : 0.0,
                    fl.flops / 1e9, fp8_peak > 0 ? 100.0 * tflops / fp8_peak : 0.0);
                std::fflush(stdout);
            }
        }
        std::printf("# device memory: peak use %.1f GiB (lowest free %.1f GiB of %.1f), planned %.1f GiB\n",
                    double(dev.free_bytes - min_free) / kGiB, double(min_free) / kGiB,
                    double(dev.total_bytes) / kGiB, plan(L).total() / kGiB);
        std::fflush(stdout);
        if (o->ops) print_kernel_lines(bw, fp8_peak, true, true);
#endif
    });
}

}  // namespace dsv4::cli
