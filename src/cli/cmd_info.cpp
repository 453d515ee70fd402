// `dsv4 info`: what a checkpoint holds and costs — tensors and bytes per stored dtype, logical parameter
// counts (main model, with MTP, active per token) and the weight bytes read per decoded token at batch 1
// (spec §12). --config-only works from config.json alone (the real V4-Flash/Pro configs), assuming the
// released layout; --rss loads the model, runs one forward and reports peak RSS against the file size.
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "format/safetensors.h"
#include "model/inventory.h"
#include "model/naming.h"

namespace dsv4::cli {

namespace {

std::string thousands(int64_t v) {
    std::string s = std::to_string(v), out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}
std::string human(double bytes) {
    if (bytes >= 1e9) return fmt::format("{:.2f} GB", bytes / 1e9);
    if (bytes >= 1e6) return fmt::format("{:.2f} MB", bytes / 1e6);
    return fmt::format("{:.2f} kB", bytes / 1e3);
}
std::string params(double n) {
    if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
    if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
    return fmt::format("{:.0f}", n);
}

const TensorInfo* find_either(const Checkpoint& ck, const std::string& released) {
    const TensorInfo* t = ck.find(released);
    return t ? t : ck.find(hf_name_of(released));
}
const TensorInfo* scale_of(const Checkpoint& ck, const TensorInfo& t) {
    const std::string& n = t.name;
    const std::string base =
        n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 ? n.substr(0, n.size() - 7) : n;
    const TensorInfo* s = ck.find(base + ".scale");
    return s ? s : ck.find(n + "_scale_inv");
}

// Replaces the inventory's assumed bytes by the checkpoint's (HF fused experts are split evenly);
// entries the checkpoint lacks (e.g. no MTP block) are dropped. Returns how many were dropped.
int64_t apply_checkpoint(const Checkpoint& ck, const Dsv4Config& cfg, std::vector<InventoryEntry>& inv) {
    std::vector<InventoryEntry> kept;
    int64_t dropped = 0;
    for (InventoryEntry e : inv) {
        const TensorInfo* t = find_either(ck, e.name);
        if (t) {
            const TensorInfo* s = scale_of(ck, *t);
            e.scale_bytes = s ? s->nbytes : 0;
            e.bytes = t->nbytes + e.scale_bytes;
            e.dtype = s && (t->dtype == DType::i8 || t->dtype == DType::u8) ? DType::fp4_e2m1 : t->dtype;
        } else if (e.expert >= 0 && e.layer < cfg.num_hidden_layers) {
            const std::string l = fmt::format("model.layers.{}.mlp.experts.", e.layer);
            const bool down = e.name.find(".w2.") != std::string::npos;
            const TensorInfo* f = ck.find(l + (down ? "down_proj" : "gate_up_proj"));
            if (!f) {
                ++dropped;
                continue;
            }
            e.bytes = f->nbytes / cfg.n_routed_experts / (down ? 1 : 2);
            e.scale_bytes = 0;
            e.dtype = f->dtype;
        } else {
            ++dropped;
            continue;
        }
        kept.push_back(std::move(e));
    }
    inv = std::move(kept);
    return dropped;
}

void print_counts(const Dsv4Config& cfg, const ModelCounts& c) {
    int n_swa = 0, n_csa = 0, n_hca = 0, n_hash = 0;
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        AttnKind k = cfg.attn_kind(il);
        (k == AttnKind::swa ? n_swa : k == AttnKind::csa ? n_csa : n_hca)++;
        n_hash += cfg.is_hash_layer(il);
    }
    std::printf(
        "layers: %d (SWA %d, CSA %d, HCA %d; %d hash-routed), hidden %d, experts %d (%d per token) + %d "
        "shared, "
        "MTP blocks %d\n",
        cfg.num_hidden_layers, n_swa, n_csa, n_hca, n_hash, cfg.hidden_size, cfg.n_routed_experts,
        cfg.num_experts_per_tok, cfg.n_shared_experts, cfg.num_nextn_predict_layers);
    std::printf("parameters: main model %s (%s), incl. MTP %s, active per token %s (%s without head)\n",
                params(double(c.params_main)).c_str(), thousands(c.params_main).c_str(),
                params(double(c.params_total)).c_str(), params(double(c.params_active)).c_str(),
                params(double(c.params_active_no_head)).c_str());
    std::printf("weight bytes read per decoded token (batch 1, MTP unused):\n");
    for (size_t g = 0; g < size_t(WeightGroup::count); ++g)
        if (c.token_bytes[g])
            std::printf("  %-16s %12s\n", weight_group_name(WeightGroup(g)),
                        human(double(c.token_bytes[g])).c_str());
    std::printf("  %-16s %12s (%s B)\n", "total", human(double(c.token_bytes_total)).c_str(),
                thousands(c.token_bytes_total).c_str());
}

int64_t current_rss_bytes() {
    std::ifstream f("/proc/self/statm");
    int64_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * 4096;
}

void run_rss(const std::string& dir, const std::optional<Numerics>& numerics, int n_tokens,
             int64_t file_bytes) {
    const int64_t rss_base = current_rss_bytes();  // binary, libraries, heap before the model
    LoadOptions lo;
    lo.verbose = false;
    lo.numerics = numerics;
    auto m = Model::load(dir, lo);
    if (!m.is_ok()) return fail("info", m.message());
    const int64_t rss_load = current_rss_bytes();
    std::vector<int32_t> ids(static_cast<size_t>(n_tokens));
    uint64_t s = 42;
    for (auto& id : ids) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        id = int32_t((s >> 33) % uint64_t(m.value()->config().vocab_size));
    }
    auto st = m.value()->new_state();
    std::vector<float> logits;
    Status fs = m.value()->forward(*st, ids, logits, false);
    if (!fs.is_ok()) return fail("info", fs.message());
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double peak = double(ru.ru_maxrss) * 1024.0;  // Linux: kilobytes
    std::printf(
        "rss: %s numerics, forward of %d tokens: RSS before load %s, after load %s, peak %s; "
        "checkpoint files %s; (peak - before) / files = %.3f\n",
        numerics_name(m.value()->numerics()), n_tokens, human(double(rss_base)).c_str(),
        human(double(rss_load)).c_str(), human(peak).c_str(), human(double(file_bytes)).c_str(),
        (peak - double(rss_base)) / double(file_bytes));
}

}  // namespace

void add_cmd_info(CLI::App& app) {
    struct Opts {
        std::string model, numerics;
        bool config_only = false, rss = false;
        int tokens = 64;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "info", "tensors, bytes per dtype, parameters and bytes per token of a checkpoint");
    cmd->add_option("-m,--model", o->model, "checkpoint directory, or a config.json with --config-only")
        ->required();
    cmd->add_flag("--config-only", o->config_only,
                  "read config.json only and assume the released FP8/FP4 layout");
    cmd->add_flag("--rss", o->rss, "load the model, run one forward pass, report peak RSS vs file size");
    cmd->add_option("--tokens", o->tokens, "prompt length of the --rss forward pass")
        ->check(CLI::Range(1, 1 << 16));
    cmd->add_option("--numerics", o->numerics, "exact or reference (default: per checkpoint)")
        ->check(CLI::IsMember({"exact", "reference"}));
    cmd->callback([o] {
        auto cfg = load_config(o->model);
        if (!cfg.is_ok()) return fail("info", cfg.message());
        std::vector<InventoryEntry> inv = released_inventory(cfg.value(), cfg->expert_dtype == "fp8");
        if (o->config_only) {
            std::printf(
                "model: %s (config only; released layout: FP8 e4m3 128x128 + %s routed experts, UE8M0 "
                "scales)\n",
                o->model.c_str(), cfg->expert_dtype == "fp8" ? "FP8" : "FP4 e2m1 per-32");
            std::map<std::string, int64_t> by_dtype;
            int64_t scales = 0;
            for (const auto& e : inv) {
                by_dtype[dtype_name(e.dtype)] += e.bytes - e.scale_bytes;
                scales += e.scale_bytes;
            }
            by_dtype["f8_e8m0 (scales)"] = scales;
            ModelCounts c = count_inventory(cfg.value(), inv);
            std::printf("tensors: %s incl. scales and MTP; checkpoint bytes %s (%.2f GiB)\n",
                        thousands(c.n_tensors).c_str(), thousands(c.bytes_total).c_str(),
                        double(c.bytes_total) / double(1ll << 30));
            for (const auto& [dt, b] : by_dtype)
                std::printf("  %-18s %22s B\n", dt.c_str(), thousands(b).c_str());
            print_counts(cfg.value(), c);
            return;
        }
        auto ck = Checkpoint::open(o->model);
        if (!ck.is_ok()) return fail("info", ck.message());
        std::map<std::string, std::pair<int64_t, int64_t>> by_dtype;  // stored dtype -> (tensors, bytes)
        for (const std::string& name : ck->names()) {
            const TensorInfo* t = ck->find(name);
            std::string dt = dtype_name(t->dtype);
            if ((t->dtype == DType::i8 || t->dtype == DType::u8) && scale_of(ck.value(), *t))
                dt = "fp4_e2m1 (I8 packed)";
            by_dtype[dt].first++;
            by_dtype[dt].second += t->nbytes;
        }
        std::printf("model: %s (%zu file(s), %s B on disk)\n", o->model.c_str(), ck->n_files(),
                    thousands(ck->file_bytes()).c_str());
        std::printf("tensors: %zu; tensor bytes %s (%s)\n", ck->names().size(),
                    thousands(ck->total_bytes()).c_str(), human(double(ck->total_bytes())).c_str());
        for (const auto& [dt, tb] : by_dtype)
            std::printf("  %-22s %7lld tensors %20s B\n", dt.c_str(), (long long)tb.first,
                        thousands(tb.second).c_str());
        const int64_t dropped = apply_checkpoint(ck.value(), cfg.value(), inv);
        if (dropped)
            std::printf("(%lld tensors of the released layout are absent, e.g. no MTP block)\n",
                        (long long)dropped);
        print_counts(cfg.value(), count_inventory(cfg.value(), inv));
        if (o->rss) {
            std::optional<Numerics> num;
            if (!o->numerics.empty())
                num = o->numerics == "reference" ? Numerics::reference : Numerics::exact;
            run_rss(o->model, num, o->tokens, ck->file_bytes());
        }
    });
}

}  // namespace dsv4::cli
