// FakeModelRunner: see the header. Logits are a fixed function of (prefix hash, vocab index).
#include "runtime/fake_model_runner.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

namespace dsv4 {

uint64_t FakeModelRunner::mix(uint64_t h, int32_t token) {
    // splitmix64 of (h, token): any change in any earlier token changes every later logit
    uint64_t z = h ^ (uint64_t(uint32_t(token)) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void FakeModelRunner::fill_logits(const State& st, float* out) const {
    const int64_t n_active = opts_.active_vocab > 0 ? std::min(opts_.active_vocab, opts_.vocab) : opts_.vocab;
    for (int64_t i = 0; i < n_active; ++i) {
        uint64_t z = mix(st.hash, int32_t(i));
        out[i] = float(z >> 40) / float(1 << 24) * 8.0f - 4.0f;  // uniform in [-4, 4)
    }
    for (int64_t i = n_active; i < opts_.vocab; ++i) out[i] = -std::numeric_limits<float>::infinity();
    if (opts_.eos_id >= 0 && opts_.eos_id < opts_.vocab) out[opts_.eos_id] += opts_.eos_bias;
}

Result<SeqHandle> FakeModelRunner::create_seq() {
    if (int64_t(states_.size()) >= opts_.max_seqs)
        return error("fake runner: {} states live, limit {}", states_.size(), opts_.max_seqs);
    SeqHandle h = next_handle_++;
    states_[h] = State{};
    return h;
}

Result<SeqHandle> FakeModelRunner::fork_seq(SeqHandle src) {
    auto it = states_.find(src);
    if (it == states_.end()) return error("fake runner: fork of unknown handle {}", src);
    State copy = it->second;
    DSV4_TRY_ASSIGN(SeqHandle h, create_seq());
    states_[h] = copy;
    return h;
}

void FakeModelRunner::free_seq(SeqHandle h) {
    states_.erase(h);
}

int64_t FakeModelRunner::n_past(SeqHandle h) const {
    auto it = states_.find(h);
    return it == states_.end() ? -1 : it->second.n_past;
}

Status FakeModelRunner::run(std::span<const RunItem> items, std::vector<float>& logits) {
    logits.assign(items.size() * size_t(opts_.vocab), 0.0f);
    for (size_t i = 0; i < items.size(); ++i) {
        auto it = states_.find(items[i].handle);
        if (it == states_.end()) return error("fake runner: run on unknown handle {}", items[i].handle);
        State& st = it->second;
        for (int32_t id : items[i].ids) {
            if (id == opts_.fail_on_token) return error("fake runner: injected failure on token {}", id);
            if (id < 0 || id >= opts_.vocab)
                return error("fake runner: token {} outside vocab {}", id, opts_.vocab);
            if (st.n_past >= opts_.max_context)
                return error("fake runner: position {} beyond context {}", st.n_past, opts_.max_context);
            st.hash = mix(st.hash, id);
            st.n_past++;
        }
        tokens_processed_ += int64_t(items[i].ids.size());
        if (items[i].want_logits) fill_logits(st, logits.data() + i * size_t(opts_.vocab));
    }
    return Status::ok();
}

void FakeModelRunner::logits_for_prefix(std::span<const int32_t> prefix, float* out) const {
    State st;
    for (int32_t id : prefix) st.hash = mix(st.hash, id), st.n_past++;
    fill_logits(st, out);
}

}  // namespace dsv4
