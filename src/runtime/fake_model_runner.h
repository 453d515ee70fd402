// FakeModelRunner: a deterministic stand-in for the model in scheduler/engine/server tests. Each state is
// a rolling hash of every token it consumed, so logits depend on the whole prefix and on nothing else
// (not on the batch, the chunking or the other sequences): exactly the invariants a real runner must keep.
#pragma once

#include <unordered_map>

#include "runtime/model_runner.h"

namespace dsv4 {

struct FakeRunnerOptions {
    int64_t vocab = 64;
    int64_t active_vocab = 0;  // > 0: only ids below this get finite logits (cheap with a real vocab)
    int64_t max_context = 4096;
    int32_t eos_id = 1;
    float eos_bias = -4.0f;      // keeps most sequences running until max_tokens
    int64_t max_seqs = 1 << 20;  // create_seq fails beyond this many live states
    int fail_on_token = -1;      // run() fails when an item contains this id (error-path tests)
};

class FakeModelRunner : public ModelRunner {
public:
    explicit FakeModelRunner(FakeRunnerOptions opts = {}) : opts_(opts) {}

    int64_t vocab_size() const override { return opts_.vocab; }
    int64_t max_context() const override { return opts_.max_context; }
    Result<SeqHandle> create_seq() override;
    Result<SeqHandle> fork_seq(SeqHandle src) override;
    void free_seq(SeqHandle h) override;
    int64_t n_past(SeqHandle h) const override;
    Status run(std::span<const RunItem> items, std::vector<float>& logits) override;

    size_t live_seqs() const { return states_.size(); }
    int64_t tokens_processed() const { return tokens_processed_; }

    // The logits the runner gives after a sequence has consumed exactly `prefix` (test oracle).
    void logits_for_prefix(std::span<const int32_t> prefix, float* out) const;

private:
    struct State {
        uint64_t hash = 0x9e3779b97f4a7c15ull;
        int64_t n_past = 0;
    };
    static uint64_t mix(uint64_t h, int32_t token);
    void fill_logits(const State& st, float* out) const;

    FakeRunnerOptions opts_;
    std::unordered_map<SeqHandle, State> states_;
    SeqHandle next_handle_ = 0;
    int64_t tokens_processed_ = 0;
};

}  // namespace dsv4
