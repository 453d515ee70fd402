// A random-weight model held in memory (no checkpoint on disk): `dsv4 bench` builds V4-Flash at its real
// dimensions (256 FP4 experts per layer, ~3.4 GB per layer) this way. Every tensor of
// released_inventory(cfg) points into a few shared host buffers; tested in
// tests/unit/test_memory_checkpoint.cpp (same logits as the same tensors written to disk and loaded).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/status.h"
#include "format/config.h"
#include "format/safetensors.h"

namespace dsv4 {

struct RandomCheckpoint {
    Checkpoint checkpoint;                          // released names and layout, label "<random NAME>"
    std::vector<std::pair<void*, size_t>> buffers;  // the host memory its tensors point into (to pin it)
    int64_t host_bytes = 0;                         // sum of the buffers
    int64_t tensor_bytes = 0;                       // sum of the tensors (the model's size)
};

// The released FP8/FP4 layout of `cfg` (no MTP block) with valid random contents, while holding only about
// one largest tensor of host memory: bulk tensors (FP8, packed FP4, bf16) share one buffer of small bf16
// values whose bytes are also NaN-free FP8 codes, each tensor at its own offset (so tensors differ); UE8M0
// scales near 2^-6, f32 parameters (mHC, sinks, ape, router bias) and norm weights (near 1) have small
// buffers of their own, and each hash layer's tid2eid its own rows of k distinct experts in range.
Result<RandomCheckpoint> random_checkpoint(const Dsv4Config& cfg, uint64_t seed = 1,
                                           const std::string& name = "model");

}  // namespace dsv4
