// `dsv4 bench` (issue 6 item 4, phase A): builds a random-weight checkpoint at the REAL V4-Flash
// dimensions (released FP8/FP4 layout) with the first --layers layers (default 4: SWA and CSA/HCA
// attention, hash and score routing), loads it on the CUDA backend and prints one line per case:
// decode step time at batch 1 after a prefill of each context, the weight bytes a step must read and
// the achieved rate as a % of the device-to-device copy bandwidth measured in the same run; then the
// linear kernel alone at the Flash shapes. Numbers and their reading: bench/NOTES.md.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>

#include "cli/commands.h"
#include "core/log.h"
#include "format/config.h"
#include "format/safetensors.h"
#include "model/inventory.h"
#include "model/model.h"

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

// Random finite contents of one released tensor (FP8 codes without NaN, e8m0 scales near 2^0, small
// bf16/f32 values, norms near 1, tid2eid rows of distinct experts).
void fill_tensor(const InventoryEntry& e, std::vector<uint8_t>& data, std::vector<uint8_t>& scale, int64_t E,
                 uint64_t seed) {
    const int64_t numel = std::accumulate(e.shape.begin(), e.shape.end(), int64_t(1), std::multiplies<>());
    const bool norm = e.name.find("norm") != std::string::npos;
    data.resize(size_t(e.bytes - e.scale_bytes));
    scale.resize(size_t(e.scale_bytes));
    const int64_t nd = int64_t(data.size());
    switch (e.dtype) {
        case DType::f8_e4m3:
        case DType::fp4_e2m1:
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < nd; ++i) {
                uint8_t b = uint8_t(mix(seed + uint64_t(i)) >> 32);
                if (e.dtype == DType::f8_e4m3 && (b & 0x7f) == 0x7f) b ^= 1;
                data[size_t(i)] = b;
            }
            for (size_t i = 0; i < scale.size(); ++i) scale[i] = uint8_t(118 + mix(seed ^ (i * 7919)) % 6);
            break;
        case DType::bf16: {
            auto* h = reinterpret_cast<uint16_t*>(data.data());
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < numel; ++i) {
                const float u = float(mix(seed + uint64_t(i)) >> 40) / float(1 << 24) - 0.5f;
                h[i] = f32_to_bf16(norm ? 1.0f + 0.1f * u : 0.04f * u);
            }
            break;
        }
        case DType::f32: {
            auto* f = reinterpret_cast<float*>(data.data());
            for (int64_t i = 0; i < numel; ++i)
                f[i] = 0.02f * (float(mix(seed + uint64_t(i)) >> 40) / float(1 << 24) - 0.5f);
            break;
        }
        case DType::i64: {  // tid2eid [V, k]: k distinct experts per row
            auto* t = reinterpret_cast<int64_t*>(data.data());
            const int64_t k = e.shape[1];
            for (int64_t v = 0; v < e.shape[0]; ++v) {
                const int64_t base = int64_t(mix(seed + uint64_t(v)) % uint64_t(E));
                for (int64_t j = 0; j < k; ++j) t[v * k + j] = (base + j * 7) % E;
            }
            break;
        }
        default:
            DSV4_ASSERT(false, "bench: unexpected dtype {}", dtype_name(e.dtype));
    }
}

Status write_bench_checkpoint(const Dsv4Config& cfg, const std::string& dir) {
    std::filesystem::create_directories(dir);
    const auto inv = released_inventory(cfg);
    std::vector<std::vector<uint8_t>> bufs;
    bufs.reserve(inv.size() * 2);
    std::vector<TensorToWrite> tw;
    uint64_t seed = 1;
    for (const auto& e : inv) {
        std::vector<uint8_t> d, s;
        fill_tensor(e, d, s, cfg.n_routed_experts, seed++ * 0x100000000ull);
        std::vector<int64_t> shape = e.shape;
        if (e.dtype == DType::fp4_e2m1) shape.back() /= 2;
        bufs.push_back(std::move(d));
        tw.push_back({e.name, e.dtype, shape, bufs.back().data(), int64_t(bufs.back().size())});
        if (e.scale_bytes) {
            bufs.push_back(std::move(s));
            std::vector<int64_t> ss =
                e.dtype == DType::f8_e4m3
                    ? std::vector<int64_t>{(e.shape[0] + 127) / 128, (e.shape[1] + 127) / 128}
                    : std::vector<int64_t>{e.shape[0], e.shape[1] / 32};
            std::string sn = e.name.substr(0, e.name.size() - std::strlen(".weight")) + ".scale";
            tw.push_back({sn, DType::f8_e8m0, ss, bufs.back().data(), int64_t(bufs.back().size())});
        }
    }
    DSV4_TRY(write_safetensors(dir + "/model.safetensors", tw));
    std::FILE* f = std::fopen((dir + "/config.json").c_str(), "w");
    if (!f) return error("{}: cannot write config.json", dir);
    const std::string js = config_to_json(cfg);
    std::fwrite(js.data(), 1, js.size(), f);
    std::fclose(f);
    return Status::ok();
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

}  // namespace

void add_cmd_bench(CLI::App& app) {
    const auto kPositive = CLI::Range(int64_t(1), int64_t(1) << 40);
    struct Opts {
        std::string config = "tests/fixtures/configs/v4-flash.config.json", dir = "/tmp/dsv4_bench_ckpt";
        int layers = 4, experts = 64, steps = 10;
        std::vector<int64_t> contexts{1024, 16384}, batches{1, 8, 64, 256}, prefills{4096, 32768};
        int64_t chunk = 4096;
        bool ops = true;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "bench", "CUDA decode/prefill benchmark on a random-weight slice of the real config");
    cmd->add_option("--config", o->config, "config.json with the real dimensions");
    cmd->add_option("--layers", o->layers,
                    "first N layers of the config (4 keeps every layer and routing kind)")
        ->check(kPositive);
    cmd->add_option("--experts", o->experts, "routed experts per layer (batch-1 bytes do not depend on it)")
        ->check(kPositive);
    cmd->add_option("--ctx", o->contexts, "contexts at which decode is timed")->check(kPositive);
    cmd->add_option("--batch", o->batches, "decode batch sizes (sequences per step)")->check(kPositive);
    cmd->add_option("--prefill", o->prefills, "prompt lengths whose prefill rate is reported")
        ->check(kPositive);
    cmd->add_option("--chunk", o->chunk, "prefill chunk (tokens per forward call)")->check(kPositive);
    cmd->add_option("--steps", o->steps, "decode steps timed per case (median)")->check(kPositive);
    cmd->add_option("--dir", o->dir, "where the random checkpoint is written");
    cmd->add_flag("!--no-ops", o->ops, "skip the per-kernel lines");
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
        auto cr = load_config(o->config);
        if (!cr.is_ok()) {
            log_error("bench: {}", cr.message());
            exit_code() = 2;
            return;
        }
        Dsv4Config cfg = cr.value();
        const int L = std::min(o->layers, cfg.num_hidden_layers);
        cfg.num_hidden_layers = L;
        cfg.compress_ratios.resize(size_t(L));
        cfg.mlp_layer_types.resize(size_t(L));
        cfg.n_routed_experts = o->experts;
        cfg.num_nextn_predict_layers = 0;
        auto t0 = std::chrono::steady_clock::now();
        auto secs = [](std::chrono::steady_clock::time_point since) {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
        };
        if (Status s = write_bench_checkpoint(cfg, o->dir); !s.is_ok()) return fail("checkpoint", s);
        const double t_write = secs(t0);
        LoadOptions lo;
        lo.backend = "cuda";
        lo.verbose = false;
        lo.numerics = Numerics::exact;
        auto m = Model::load(o->dir, lo);
        if (!m.is_ok()) return fail("load", m.status());
        const Model& model = *m.value();
        const double t_load = secs(t0) - t_write;
        auto copy = cuda::measure_copy_gbps(int64_t(1) << 30, 10);
        const double bw = copy.is_ok() ? copy.value() : 0.0;
        auto fp8 = cuda::measure_fp8_gemm_tflops(8192, 8192, 8192, 10);
        const double fp8_peak = fp8.is_ok() ? fp8.value() : 0.0;
        if (!fp8.is_ok()) log_warn("bench: FP8 GEMM peak not measured: {}", fp8.message());
        auto sg = cuda::measure_sgemm_tflops(8192, 8192, 8192, 5);
        const double sgemm_peak = sg.is_ok() ? sg.value() : 0.0;
        const auto counts = count_inventory(cfg, released_inventory(cfg));
        std::printf(
            "# dsv4 bench: %d layers of %s (released FP8/FP4 layout, random weights, exact numerics), %d "
            "routed "
            "experts/layer; checkpoint written in %.1f s, uploaded in %.1f s\n"
            "# ceilings measured in this run: device-to-device copy %.0f GB/s (read + write, 1 GiB, median "
            "of "
            "10); FP8 e4m3 GEMM 8192^3 (cuBLASLt) %.0f TFLOP/s; fp32 SGEMM 8192^3 %.1f TFLOP/s\n"
            "# batch-1 step: %.1f MB of weights, %.2f GFLOP (2/active parameter + attention)\n",
            L, o->config.c_str(), o->experts, t_write, t_load, bw, fp8_peak, sgemm_peak,
            double(counts.token_bytes_total) / 1e6, 2.0 * double(counts.params_active) / 1e9);
        const int64_t V = cfg.vocab_size;
        const int64_t max_ctx = std::max(*std::max_element(o->contexts.begin(), o->contexts.end()),
                                         *std::max_element(o->prefills.begin(), o->prefills.end()));
        std::vector<int32_t> ids(static_cast<size_t>(max_ctx));
        for (int64_t i = 0; i < max_ctx; ++i) ids[size_t(i)] = int32_t(mix(uint64_t(i) + 77) % uint64_t(V));

        // One chunked prefill of the longest prompt; the decode contexts and prefill lengths are chunk
        // boundaries (a chunk never crosses one), so their states and times are read off on the way.
        std::vector<int64_t> marks = o->contexts;
        marks.insert(marks.end(), o->prefills.begin(), o->prefills.end());
        std::sort(marks.begin(), marks.end());
        marks.erase(std::unique(marks.begin(), marks.end()), marks.end());
        std::map<int64_t, std::unique_ptr<SeqState>> at_ctx;
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
        const double head_flops = 2.0 * double(counts.params_active - counts.params_active_no_head);
        for (auto& [P, t] : prefill_s) {
            // FLOPs ≈ P tokens at the mean context P/2 (the window and top-k parts are capped, the indexer
            // and HCA parts grow linearly), the LM head once per chunk (only the last position's logits)
            const StepFloor fl = step_floor(cfg, counts, 1, P / 2);
            const double flops =
                double(P) * (fl.flops - head_flops) + double((P + o->chunk - 1) / o->chunk) * head_flops;
            std::printf(
                "prefill tokens=%-6lld layers=%d chunk=%lld  %8.2f s  %9.0f tok/s  %8.1f TFLOP  %6.1f "
                "TFLOP/s  "
                "%5.1f%% of FP8 peak  %5.1f%% of SGEMM peak\n",
                (long long)P, L, (long long)o->chunk, t, double(P) / t, flops / 1e12, flops / t / 1e12,
                fp8_peak > 0 ? 100.0 * flops / t / 1e12 / fp8_peak : 0.0,
                sgemm_peak > 0 ? 100.0 * flops / t / 1e12 / sgemm_peak : 0.0);
        }
        std::fflush(stdout);

        for (auto& [ctx, base] : at_ctx) {
            for (int64_t B : o->batches) {
                std::vector<std::unique_ptr<SeqState>> seqs;
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
                const double t_ms = median_ms(ms);
                const StepFloor fl = step_floor(cfg, counts, B, ctx);
                const double bytes = fl.weight_bytes + fl.state_bytes, gbps = bytes / (t_ms * 1e-3) / 1e9;
                const double tflops = fl.flops / (t_ms * 1e-3) / 1e12;
                std::printf(
                    "decode b=%-3lld ctx=%-6lld layers=%d  %9.3f ms/step  %8.1f tok/s  %7.1f MB (w %.0f + kv "
                    "%.0f)  "
                    "%7.1f GB/s  %5.1f%% of copy  %7.2f GFLOP  %5.2f%% of FP8 peak\n",
                    (long long)B, (long long)ctx, L, t_ms, 1e3 * double(B) / t_ms, bytes / 1e6,
                    fl.weight_bytes / 1e6, fl.state_bytes / 1e6, gbps, bw > 0 ? 100.0 * gbps / bw : 0.0,
                    fl.flops / 1e9, fp8_peak > 0 ? 100.0 * tflops / fp8_peak : 0.0);
                std::fflush(stdout);
            }
        }
        if (!o->ops) return;
        struct Shape {
            const char* name;
            DType dt;
            int64_t N, K;
        };
        const int64_t D = 4096;
        const Shape shapes[] = {
            {"wq_a", DType::f8_e4m3, 1024, D},        {"wq_b", DType::f8_e4m3, 32768, 1024},
            {"wo_b", DType::f8_e4m3, D, 8192},        {"shared w1", DType::f8_e4m3, 2048, D},
            {"expert w1", DType::fp4_e2m1, 2048, D},  {"expert w2", DType::fp4_e2m1, D, 2048},
            {"compressor wkv", DType::bf16, 1024, D}, {"head", DType::bf16, 129280, D}};
        for (const Shape& sh : shapes) {
            for (int64_t M : {int64_t(1), int64_t(8), int64_t(64), int64_t(256)}) {
                auto us = cuda::bench_linear_us(sh.dt, M, sh.N, sh.K, 30);
                if (!us.is_ok()) {
                    log_error("bench: {}", us.message());
                    continue;
                }
                const double bytes = double(dtype_bytes(sh.dt, sh.N * sh.K));
                const double g = bytes / (us.value() * 1e-6) / 1e9;
                std::printf(
                    "linear %-15s %-8s m=%-2lld n=%-6lld k=%-5lld %9.1f us  %7.1f GB/s  %5.1f%% of copy\n",
                    sh.name, dtype_name(sh.dt), (long long)M, (long long)sh.N, (long long)sh.K, us.value(), g,
                    100.0 * g / bw);
            }
        }
#endif
    });
}

}  // namespace dsv4::cli
