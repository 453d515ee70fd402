// The whole-model forward pass on one Hopper GPU (issue 6, phase A): weights uploaded once in their
// stored formats, per-sequence state (window rings, compressor state, compressed KV, index keys) on the
// device, every op a kernel of ops/cuda. Mirrors model.cpp / attention.cpp / compressor.cpp / moe.cpp
// step by step under Numerics::exact; tested against the CPU path in tests/model/test_cuda_model.cpp.
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

    struct Impl;

private:
    CudaForward() = default;
    std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
