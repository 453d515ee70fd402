// Model: a loaded DeepSeek V4 checkpoint and its forward pass over one sequence's new tokens.
// The forward pass follows HF DeepseekV4ForCausalLM (spec §2); the CPU reference is tested against HF
// golden files (tests/model/test_golden.cpp) and against itself in prefill/decode/chunked splits.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "format/config.h"
#include "format/safetensors.h"
#include "model/state.h"

namespace dsv4 {

class Weights;
class CudaForward;  // model/forward_cuda.h: the GPU path of LoadOptions::backend == "cuda"
// SeqState (model/state.h): per-sequence decode state (window rings, compressor buffers, compressed KV, index
// keys)

// How the forward pass rounds (spec §16 item 7):
//  exact      HF parity: weights dequantized exactly, activations and caches in f32 (what the golden
//             files check).
//  reference  current REF demo numerics (spec §10.4-10.5): the input of every FP8/FP4 linear rounded to
//             FP8 (block 128, power-of-two scales; wo_a excluded, REF runs it in bf16), window KV and
//             main compressed entries rounded to FP8 on their nope dims (block 64), indexer q and index
//             keys rotated by Hadamard_128 and rounded to FP4 (block 32).
enum class Numerics : uint8_t { exact, reference };
const char* numerics_name(Numerics n);

struct LoadOptions {
    std::string backend = "cpu";  // "cpu" | "cuda"
    bool verbose = true;          // progress on stderr
    // Unset: reference for a checkpoint whose config.json declares FP8 quantization (the published
    // weights, trained with these roundings as QAT, spec §10.5), exact for bf16/f32 checkpoints.
    std::optional<Numerics> numerics;
};

class Model {
public:
    static Result<std::unique_ptr<Model>> load(const std::string& dir, const LoadOptions& opts = {});
    // The same over tensors opened elsewhere (e.g. Checkpoint::from_memory: `dsv4 bench`'s random model at
    // the real dimensions), with `cfg` in place of config.json. The model keeps the checkpoint.
    static Result<std::unique_ptr<Model>> load_from(const Dsv4Config& cfg, Checkpoint ckpt,
                                                    const LoadOptions& opts = {});
    ~Model();

    const Dsv4Config& config() const { return cfg_; }
    const Weights& weights() const { return *weights_; }
    Numerics numerics() const { return numerics_; }

    // A fresh, empty state for one sequence (position 0).
    std::unique_ptr<SeqState> new_state() const;
    // Number of tokens already consumed by a state.
    static int64_t n_past(const SeqState& st);
    // Deep copy of a state (prefix caching, speculative rollback).
    static std::unique_ptr<SeqState> clone_state(const SeqState& st);

    // Feeds `ids` (the next tokens of the sequence, at positions n_past .. n_past+n-1), updates the state,
    // and writes logits [n, vocab] for every new position when all_logits, else [1, vocab] for the last.
    Status forward(SeqState& st, std::span<const int32_t> ids, std::vector<float>& logits,
                   bool all_logits = false) const;

    // Several sequences in one call (continuous batching; each item as in forward()). logits holds, item
    // after item, n rows (all_logits) or one row of [vocab]. The CUDA backend stacks all tokens into one
    // step; the CPU backend runs the items one after the other. A sequence may appear only once.
    Status forward_batch(std::span<const BatchItem> items, std::vector<float>& logits) const;
    // Debug taps for golden tests: when set, forward() stores per-layer tensors keyed like the golden
    // files ("hidden.embed", "hidden.3", "attn.3", "mlp.3"), each [n, ...] f32 for this call's tokens.
    struct Taps;
    void set_taps(Taps* taps) { taps_ = taps; }

private:
    Model() = default;
    Dsv4Config cfg_;
    std::unique_ptr<Weights> weights_;
    Taps* taps_ = nullptr;
    Numerics numerics_ = Numerics::exact;
    std::unique_ptr<CudaForward> cuda_;           // set when loaded with backend "cuda"
    std::vector<float> inv_main_, inv_compress_;  // RoPE tables of SWA and CSA/HCA layers
};

struct Model::Taps {
    std::vector<std::pair<std::string, std::vector<float>>> tensors;
    void put(const std::string& key, const float* data, int64_t n) {
        tensors.emplace_back(key, std::vector<float>(data, data + n));
    }
    const std::vector<float>* get(const std::string& key) const {
        for (auto& kv : tensors)
            if (kv.first == key) return &kv.second;
        return nullptr;
    }
};

}  // namespace dsv4
