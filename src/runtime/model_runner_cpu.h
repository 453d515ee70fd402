// ModelRunnerCpu: ModelRunner over dsv4::Model. Each handle owns one SeqState; a batch is run item by
// item (Model::forward takes one sequence), fork = Model::clone_state.
// NOTE: the CPU SeqState is contiguous and deep-copied on fork, so real memory use can exceed what the
// BlockManager accounts (it accounts the paged target layout, serving-design §1.5).
#pragma once

#include <memory>
#include <unordered_map>

#include "model/model.h"
#include "runtime/model_runner.h"

namespace dsv4 {

class ModelRunnerCpu : public ModelRunner {
public:
    explicit ModelRunnerCpu(std::shared_ptr<const Model> model, int64_t max_context = 0);
    ~ModelRunnerCpu() override;

    int64_t vocab_size() const override;
    int64_t max_context() const override { return max_context_; }
    Result<SeqHandle> create_seq() override;
    Result<SeqHandle> fork_seq(SeqHandle src) override;
    void free_seq(SeqHandle h) override;
    int64_t n_past(SeqHandle h) const override;
    Status run(std::span<const RunItem> items, std::vector<float>& logits) override;

private:
    std::shared_ptr<const Model> model_;
    int64_t max_context_ = 0;
    std::unordered_map<SeqHandle, std::unique_ptr<SeqState>> states_;
    SeqHandle next_handle_ = 0;
    std::vector<float> scratch_;
};

}  // namespace dsv4
