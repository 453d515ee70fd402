// ScriptedRunner: a model runner for server tests whose output is a fixed token script. After the last
// occurrence of `trigger` (the <think>/</think> that ends every chat prompt) in a sequence's history, it
// puts all probability on script[k] for the k-th generated token, then on EOS. It lets the tests drive
// the reasoning / tool-call paths with exact, known model output.
#pragma once

#include <unordered_map>
#include <vector>

#include "runtime/model_runner.h"

namespace dsv4::testing {

class ScriptedRunner : public ModelRunner {
public:
    ScriptedRunner(int64_t vocab, std::vector<int32_t> triggers, std::vector<int32_t> script, int32_t eos)
        : vocab_(vocab), triggers_(std::move(triggers)), script_(std::move(script)), eos_(eos) {}

    int64_t vocab_size() const override { return vocab_; }
    int64_t max_context() const override { return 1 << 20; }
    Result<SeqHandle> create_seq() override {
        states_[next_] = {};
        return next_++;
    }
    Result<SeqHandle> fork_seq(SeqHandle src) override {
        states_[next_] = states_.at(src);
        return next_++;
    }
    void free_seq(SeqHandle h) override { states_.erase(h); }
    int64_t n_past(SeqHandle h) const override { return int64_t(states_.at(h).size()); }
    Status run(std::span<const RunItem> items, std::vector<float>& logits) override {
        logits.assign(items.size() * size_t(vocab_), -30.0f);
        for (size_t i = 0; i < items.size(); ++i) {
            auto& hist = states_.at(items[i].handle);
            hist.insert(hist.end(), items[i].ids.begin(), items[i].ids.end());
            size_t k = 0;
            bool seen = false;
            for (size_t p = hist.size(); p-- > 0;) {
                bool is_trigger = false;
                for (int32_t t : triggers_) is_trigger |= hist[p] == t;
                if (is_trigger) {
                    k = hist.size() - 1 - p;
                    seen = true;
                    break;
                }
            }
            int32_t next = seen && k < script_.size() ? script_[k] : eos_;
            logits[i * size_t(vocab_) + size_t(next)] = 30.0f;
        }
        return Status::ok();
    }

private:
    int64_t vocab_;
    std::vector<int32_t> triggers_, script_;
    int32_t eos_;
    std::unordered_map<SeqHandle, std::vector<int32_t>> states_;
    SeqHandle next_ = 0;
};

}  // namespace dsv4::testing
