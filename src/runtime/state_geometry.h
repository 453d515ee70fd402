// StateGeometry: bytes of per-sequence decode state, from the config (spec §11, REF bf16 layout):
// fixed = window rings of every layer (+ MTP) and compressor rows; per token = compressed KV and indexer
// keys that grow with the context. Used to size the BlockManager pools at start-up.
#pragma once

#include <cstdint>

#include "format/config.h"

namespace dsv4 {

struct StateGeometry {
    int64_t fixed_bytes = 0;      // one state slot
    int64_t bytes_per_token = 0;  // compressed entries, amortized per position
};

StateGeometry state_geometry(const Dsv4Config& cfg);

}  // namespace dsv4
