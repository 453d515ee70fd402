// ModelRunnerCpu: see the header. Tested through the engine tests on the tiny model when it is present.
#include "runtime/model_runner_cpu.h"

#include <algorithm>
#include <cstring>

namespace dsv4 {

ModelRunnerCpu::ModelRunnerCpu(std::shared_ptr<const Model> model, int64_t max_context)
    : model_(std::move(model)) {
    int64_t model_max = model_->config().max_position_embeddings;
    max_context_ = max_context > 0 ? std::min(max_context, model_max) : model_max;
}

ModelRunnerCpu::~ModelRunnerCpu() = default;

int64_t ModelRunnerCpu::vocab_size() const {
    return model_->config().vocab_size;
}

Result<SeqHandle> ModelRunnerCpu::create_seq() {
    SeqHandle h = next_handle_++;
    states_[h] = model_->new_state();
    return h;
}

Result<SeqHandle> ModelRunnerCpu::fork_seq(SeqHandle src) {
    auto it = states_.find(src);
    if (it == states_.end()) return error("cpu runner: fork of unknown handle {}", src);
    SeqHandle h = next_handle_++;
    states_[h] = Model::clone_state(*it->second);
    return h;
}

void ModelRunnerCpu::free_seq(SeqHandle h) {
    states_.erase(h);
}

int64_t ModelRunnerCpu::n_past(SeqHandle h) const {
    auto it = states_.find(h);
    return it == states_.end() ? -1 : Model::n_past(*it->second);
}

Status ModelRunnerCpu::run(std::span<const RunItem> items, std::vector<float>& logits) {
    const size_t n_vocab = size_t(vocab_size());
    logits.resize(items.size() * n_vocab);
    // One batched call: the CUDA backend stacks every sequence's tokens into one step.
    std::vector<BatchItem> batch;
    batch.reserve(items.size());
    for (const RunItem& r : items) {
        auto it = states_.find(r.handle);
        if (it == states_.end()) return error("runner: run on unknown handle {}", r.handle);
        batch.push_back({it->second.get(), r.ids, false});
    }
    DSV4_TRY(model_->forward_batch(batch, scratch_));
    if (scratch_.size() != items.size() * n_vocab)
        return error("runner: forward returned {} logits, expected {}", scratch_.size(),
                     items.size() * n_vocab);
    for (size_t i = 0; i < items.size(); ++i)
        if (items[i].want_logits)
            std::memcpy(logits.data() + i * n_vocab, scratch_.data() + i * n_vocab, n_vocab * sizeof(float));
    return Status::ok();
}

}  // namespace dsv4
