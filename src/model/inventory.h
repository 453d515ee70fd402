// The tensor inventory a config implies in the released layout (spec §3.1, incl. the MTP block), and the
// counts of spec §12 derived from it: logical parameters, checkpoint bytes, active parameters and weight
// bytes read per decoded token at batch 1. `dsv4 info` prints them; tests/unit/test_inventory.cpp checks
// the Flash and Pro totals of spec §12 and §3.1.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "format/config.h"

namespace dsv4 {

// Groups of the per-token table of spec §12.
enum class WeightGroup : uint8_t {
    attention_core,  // wq_a, wq_b, wkv, wo_a, wo_b, q/kv/attn/ffn norms, sinks
    routed_experts,
    shared_expert,
    head,
    embed,
    compressor,        // main compressor: wkv, wgate, ape, norm
    indexer,           // indexer wq_b, weights_proj and its compressor
    hyper_connection,  // hc_* fn/base/scale
    router,            // gate.weight, gate.bias, tid2eid
    other,             // final norm, MTP e_proj/h_proj/enorm/hnorm/norm
    count
};
const char* weight_group_name(WeightGroup g);

struct InventoryEntry {
    std::string name;            // released name of the weight (its scale is folded into `bytes`)
    std::vector<int64_t> shape;  // logical shape (FP4: unpacked)
    DType dtype;                 // as released (fp4_e2m1 stored as I8)
    int64_t params = 0;          // logical elements (0 for tid2eid, which is an index table)
    int64_t bytes = 0;           // stored bytes incl. the UE8M0 scale tensor
    int64_t scale_bytes = 0;     // of which scale
    WeightGroup group;
    int layer = -1;   // -1: global; num_hidden_layers: the MTP block
    int expert = -1;  // routed expert index
    bool has_scale() const { return scale_bytes > 0; }
};

// Every tensor of the released checkpoint of `cfg` (with `cfg.num_nextn_predict_layers` MTP blocks).
// expert_fp8: routed experts as FP8 128x128 (REF convert.py --expert-dtype fp8) instead of FP4.
std::vector<InventoryEntry> released_inventory(const Dsv4Config& cfg, bool expert_fp8 = false);

struct ModelCounts {
    int64_t n_tensors = 0;      // incl. scale tensors and MTP
    int64_t params_main = 0;    // without MTP
    int64_t params_total = 0;   // with MTP
    int64_t bytes_total = 0;    // checkpoint tensor bytes with MTP
    int64_t params_active = 0;  // per token: k routed + shared + non-expert + head + 1 embedding row
    int64_t params_active_no_head = 0;
    std::array<int64_t, size_t(WeightGroup::count)> token_bytes{};  // weight bytes read per decoded token
    int64_t token_bytes_total = 0;
};

// Counts over an inventory (any bytes per entry, e.g. replaced by a real checkpoint's).
ModelCounts count_inventory(const Dsv4Config& cfg, const std::vector<InventoryEntry>& inv);

}  // namespace dsv4
