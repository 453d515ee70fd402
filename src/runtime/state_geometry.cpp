// state_geometry: spec §11.2/§11.3. Checked against the Flash numbers of the spec in test_block_manager.
#include "runtime/state_geometry.h"

namespace dsv4 {

StateGeometry state_geometry(const Dsv4Config& cfg) {
    StateGeometry g;
    const int64_t n_layers = cfg.num_hidden_layers + (cfg.num_nextn_predict_layers > 0 ? 1 : 0);
    const int64_t d = cfg.head_dim;
    // window KV ring per layer (incl. MTP): sliding_window rows x head_dim, bf16
    int64_t fixed = n_layers * cfg.sliding_window * d * 2;
    // per-token growth in bytes x 4 (kept integral; CSA grows every 4 tokens, HCA every `m`)
    int64_t per_token_num = 0, per_token_den = 1;
    for (int il = 0; il < cfg.num_hidden_layers; ++il) {
        const int m = cfg.compress_ratio(il);
        if (m == 0) continue;
        if (m == 4) {
            // main compressor rows 2 x [8, 2d] and indexer rows 2 x [8, 2*index_head_dim], fp32 (REF layout)
            fixed += 2 * 8 * (2 * d) * 4 + 2 * 8 * (2 * cfg.index_head_dim) * 4;
            per_token_num += (d + cfg.index_head_dim) * 2 * 32 / 4;  // in 1/32 bytes per token
        } else {
            fixed += 2 * int64_t(m) * d * 4;
            per_token_num += d * 2 * 32 / m;
        }
    }
    per_token_den = 32;
    g.fixed_bytes = fixed;
    g.bytes_per_token = (per_token_num + per_token_den - 1) / per_token_den;
    return g;
}

}  // namespace dsv4
