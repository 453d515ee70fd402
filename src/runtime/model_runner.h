// ModelRunner: what the engine needs from a model — per-sequence states addressed by handles, and one
// batched call that feeds each sequence its new tokens and returns the logits of its last position.
// Implementations: ModelRunnerCpu (dsv4::Model) and FakeModelRunner (deterministic, for tests).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace dsv4 {

using SeqHandle = int32_t;

struct RunItem {
    SeqHandle handle = -1;
    std::span<const int32_t> ids;  // the next tokens of this sequence, at positions n_past(handle)..
    bool want_logits = true;       // false for a prefill chunk that does not reach the end of the prompt
};

class ModelRunner {
public:
    virtual ~ModelRunner() = default;

    virtual int64_t vocab_size() const = 0;
    virtual int64_t max_context() const = 0;  // positions the model supports

    virtual Result<SeqHandle> create_seq() = 0;
    // A new sequence whose state is a copy of `src` at its current position (prefix snapshots).
    virtual Result<SeqHandle> fork_seq(SeqHandle src) = 0;
    virtual void free_seq(SeqHandle h) = 0;
    virtual int64_t n_past(SeqHandle h) const = 0;

    // logits: [items.size(), vocab] f32; rows of items with want_logits == false are left unspecified.
    // A failure leaves the states of the items undefined: the engine fails those requests.
    virtual Status run(std::span<const RunItem> items, std::vector<float>& logits) = 0;
};

}  // namespace dsv4
