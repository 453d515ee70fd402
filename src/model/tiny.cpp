// Random checkpoint writer (spec §15 recipe): weights N(0, 0.05), sinks N(0, 1), ape N(0, 0.5),
// hc base N(0, 0.5), hc scale U(0.5, 1.5), norm weights 1 + N(0, 0.1), router bias N(0, 0.1),
// tid2eid rows = first k of a random permutation. A splitmix64 + Box–Muller generator keeps files
// identical on every platform.
#include "model/tiny.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "core/dtype.h"
#include "core/log.h"
#include "format/safetensors.h"
#include "model/naming.h"
#include "model/quantize.h"

namespace dsv4 {

Dsv4Config tiny_config() {
    Dsv4Config c;
    c.vocab_size = 1024;
    c.hidden_size = 256;
    c.num_hidden_layers = 5;
    c.num_attention_heads = 4;
    c.head_dim = 128;
    c.qk_rope_head_dim = 64;
    c.q_lora_rank = 128;
    c.o_groups = 2;
    c.o_lora_rank = 64;
    c.sliding_window = 8;
    c.compress_ratios = {0, 0, 4, 8, 4};
    c.index_n_heads = 16;
    c.index_head_dim = 128;
    c.index_topk = 4;
    c.num_hash_layers = 3;
    c.mlp_layer_types = {MlpKind::hash_moe, MlpKind::hash_moe, MlpKind::hash_moe, MlpKind::moe, MlpKind::moe};
    c.n_routed_experts = 8;
    c.num_experts_per_tok = 2;
    c.n_shared_experts = 1;
    c.moe_intermediate_size = 128;
    c.routed_scaling_factor = 1.5;
    c.rope_main = RopeParams{10000.0, false, 1.0, 0.0, 32.0, 1.0};
    c.rope_compress = RopeParams{160000.0, true, 16.0, 65536.0, 32.0, 1.0};
    return c;
}

namespace {

class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
    double normal() {
        double u1 = uniform(), u2 = uniform();
        if (u1 < 1e-300) u1 = 1e-300;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
    }

private:
    uint64_t s_;
};

struct Writer {
    Rng rng;
    bool hf;
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<TensorToWrite> tensors;

    void add(const std::string& name, DType dt, std::vector<int64_t> shape, const std::vector<float>& v) {
        std::vector<uint8_t> buf(size_t(dtype_bytes(dt, int64_t(v.size()))));
        if (dt == DType::f32) {
            std::memcpy(buf.data(), v.data(), buf.size());
        } else {
            auto* p = reinterpret_cast<uint16_t*>(buf.data());
            for (size_t i = 0; i < v.size(); ++i) p[i] = f32_to_bf16(v[i]);
        }
        push(name, dt, std::move(shape), std::move(buf));
    }
    void push(const std::string& name, DType dt, std::vector<int64_t> shape, std::vector<uint8_t> buf) {
        bufs.push_back(std::move(buf));
        tensors.push_back({name, dt, std::move(shape), bufs.back().data(), int64_t(bufs.back().size())});
    }
    std::vector<float> normal(int64_t n, double mean, double std) {
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = float(mean + std * rng.normal());
        return v;
    }
    std::vector<float> uniform(int64_t n, double lo, double hi) {
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = float(lo + (hi - lo) * rng.uniform());
        return v;
    }
    void mat(const std::string& name, int64_t rows, int64_t cols) {
        add(name, DType::bf16, {rows, cols}, normal(rows * cols, 0.0, 0.05));
    }
    void norm_w(const std::string& name, int64_t d) { add(name, DType::bf16, {d}, normal(d, 1.0, 0.1)); }
};

}  // namespace

Status write_random_checkpoint(const std::string& dir, const Dsv4Config& cfg, const TinyOptions& opts) {
    if (opts.quantized) {  // the released FP8/FP4 layout: random bf16 weights, then `dsv4 quantize`
        const std::string tmp = dir + ".bf16-tmp";
        TinyOptions bf = opts;
        bf.quantized = false;
        bf.hf_names = false;
        DSV4_TRY(write_random_checkpoint(tmp, cfg, bf));
        QuantizeOptions q;
        q.shard_bytes = opts.shard_bytes;
        auto rep = quantize_checkpoint(tmp, dir, q);
        std::error_code rm_ec;
        std::filesystem::remove_all(tmp, rm_ec);
        if (!rep.is_ok()) return rep.status();
        if (opts.verbose) log_info("quantized to the released FP8/FP4 layout ({} shard(s))", rep->n_shards);
        return Status::ok();
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return error("cannot create directory '{}': {}", dir, ec.message());
    Writer w{Rng(opts.seed), opts.hf_names, {}, {}};
    w.bufs.reserve(4096);
    const int64_t V = cfg.vocab_size, D = cfg.hidden_size, hc = cfg.hc_mult, M = (2 + hc) * hc;
    const int64_t H = cfg.num_attention_heads, dh = cfg.head_dim, rq = cfg.q_lora_rank, G = cfg.o_groups;
    const int64_t ro = cfg.o_lora_rank, E = cfg.n_routed_experts, I = cfg.moe_intermediate_size;
    const int64_t k = cfg.num_experts_per_tok;
    w.mat("embed.weight", V, D);
    w.mat("head.weight", V, D);
    w.norm_w("norm.weight", D);
    w.add("hc_head_fn", DType::f32, {hc, hc * D}, w.normal(hc * hc * D, 0.0, 0.05));
    w.add("hc_head_base", DType::f32, {hc}, w.normal(hc, 0.0, 0.5));
    w.add("hc_head_scale", DType::f32, {1}, w.uniform(1, 0.5, 1.5));
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        const std::string p = fmt::format("layers.{}.", il);
        for (const char* site : {"attn", "ffn"}) {
            w.add(p + "hc_" + site + "_fn", DType::f32, {M, hc * D}, w.normal(M * hc * D, 0.0, 0.05));
            w.add(p + "hc_" + site + "_base", DType::f32, {M}, w.normal(M, 0.0, 0.5));
            w.add(p + "hc_" + site + "_scale", DType::f32, {3}, w.uniform(3, 0.5, 1.5));
        }
        w.norm_w(p + "attn_norm.weight", D);
        w.norm_w(p + "ffn_norm.weight", D);
        w.mat(p + "attn.wq_a.weight", rq, D);
        w.norm_w(p + "attn.q_norm.weight", rq);
        w.mat(p + "attn.wq_b.weight", H * dh, rq);
        w.mat(p + "attn.wkv.weight", dh, D);
        w.norm_w(p + "attn.kv_norm.weight", dh);
        w.mat(p + "attn.wo_a.weight", G * ro, H * dh / G);
        w.mat(p + "attn.wo_b.weight", D, G * ro);
        w.add(p + "attn.attn_sink", DType::f32, {H}, w.normal(H, 0.0, 1.0));
        const int64_t m = cfg.compress_ratio(il);
        auto compressor = [&](const std::string& cp, int64_t mm, int64_t d) {
            const int64_t c = mm == 4 ? 2 : 1;
            w.add(cp + "ape", DType::f32, {mm, c * d}, w.normal(mm * c * d, 0.0, 0.5));
            w.mat(cp + "wkv.weight", c * d, D);
            w.mat(cp + "wgate.weight", c * d, D);
            w.norm_w(cp + "norm.weight", d);
        };
        if (m != 0) compressor(p + "attn.compressor.", m, dh);
        if (m == 4) {
            const int64_t HI = cfg.index_n_heads, dI = cfg.index_head_dim;
            w.mat(p + "attn.indexer.wq_b.weight", HI * dI, rq);
            w.mat(p + "attn.indexer.weights_proj.weight", HI, D);
            compressor(p + "attn.indexer.compressor.", 4, dI);
        }
        w.mat(p + "ffn.gate.weight", E, D);
        if (cfg.is_hash_layer(il)) {
            std::vector<uint8_t> buf(size_t(V * k * 8));
            auto* t = reinterpret_cast<int64_t*>(buf.data());
            std::vector<int64_t> perm(static_cast<size_t>(E));
            for (int64_t v = 0; v < V; ++v) {
                std::iota(perm.begin(), perm.end(), 0);
                for (int64_t j = 0; j < k; ++j) {  // partial Fisher–Yates: first k of a random permutation
                    int64_t r = j + int64_t(w.rng.next() % uint64_t(E - j));
                    std::swap(perm[j], perm[r]);
                    t[v * k + j] = perm[j];
                }
            }
            w.push(p + "ffn.gate.tid2eid", DType::i64, {V, k}, std::move(buf));
        } else {
            w.add(p + "ffn.gate.bias", DType::f32, {E}, w.normal(E, 0.0, 0.1));
        }
        if (opts.hf_names) {  // HF fuses the experts: gate_up_proj [E, 2I, D], down_proj [E, D, I]
            w.add("model." + p + "mlp.experts.gate_up_proj", DType::bf16, {E, 2 * I, D},
                  w.normal(E * 2 * I * D, 0.0, 0.05));
            w.add("model." + p + "mlp.experts.down_proj", DType::bf16, {E, D, I},
                  w.normal(E * D * I, 0.0, 0.05));
        } else {
            for (int64_t e = 0; e < E; ++e) {
                const std::string ep = fmt::format("{}ffn.experts.{}.", p, e);
                w.mat(ep + "w1.weight", I, D);
                w.mat(ep + "w2.weight", D, I);
                w.mat(ep + "w3.weight", I, D);
            }
        }
        w.mat(p + "ffn.shared_experts.w1.weight", I * cfg.n_shared_experts, D);
        w.mat(p + "ffn.shared_experts.w2.weight", D, I * cfg.n_shared_experts);
        w.mat(p + "ffn.shared_experts.w3.weight", I * cfg.n_shared_experts, D);
    }
    if (opts.hf_names)
        for (auto& t : w.tensors) t.name = hf_name_of(t.name);
    DSV4_TRY(write_safetensors(dir + "/model.safetensors", w.tensors, {{"format", "pt"}}));
    std::ofstream cf(dir + "/config.json");
    cf << config_to_json(cfg) << "\n";
    if (!cf) return error("cannot write '{}/config.json'", dir);
    if (opts.verbose) log_info("wrote a random {}-layer checkpoint to {}", cfg.num_hidden_layers, dir);
    return Status::ok();
}

}  // namespace dsv4
