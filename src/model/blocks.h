// The per-layer blocks of the CPU reference forward pass (internal to model/). Each takes the tokens
// of one forward call of one sequence: n new tokens at absolute positions p0 .. p0+n−1.
#pragma once

#include <cstdint>
#include <vector>

#include "format/config.h"
#include "model/model.h"
#include "model/state.h"
#include "model/weights.h"

namespace dsv4 {

inline std::vector<float> fvec(int64_t n) {
    return std::vector<float>(static_cast<size_t>(n));
}

struct ForwardCtx {
    const Dsv4Config& cfg;
    const Weights& w;
    int64_t p0;                              // position of the first new token
    int64_t n;                               // new tokens
    const int32_t* ids;                      // [n] token ids (hash routing)
    std::vector<int64_t> pos;                // [n] absolute positions
    const std::vector<float>& inv_main;      // RoPE table of SWA layers
    const std::vector<float>& inv_compress;  // RoPE table of CSA/HCA layers
    Model::Taps* taps;
    bool ref_numerics = false;  // Numerics::reference (spec §10.4-10.5 roundings)
};

// What happens to a compressor's entries after norm and RoPE under reference numerics (spec §10.5).
enum class EntryRounding { kv_fp8, index_fp4 };

// Empty per-layer state for layer il.
LayerState make_layer_state(const Dsv4Config& cfg, int il);

// Feeds x [n, D] (already normed) through one compressor: pushes every token, emits the entries whose
// window completes (normed, RoPE'd at w·m, appended to st.entries). Spec §6.5.
void compressor_update(const ForwardCtx& ctx, const WeightRef& wkv, const WeightRef& wgate,
                       const WeightRef& ape, const WeightRef& norm, const float* x, CompressorState& st,
                       EntryRounding rounding);

// Attention sublayer: x [n, D] normed input -> out [n, D]. Updates the layer's state.
void attention_block(const ForwardCtx& ctx, int il, const float* x, LayerState& st, float* out);

// MoE sublayer: x [n, D] normed input -> out [n, D].
void moe_block(const ForwardCtx& ctx, int il, const float* x, float* out);

}  // namespace dsv4
