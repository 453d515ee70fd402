// RoPE inverse-frequency tables (spec §6.3), following HF modeling_rope_utils: base^(−2i/dim) in fp32,
// YaRN ramp between floor(corr(β_fast)) and ceil(corr(β_slow)), blended with the interpolated table.
#include "model/rope_table.h"

#include <algorithm>
#include <cmath>

namespace dsv4 {

std::vector<float> rope_inv_freq(const RopeParams& p, int rope_dim) {
    const int half = rope_dim / 2;
    std::vector<float> inv(static_cast<size_t>(half));
    const float base = float(p.rope_theta);
    for (int i = 0; i < half; ++i) {
        float pos_freq = std::pow(base, float(2 * i) / float(rope_dim));  // fp32, as torch does
        inv[size_t(i)] = 1.0f / pos_freq;
    }
    if (!p.yarn) return inv;
    const double pi = 3.14159265358979323846;
    auto corr = [&](double n_rot) {
        return rope_dim * std::log(p.original_max_position_embeddings / (n_rot * 2 * pi)) /
               (2 * std::log(p.rope_theta));
    };
    double low = std::max(std::floor(corr(p.beta_fast)), 0.0);
    double high = std::min(std::ceil(corr(p.beta_slow)), double(rope_dim - 1));
    if (low == high) high += 0.001;
    for (int i = 0; i < half; ++i) {
        float ramp = std::clamp(float((i - low) / (high - low)), 0.0f, 1.0f);
        float extrap = 1.0f - ramp;  // HF: inv_freq_extrapolation_factor
        float pos_freq = 1.0f / inv[size_t(i)];
        float interp = 1.0f / (float(p.factor) * pos_freq);
        inv[size_t(i)] = interp * (1.0f - extrap) + inv[size_t(i)] * extrap;
    }
    return inv;
}

}  // namespace dsv4
