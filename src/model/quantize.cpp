// dsv4 quantize: any V4 checkpoint -> the released layout (spec §3.1 names, §10.6 formats), tensor by
// tensor, shard by shard, so memory stays near one shard plus one tensor in f32. Sources may use either
// naming (HF fused experts are split per expert) and may already hold FP8/FP4 tensors (copied as they are,
// or converted FP4 -> FP8 losslessly for --experts fp8).
#include "model/quantize.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <fstream>
#include <vector>

#include "core/log.h"
#include "format/config.h"
#include "format/safetensors.h"
#include "model/naming.h"
#include "ops/cpu/quant.h"

namespace dsv4 {

namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}
bool is_float(DType t) {
    return t == DType::f32 || t == DType::bf16 || t == DType::f16;
}

// The UE8M0 companion of a quantized weight: `X.scale` (released) or `X.weight_scale_inv` (HF FP8 quantizer).
const TensorInfo* find_scale(const Checkpoint& ck, const std::string& name) {
    const std::string base = ends_with(name, ".weight") ? name.substr(0, name.size() - 7) : name;
    if (const TensorInfo* s = ck.find(base + ".scale")) return s;
    return ck.find(name + "_scale_inv");
}
bool is_scale_name(const Checkpoint& ck, const std::string& name) {
    if (ends_with(name, "_scale_inv")) return true;
    return ends_with(name, ".scale") && ck.find(name.substr(0, name.size() - 6) + ".weight");
}

// A source tensor as a [rows, cols] WeightRef (1-D and N-D tensors fold into rows of their last dims).
Result<WeightRef> source_ref(const Checkpoint& ck, const TensorInfo& t) {
    WeightRef w;
    w.dtype = t.dtype;
    w.data = t.data;
    w.n_rows = t.shape.size() >= 2 ? t.shape[0] : 1;
    w.n_cols = w.n_rows ? t.numel() / w.n_rows : 0;
    const TensorInfo* s = find_scale(ck, t.name);
    if (t.dtype == DType::f8_e4m3) {
        if (t.shape.size() != 2)
            return error("{}: FP8 tensor '{}' must be 2-D, has shape {}", t.file, t.name, t.shape_str());
        std::vector<int64_t> want = {ceil_div(w.n_rows, 128), ceil_div(w.n_cols, 128)};
        if (!s)
            return error("{}: FP8 tensor '{}' has no scale tensor ('.scale' or '_scale_inv')", t.file,
                         t.name);
        if (s->dtype != DType::f8_e8m0 || s->shape != want)
            return error("{}: scale '{}' is {} {}, expected f8_e8m0 [{}, {}] for FP8 weight {}", s->file,
                         s->name, dtype_name(s->dtype), s->shape_str(), want[0], want[1], t.shape_str());
        w.scale = s->data;
        w.scale_cols = want[1];
        w.block_rows = w.block_cols = 128;
    } else if ((t.dtype == DType::i8 || t.dtype == DType::u8) && s && t.shape.size() == 2) {
        w.dtype = DType::fp4_e2m1;  // packed FP4 e2m1 x2 with a per-32 UE8M0 scale (spec §10.3)
        w.n_cols = 2 * t.shape[1];
        std::vector<int64_t> want = {w.n_rows, w.n_cols / 32};
        if (s->dtype != DType::f8_e8m0 || s->shape != want || w.n_cols % 32 != 0)
            return error("{}: scale '{}' is {} {}, expected f8_e8m0 [{}, {}] for packed FP4 weight {}",
                         s->file, s->name, dtype_name(s->dtype), s->shape_str(), want[0], want[1],
                         t.shape_str());
        w.scale = s->data;
        w.scale_cols = want[1];
        w.block_rows = 1;
        w.block_cols = 32;
    }
    return w;
}

enum class Out { raw, fp8, fp4, fp4_to_fp8, f32, bf16 };

struct Entry {
    std::string name;                     // released name of the output
    const TensorInfo* t = nullptr;        // source tensor
    const TensorInfo* t_scale = nullptr;  // its UE8M0 companion (quantized sources)
    WeightRef src;                        // source rows (a fused-expert slice for HF checkpoints)
    std::vector<int64_t> shape;           // logical shape of the output (for raw/f32/bf16)
    Out out = Out::raw;
    int64_t bytes = 0;  // output bytes incl. the scale
};

bool quantized(const WeightRef& w) {
    return w.dtype == DType::f8_e4m3 || w.dtype == DType::fp4_e2m1;
}

// Decides the output format of one entry (spec §10.6) and its size.
void plan_entry(Entry& e, const QuantizeOptions& opts) {
    const int64_t N = e.src.n_rows, K = e.src.n_cols;
    const bool f = is_float(e.src.dtype) || quantized(e.src);
    switch (released_tensor_class(e.name)) {
        case TensorClass::fp8_linear:
            e.out = e.src.dtype == DType::f8_e4m3 ? Out::raw : Out::fp8;
            break;
        case TensorClass::routed_expert:
            if (opts.experts == "fp8")
                e.out = e.src.dtype == DType::f8_e4m3 ? Out::raw : Out::fp4_to_fp8;
            else
                e.out = e.src.dtype == DType::fp4_e2m1 ? Out::raw : Out::fp4;
            break;
        case TensorClass::keep_f32:
            e.out = f ? Out::f32 : Out::raw;
            break;
        case TensorClass::index_i64:
            e.out = Out::raw;
            break;
        case TensorClass::bf16:
            e.out = f ? Out::bf16 : Out::raw;
            break;
    }
    if (e.out == Out::fp4 && K % 32 != 0) e.out = Out::fp8;  // cannot pack: keep the FP8 format
    switch (e.out) {
        case Out::raw:
            e.bytes = e.t->nbytes + (e.t_scale ? e.t_scale->nbytes : 0);
            break;
        case Out::fp8:
        case Out::fp4_to_fp8:
            e.bytes = N * K + ceil_div(N, 128) * ceil_div(K, 128);
            break;
        case Out::fp4:
            e.bytes = N * K / 2 + N * K / 32;
            break;
        case Out::f32:
            e.bytes = N * K * 4;
            break;
        case Out::bf16:
            e.bytes = N * K * 2;
            break;
    }
}

// f32 copy of the entry's source rows.
std::vector<float> to_f32(const Entry& e) {
    std::vector<float> f(size_t(e.src.n_rows * e.src.n_cols));
    for (int64_t r = 0; r < e.src.n_rows; ++r) cpu::dequant_row(e.src, r, f.data() + r * e.src.n_cols);
    return f;
}

// Produces the tensors of one entry (weight, then its scale) into bufs/tensors.
void produce(const Entry& e, std::vector<std::vector<uint8_t>>& bufs, std::vector<TensorToWrite>& out,
             QuantizeReport& rep) {
    const int64_t N = e.src.n_rows, K = e.src.n_cols;
    const std::string scale_name =
        ends_with(e.name, ".weight") ? e.name.substr(0, e.name.size() - 7) + ".scale" : e.name + ".scale";
    auto push = [&](const std::string& name, DType dt, std::vector<int64_t> shape, std::vector<uint8_t> buf) {
        bufs.push_back(std::move(buf));
        out.push_back({name, dt, std::move(shape), bufs.back().data(), int64_t(bufs.back().size())});
    };
    auto copy = [](const TensorInfo& t) { return std::vector<uint8_t>(t.data, t.data + t.nbytes); };
    switch (e.out) {
        case Out::raw:
            push(e.name, e.t->dtype, e.t->shape, copy(*e.t));
            if (e.t_scale) push(scale_name, DType::f8_e8m0, e.t_scale->shape, copy(*e.t_scale));
            return;
        case Out::fp8: {
            std::vector<float> f = to_f32(e);
            std::vector<uint8_t> q(size_t(N * K)), s(size_t(ceil_div(N, 128) * ceil_div(K, 128)));
            cpu::quantize_fp8_128(f.data(), N, K, q.data(), s.data());
            push(e.name, DType::f8_e4m3, {N, K}, std::move(q));
            push(scale_name, DType::f8_e8m0, {ceil_div(N, 128), ceil_div(K, 128)}, std::move(s));
            return;
        }
        case Out::fp4:
        case Out::fp4_to_fp8: {
            std::vector<uint8_t> p, s32;
            if (e.src.dtype == DType::fp4_e2m1) {  // already FP4: its own codes and scales
                p.assign(e.t->data, e.t->data + e.t->nbytes);
                s32.assign(e.t_scale->data, e.t_scale->data + e.t_scale->nbytes);
            } else {
                std::vector<float> f = to_f32(e);
                p.resize(size_t(N * K / 2));
                s32.resize(size_t(N * K / 32));
                cpu::quantize_fp4_32(f.data(), N, K, p.data(), s32.data());
            }
            if (e.out == Out::fp4) {
                push(e.name, DType::i8, {N, K / 2}, std::move(p));
                push(scale_name, DType::f8_e8m0, {N, K / 32}, std::move(s32));
                return;
            }
            std::vector<uint8_t> q(size_t(N * K)), s(size_t(ceil_div(N, 128) * ceil_div(K, 128)));
            rep.fp4_to_fp8_inexact += cpu::fp4_to_fp8_128(p.data(), s32.data(), N, K, q.data(), s.data());
            push(e.name, DType::f8_e4m3, {N, K}, std::move(q));
            push(scale_name, DType::f8_e8m0, {ceil_div(N, 128), ceil_div(K, 128)}, std::move(s));
            return;
        }
        case Out::f32:
        case Out::bf16: {
            std::vector<float> f = to_f32(e);
            std::vector<uint8_t> buf(
                size_t(dtype_bytes(e.out == Out::f32 ? DType::f32 : DType::bf16, N * K)));
            if (e.out == Out::f32) {
                std::memcpy(buf.data(), f.data(), buf.size());
            } else {
                auto* h = reinterpret_cast<uint16_t*>(buf.data());
                for (size_t i = 0; i < f.size(); ++i) h[i] = f32_to_bf16(f[i]);
            }
            push(e.name, e.out == Out::f32 ? DType::f32 : DType::bf16, e.shape, std::move(buf));
            return;
        }
    }
}

// Everything in the source directory that is not weights or config (tokenizer files, generation config).
Status copy_side_files(const std::string& in_dir, const std::string& out_dir) {
    std::error_code ec;
    if (!fs::is_directory(in_dir, ec)) return Status::ok();
    for (const auto& f : fs::directory_iterator(in_dir, ec)) {
        const std::string n = f.path().filename().string();
        if (!f.is_regular_file() || ends_with(n, ".safetensors") || n == "config.json" ||
            n == "model.safetensors.index.json")
            continue;
        fs::copy_file(f.path(), fs::path(out_dir) / n, fs::copy_options::overwrite_existing, ec);
        if (ec) return error("cannot copy '{}' to '{}': {}", f.path().string(), out_dir, ec.message());
    }
    return Status::ok();
}

Status write_config(const Dsv4Config& cfg, const std::string& out_dir) {
    std::ofstream cf(out_dir + "/config.json");
    cf << config_to_json(cfg) << "\n";
    if (!cf) return error("cannot write '{}/config.json'", out_dir);
    return Status::ok();
}

// Source entries in released names; HF fused experts become one entry per expert and matrix.
Result<std::vector<Entry>> collect(const Checkpoint& ck, const Dsv4Config& cfg) {
    std::vector<Entry> entries;
    const int64_t E = cfg.n_routed_experts, I = cfg.moe_intermediate_size, D = cfg.hidden_size;
    for (const std::string& name : ck.names()) {
        if (is_scale_name(ck, name)) continue;
        const TensorInfo* t = ck.find(name);
        DSV4_TRY_ASSIGN(WeightRef w, source_ref(ck, *t));
        const bool gate_up = ends_with(name, "mlp.experts.gate_up_proj"),
                   down = ends_with(name, "mlp.experts.down_proj");
        if (gate_up || down) {  // HF fused [E, 2I, D] / [E, D, I] (spec §3.2): rows of gate_up = [w1 | w3]
            if (name.rfind("model.layers.", 0) != 0)
                return error("{}: unexpected fused expert tensor '{}'", t->file, name);
            const std::string prefix =
                name.substr(6, name.find("mlp.") - 6);  // "model.layers.N.mlp." -> "layers.N."
            const int64_t rows = gate_up ? 2 * I : D, cols = gate_up ? D : I;
            if (t->shape != std::vector<int64_t>{E, rows, cols})
                return error("{}: tensor '{}' has shape {}, expected [{}, {}, {}]", t->file, name,
                             t->shape_str(), E, rows, cols);
            w.n_rows = E * rows;
            w.n_cols = cols;
            for (int64_t e = 0; e < E; ++e) {
                auto add = [&](const char* wn, int64_t r0, int64_t n) {
                    Entry en;
                    en.name = fmt::format("{}ffn.experts.{}.{}.weight", prefix, e, wn);
                    en.t = t;
                    en.src = w.rows(r0, n);
                    en.shape = {n, cols};
                    entries.push_back(std::move(en));
                };
                if (gate_up) {
                    add("w1", e * rows, I);
                    add("w3", e * rows + I, I);
                } else {
                    add("w2", e * rows, D);
                }
            }
            continue;
        }
        Entry en;
        en.name = ck.find("embed.weight") ? name : released_name_of(name);
        en.t = t;
        en.t_scale = quantized(w) ? find_scale(ck, name) : nullptr;
        en.src = w;
        en.shape = quantized(w) ? std::vector<int64_t>{w.n_rows, w.n_cols} : t->shape;
        entries.push_back(std::move(en));
    }
    return entries;
}

}  // namespace

TensorClass released_tensor_class(const std::string& n) {
    for (const char* s :
         {"attn.wq_a.weight", "attn.wq_b.weight", "attn.wkv.weight", "attn.wo_a.weight", "attn.wo_b.weight",
          "indexer.wq_b.weight", "shared_experts.w1.weight", "shared_experts.w2.weight",
          "shared_experts.w3.weight", "e_proj.weight", "h_proj.weight"})
        if (ends_with(n, s)) return TensorClass::fp8_linear;
    if (n.find(".experts.") != std::string::npos && n.find("shared_experts") == std::string::npos &&
        (ends_with(n, ".w1.weight") || ends_with(n, ".w2.weight") || ends_with(n, ".w3.weight")))
        return TensorClass::routed_expert;
    if (ends_with(n, "tid2eid")) return TensorClass::index_i64;
    if (n.find("hc_") != std::string::npos || ends_with(n, "attn_sink") || ends_with(n, ".ape") ||
        ends_with(n, "gate.bias"))
        return TensorClass::keep_f32;
    return TensorClass::bf16;
}

Result<QuantizeReport> quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                           const QuantizeOptions& opts) {
    if (opts.experts != "fp4" && opts.experts != "fp8")
        return error("--experts '{}' is not supported (expected fp4 or fp8)", opts.experts);
    if (fs::weakly_canonical(in_dir) == fs::weakly_canonical(out_dir))
        return error("quantize: --out must differ from --in ('{}')", in_dir);
    DSV4_TRY_ASSIGN(Dsv4Config cfg, load_config(in_dir));
    DSV4_TRY_ASSIGN(Checkpoint ck, Checkpoint::open(in_dir));
    if (!ck.find("embed.weight") && !ck.find("model.embed_tokens.weight"))
        return error(
            "{}: neither 'embed.weight' nor 'model.embed_tokens.weight' found; is this a DeepSeek V4 "
            "checkpoint?",
            in_dir);
    DSV4_TRY_ASSIGN(std::vector<Entry> entries, collect(ck, cfg));
    for (Entry& e : entries) plan_entry(e, opts);

    // Shards: consecutive entries up to shard_bytes each (a weight and its scale stay together).
    std::vector<std::vector<size_t>> shards(1);
    int64_t in_shard = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
        if (in_shard > 0 && in_shard + entries[i].bytes > opts.shard_bytes)
            shards.emplace_back(), in_shard = 0;
        shards.back().push_back(i);
        in_shard += entries[i].bytes;
    }
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) return error("cannot create directory '{}': {}", out_dir, ec.message());

    QuantizeReport rep;
    rep.n_shards = int64_t(shards.size());
    std::map<std::string, std::string> weight_map;
    for (size_t si = 0; si < shards.size(); ++si) {
        const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", si + 1, shards.size());
        std::vector<std::vector<uint8_t>> bufs;
        std::vector<TensorToWrite> tensors;
        bufs.reserve(2 * shards[si].size());  // TensorToWrite points into bufs: no reallocation
        for (size_t i : shards[si]) produce(entries[i], bufs, tensors, rep);
        for (const auto& t : tensors) {
            weight_map[t.name] = file;
            rep.bytes += t.nbytes;
        }
        rep.n_tensors += int64_t(tensors.size());
        DSV4_TRY(write_safetensors(out_dir + "/" + file, tensors, {{"format", "pt"}}));
        if (opts.verbose) log_info("quantize: wrote {} ({} tensors)", file, tensors.size());
    }
    DSV4_TRY(write_safetensors_index(out_dir, weight_map, rep.bytes));
    cfg.quant_method = "fp8";
    cfg.quant_fmt = "e4m3";
    cfg.scale_fmt = "ue8m0";
    cfg.weight_block_size = {128, 128};
    cfg.activation_scheme = "dynamic";
    cfg.expert_dtype = opts.experts;
    DSV4_TRY(write_config(cfg, out_dir));
    DSV4_TRY(copy_side_files(in_dir, out_dir));
    return rep;
}

Status dequantize_checkpoint(const std::string& in_dir, const std::string& out_dir) {
    DSV4_TRY_ASSIGN(Dsv4Config cfg, load_config(in_dir));
    DSV4_TRY_ASSIGN(Checkpoint ck, Checkpoint::open(in_dir));
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<TensorToWrite> tensors;
    const std::vector<std::string> names = ck.names();
    bufs.reserve(names.size());
    for (const std::string& name : names) {
        if (is_scale_name(ck, name)) continue;
        const TensorInfo* t = ck.find(name);
        DSV4_TRY_ASSIGN(WeightRef w, source_ref(ck, *t));
        if (!quantized(w)) {
            tensors.push_back({name, t->dtype, t->shape, t->data, t->nbytes});
            continue;
        }
        std::vector<uint8_t> buf(size_t(w.n_rows * w.n_cols * 4));
        auto* f = reinterpret_cast<float*>(buf.data());
        for (int64_t r = 0; r < w.n_rows; ++r) w.row_to_f32(r, f + r * w.n_cols);
        bufs.push_back(std::move(buf));
        tensors.push_back(
            {name, DType::f32, {w.n_rows, w.n_cols}, bufs.back().data(), int64_t(bufs.back().size())});
    }
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) return error("cannot create directory '{}': {}", out_dir, ec.message());
    DSV4_TRY(write_safetensors(out_dir + "/model.safetensors", tensors, {{"format", "pt"}}));
    cfg.quant_method.clear();
    cfg.quant_fmt.clear();
    cfg.scale_fmt.clear();
    cfg.weight_block_size.clear();
    cfg.activation_scheme.clear();
    cfg.expert_dtype.clear();
    return write_config(cfg, out_dir);
}

}  // namespace dsv4
