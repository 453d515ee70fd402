// Weight table: every tensor the config implies, found under either naming scheme —
// released (embed.weight, layers.N.attn.wq_a.weight, layers.N.ffn.experts.E.w1.weight; spec §3.1) or
// HF save_pretrained (model.embed_tokens.weight, model.layers.N.self_attn.q_a_proj.weight, fused
// experts.gate_up_proj; spec §3.2) — checked for shape and dtype, kept zero-copy in the mmap.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "format/config.h"
#include "format/safetensors.h"
#include "ops/weight.h"

namespace dsv4 {

enum class NamingScheme { released, hf };

struct LayerWeights {
    // hyper-connections (f32)
    WeightRef hc_attn_fn, hc_attn_base, hc_attn_scale, hc_ffn_fn, hc_ffn_base, hc_ffn_scale;
    WeightRef attn_norm, ffn_norm;  // [D]
    // attention core
    WeightRef wq_a, q_norm, wq_b, wkv, kv_norm, wo_a, wo_b, attn_sink;
    // main compressor (CSA and HCA)
    WeightRef cmp_ape, cmp_wkv, cmp_wgate, cmp_norm;
    // Lightning indexer (CSA)
    WeightRef idx_wq_b, idx_weights_proj, idx_cmp_ape, idx_cmp_wkv, idx_cmp_wgate, idx_cmp_norm;
    // MoE
    WeightRef gate, gate_bias, tid2eid;
    std::vector<WeightRef> w1, w2, w3;  // per routed expert: gate [I, D], down [D, I], up [I, D]
    WeightRef sh_w1, sh_w2, sh_w3;      // shared expert
};

class Weights {
public:
    // Opens the checkpoint in `dir` and binds every tensor the config implies. Extra tensors warn
    // (mtp.* is expected and ignored).
    static Result<std::unique_ptr<Weights>> load(const std::string& dir, const Dsv4Config& cfg);
    // The same over an opened checkpoint (Checkpoint::open or Checkpoint::from_memory), which it keeps.
    static Result<std::unique_ptr<Weights>> bind(Checkpoint ckpt, const Dsv4Config& cfg);

    NamingScheme scheme = NamingScheme::released;
    WeightRef embed, head, norm, hc_head_fn, hc_head_base, hc_head_scale;
    std::vector<LayerWeights> layers;
    const Checkpoint& checkpoint() const { return ckpt_; }

private:
    Checkpoint ckpt_;
};

}  // namespace dsv4
