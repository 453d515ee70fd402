// `dsv4 bench` (issue 6 item 4, phase A): builds a random-weight checkpoint at the REAL V4-Flash
// dimensions (released FP8/FP4 layout) with the first --layers layers (default 4: SWA and CSA/HCA
// attention, hash and score routing), loads it on the CUDA backend and prints one line per case:
// decode step time at batch 1 after a prefill of each context, the weight bytes a step must read and
// the achieved rate as a % of the device-to-device copy bandwidth measured in the same run; then the
// linear kernel alone at the Flash shapes. Numbers and their reading: bench/NOTES.md.
#include <algorithm>
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

}  // namespace

void add_cmd_bench(CLI::App& app) {
    struct Opts {
        std::string config = "tests/fixtures/configs/v4-flash.config.json", dir = "/tmp/dsv4_bench_ckpt";
        int layers = 4, experts = 64, steps = 20;
        std::vector<int64_t> contexts{1024, 4096};
        bool ops = true;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd =
        app.add_subcommand("bench", "CUDA decode benchmark on a random-weight slice of the real config");
    cmd->add_option("--config", o->config, "config.json with the real dimensions");
    cmd->add_option("--layers", o->layers,
                    "first N layers of the config (4 keeps every layer and routing kind)");
    cmd->add_option("--experts", o->experts, "routed experts per layer (batch-1 bytes do not depend on it)");
    cmd->add_option("--ctx", o->contexts, "contexts to prefill before timing decode");
    cmd->add_option("--steps", o->steps, "decode steps timed per context (median)");
    cmd->add_option("--dir", o->dir, "where the random checkpoint is written");
    cmd->add_flag("!--no-ops", o->ops, "skip the per-kernel lines");
    cmd->callback([o] {
#if !DSV4_HAVE_CUDA
        log_error("bench: this build has no CUDA backend");
        exit_code() = 1;
        return;
#else
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
        auto secs = [&] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        };
        if (Status s = write_bench_checkpoint(cfg, o->dir); !s.is_ok()) {
            log_error("bench: {}", s.message());
            exit_code() = 1;
            return;
        }
        const double t_write = secs();
        LoadOptions lo;
        lo.backend = "cuda";
        lo.verbose = false;
        lo.numerics = Numerics::exact;
        auto m = Model::load(o->dir, lo);
        if (!m.is_ok()) {
            log_error("bench: {}", m.message());
            exit_code() = 1;
            return;
        }
        const double t_load = secs() - t_write;
        auto copy = cuda::measure_copy_gbps(int64_t(1) << 30, 10);
        const double bw = copy.is_ok() ? copy.value() : 0.0;
        const auto counts = count_inventory(cfg, released_inventory(cfg));
        const double step_bytes = double(counts.token_bytes_total);
        std::printf(
            "# dsv4 bench: %d layers of %s (%s), %d routed experts/layer, checkpoint written in %.1f s, "
            "uploaded in %.1f s\n# device-to-device copy: %.0f GB/s (read + write, 1 GiB, median of 10)\n"
            "# weight bytes a batch-1 decode step must read (inventory, k experts, head, 1 embed row): "
            "%.1f MB\n",
            L, o->config.c_str(), "released FP8/FP4 layout", o->experts, t_write, t_load, bw,
            step_bytes / 1e6);
        const int64_t V = cfg.vocab_size;
        for (int64_t ctx : o->contexts) {
            std::vector<int32_t> ids(static_cast<size_t>(ctx));
            for (int64_t i = 0; i < ctx; ++i) ids[size_t(i)] = int32_t(mix(uint64_t(i) + 77) % uint64_t(V));
            auto st = m.value()->new_state();
            std::vector<float> lg;
            auto tp = std::chrono::steady_clock::now();
            Status s = m.value()->forward(*st, ids, lg);
            const double prefill_s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count();
            if (!s.is_ok()) {
                log_error("bench: prefill {}: {}", ctx, s.message());
                exit_code() = 1;
                return;
            }
            std::vector<double> ms;
            int32_t next = int32_t(std::max_element(lg.begin(), lg.end()) - lg.begin());
            for (int i = 0; i < o->steps + 2; ++i) {
                auto ts = std::chrono::steady_clock::now();
                s = m.value()->forward(*st, std::span(&next, 1), lg);
                const double t =
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ts).count();
                if (!s.is_ok()) break;
                next = int32_t(std::max_element(lg.begin(), lg.end()) - lg.begin());
                if (i >= 2) ms.push_back(t);
            }
            if (!s.is_ok()) {
                log_error("bench: decode: {}", s.message());
                exit_code() = 1;
                return;
            }
            const double t_ms = median_ms(ms), gbps = step_bytes / (t_ms * 1e-3) / 1e9;
            std::printf(
                "decode b=1 ctx=%-6lld layers=%d  %8.3f ms/step  %7.1f tok/s  %6.1f MB  %7.1f GB/s  %5.1f%% "
                "of "
                "copy  (prefill %lld tok: %.2f s, %.0f tok/s)\n",
                (long long)ctx, L, t_ms, 1e3 / t_ms, step_bytes / 1e6, gbps, 100.0 * gbps / bw,
                (long long)ctx, prefill_s, double(ctx) / prefill_s);
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
            for (int64_t M : {int64_t(1), int64_t(8)}) {
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
