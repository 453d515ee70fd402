// Rotary frequency tables per layer kind (spec §6.3): plain θ^(−2i/d) for SWA layers, the YaRN-blended
// table (θ = compress_rope_theta) for CSA/HCA layers. No YaRN magnitude scale is ever applied.
#pragma once

#include <vector>

#include "format/config.h"

namespace dsv4 {

// inv_freq[i], i < rope_dim/2, computed like HF's _compute_default/_compute_yarn_parameters (fp32 result).
std::vector<float> rope_inv_freq(const RopeParams& p, int rope_dim);

}  // namespace dsv4
