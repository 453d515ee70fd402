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
    // TODO(runtime, #7): a batched Model::forward over all items once the model exposes one.
    for (size_t i = 0; i < items.size(); ++i) {
        auto it = states_.find(items[i].handle);
        if (it == states_.end()) return error("cpu runner: run on unknown handle {}", items[i].handle);
        DSV4_TRY(model_->forward(*it->second, items[i].ids, scratch_, false));
        if (items[i].want_logits) {
            if (scratch_.size() < n_vocab)
                return error("cpu runner: forward returned {} logits, expected {}", scratch_.size(), n_vocab);
            std::memcpy(logits.data() + i * n_vocab, scratch_.data() + scratch_.size() - n_vocab,
                        n_vocab * sizeof(float));
        }
    }
    return Status::ok();
}

}  // namespace dsv4
