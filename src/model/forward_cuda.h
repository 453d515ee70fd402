// The whole-model forward pass on one Hopper GPU (issue 6, phase A): weights uploaded once in their
// stored formats, per-sequence state (window rings, compressor state, compressed KV, index keys) on the
// device, every op a kernel of ops/cuda. Mirrors model.cpp / attention.cpp / compressor.cpp / moe.cpp
// step by step under Numerics::exact; tested against the CPU path in tests/model/test_cuda_model.cpp.
// Decode-only steps (every item feeds one token) run as one CUDA graph per batch size after the first,
// eager, step of that size: recorded by stream capture when the step's launch parameters changed
// (cudaGraphExecUpdate, or a new instantiation when the update is refused), else launched again as it is.
// Prefill and mixed steps run eagerly; DSV4_CUDA_GRAPHS=0 or DSV4_CUDA_PROFILE=1 makes every step eager.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "format/config.h"
#include "model/state.h"

namespace dsv4 {

class Weights;

class CudaForward {
public:
    // Uploads every weight; fails with a clear message when no CUDA device (or no CUDA build) is there.
    // reference_numerics: Numerics::reference (the REF roundings of model/numerics.h, at the same points).
    static Result<std::unique_ptr<CudaForward>> create(const Dsv4Config& cfg, const Weights& w,
                                                       const std::vector<float>& inv_main,
                                                       const std::vector<float>& inv_compress,
                                                       bool reference_numerics = false);
    ~CudaForward();

    std::unique_ptr<DeviceSeqState> new_state() const;
    // Same contract as Model::forward (ids already validated); updates st.n_past.
    Status forward(SeqState& st, std::span<const int32_t> ids, std::vector<float>& logits,
                   bool all_logits) const;
    // Several sequences in one step (continuous batching): every item's tokens are stacked, token-parallel
    // ops run once over all of them. logits: per item, n rows (all_logits) or its last row, in item order.
    // Items are validated by the caller (Model::forward_batch: ids, context, no sequence twice).
    using Item = BatchItem;
    Status forward_batch(std::span<const Item> items, std::vector<float>& logits) const;
    int64_t weight_bytes() const;

    // Process-wide totals over every CudaForward (tests check that the graph path was taken).
    struct GraphStats {
        int64_t launches = 0;        // decode steps run as a graph launch
        int64_t captures = 0;        // of those, recorded anew by stream capture
        int64_t instantiations = 0;  // cudaGraphInstantiate (first recording of a size, refused update)
        int64_t updates = 0;         // cudaGraphExecUpdate accepted
        int64_t refused = 0;         // recordings abandoned as the workspace had to grow (ran eagerly)
    };
    static GraphStats graph_stats();

    struct Impl;

private:
    CudaForward() = default;
    std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
