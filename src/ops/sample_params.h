// SampleParams and the keyed noise of the sampler, shared by the CPU reference (ops/cpu/sample.cpp, which
// runtime/sampler.cpp calls) and the CUDA kernel (ops/cuda/sample_sm90.cu). The functions are inline and
// host/device, so both sides draw bit-identical uniforms and round the Gumbel score the same way.
// Tested through tests/unit/test_sampler.cpp and test-ops `sample_rows`; note: docs/kernels/sample.md.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DSV4_HOST_DEVICE __host__ __device__
#else
#define DSV4_HOST_DEVICE
#endif

namespace dsv4 {

// The token-choice part of SamplingParams (runtime/request.h); a POD, so an array of it can live on the
// device.
struct SampleParams {
    float temperature;  // < 1e-5: greedy (argmax, ties to the lower id)
    int32_t top_k;      // <= 0 or >= n_vocab: off
    float top_p;        // >= 1: off
    float min_p;        // <= 0: off; relative to the most likely token
    uint64_t seed;
};

DSV4_HOST_DEVICE inline uint64_t sample_splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Uniform in (0, 1) from a counter-based hash of (seed, position, index): stateless and reproducible, so a
// draw does not depend on the batch or on which backend makes it.
DSV4_HOST_DEVICE inline double keyed_uniform(uint64_t seed, int64_t position, int64_t index) {
    const uint64_t z = sample_splitmix64(
        seed ^ sample_splitmix64(uint64_t(position) * 0xd1b54a32d192ed03ull ^ uint64_t(index)));
    return (double(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // 53 bits, never 0 or 1
}

// Gumbel-max score of `index`: x / T + g with g = −log(−log u); the argmax over ids samples softmax(x / T).
// NOTE(sample): the product is rounded on its own on both sides (nvcc would otherwise fuse it into an FMA
// with the subtraction); log itself is each side's libm (docs/kernels/sample.md, "exactness").
DSV4_HOST_DEVICE inline double gumbel_score(float x, double inv_t, uint64_t seed, int64_t position,
                                            int64_t index) {
    const double u = keyed_uniform(seed, position, index);
#if defined(__CUDA_ARCH__)
    return __dsub_rn(__dmul_rn(double(x), inv_t), log(-log(u)));
#else
    return double(x) * inv_t - std::log(-std::log(u));
#endif
}

// Unnormalized truncation probability of logit x against the row maximum mx: exp((x − mx) / T) ∈ [0, 1].
DSV4_HOST_DEVICE inline double sample_prob(float x, double mx, double inv_t) {
#if defined(__CUDA_ARCH__)
    return exp((double(x) - mx) * inv_t);
#else
    return std::exp((double(x) - mx) * inv_t);
#endif
}

namespace cpu {
// CPU reference of the token choice, defined in ops/cpu/sample.cpp (declared here, in the ops layer, so that
// runtime/sampler.cpp can call it without including ops/cpu). From one row of already biased/penalised logits
// x [n_vocab]: greedy (T < 1e-5: argmax, ties to the lower id) or temperature; then top-k, top-p, min-p on
// the ids sorted by (logit desc, id asc); then Gumbel-max with noise keyed_uniform(seed, position, id).
// n_vocab >= 1. Defined for rows without NaN: an all −inf row gives 0, a row with +inf its lowest +inf id.
int32_t sample_row(const float* x, int64_t n_vocab, const SampleParams& sp, int64_t position);
}  // namespace cpu

}  // namespace dsv4
