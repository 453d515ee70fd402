// Random-weight V4 checkpoints of any config (the built-in default model, test models, benchmarks).
// Weights follow the randomisation recipe of spec §15 (nothing left at HF's constant init) and are
// written in the released layout (names, bf16/f32/i64 dtypes) or with HF names.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "format/config.h"

namespace dsv4 {

// The tiny test config of spec §15 (5 layers: SWA, SWA, CSA, HCA(8), CSA; hash ×3, score ×2).
Dsv4Config tiny_config();

struct TinyOptions {
    uint64_t seed = 1234;
    bool hf_names = false;  // false: released names (embed.weight, layers.N.attn.wq_a.weight, ...)
    // true: the released FP8 128x128 / FP4 per-32 layout with index and quantization_config (written as
    // bf16 next to `dir`, then quantized; hf_names is ignored).
    bool quantized = false;
    int64_t shard_bytes = 4'000'000'000;  // quantized: upper bound per shard
    bool verbose = false;
};

// Writes config.json and model.safetensors into `dir` (created if needed).
Status write_random_checkpoint(const std::string& dir, const Dsv4Config& cfg, const TinyOptions& opts = {});

}  // namespace dsv4
