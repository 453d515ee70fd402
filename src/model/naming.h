// The two tensor namings of V4 checkpoints (spec §3.1 released, §3.2 HF save_pretrained) and the map
// between them, for the tensors that have a one-to-one counterpart. HF's fused routed experts
// (mlp.experts.gate_up_proj / down_proj) have none; their callers split them per expert.
#pragma once

#include <string>

namespace dsv4 {

// Released name -> HF name ("layers.3.attn.wq_a.weight" -> "model.layers.3.self_attn.q_a_proj.weight");
// names without a counterpart are returned unchanged.
std::string hf_name_of(const std::string& released);
// HF name -> released name (the inverse); names without a counterpart are returned unchanged.
std::string released_name_of(const std::string& hf);

}  // namespace dsv4
