// CLI generation loop: prefill, then sample → decode one token per step (runtime/sampler.h semantics).
#include "cli/generation.h"

#include <chrono>

#include "runtime/sampler.h"
#include "tokenizer/stream_decoder.h"

namespace dsv4::cli {

Result<GenerationStats> generate(const LoadedModel& lm, SeqState& state, const std::vector<int32_t>& prompt,
                                 const SamplingParams& params,
                                 const std::function<void(const std::string&)>& on_text,
                                 std::vector<int32_t>* out_ids) {
    using clock = std::chrono::steady_clock;
    const Model& model = *lm.model;
    const int32_t eos = model.config().eos_token_id;
    GenerationStats stats;
    stats.prompt_tokens = int64_t(prompt.size());
    if (prompt.empty()) return error("the prompt is empty");
    const int64_t ctx_limit = model.config().max_position_embeddings;
    if (Model::n_past(state) + int64_t(prompt.size()) >= ctx_limit)
        return error("prompt of {} tokens does not fit the context of {} tokens", prompt.size(), ctx_limit);

    PenaltyState history;
    history.set_prompt(prompt);
    std::optional<StreamDecoder> dec;
    if (lm.tokenizer) dec.emplace(*lm.tokenizer, true);
    std::vector<float> logits;
    auto t0 = clock::now();
    DSV4_TRY(model.forward(state, prompt, logits, false));
    auto t1 = clock::now();
    stats.prefill_s = std::chrono::duration<double>(t1 - t0).count();
    stats.finish_reason = "length";
    for (int i = 0; i < params.max_tokens; ++i) {
        SampleResult r = sample_token(logits, params, history, Model::n_past(state), eos);
        const int32_t tok = r.token;
        history.add_output(tok);
        if (out_ids) out_ids->push_back(tok);
        ++stats.generated;
        const bool stop = !params.ignore_eos &&
                          (tok == eos || std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(),
                                                   tok) != params.stop_token_ids.end());
        if (!stop) on_text(dec ? dec->push(tok) : fmt::format(" {}", tok));
        if (stop) {
            stats.finish_reason = "stop";
            break;
        }
        if (i + 1 == params.max_tokens || Model::n_past(state) + 1 >= ctx_limit) break;
        DSV4_TRY(model.forward(state, std::span(&tok, 1), logits, false));
    }
    if (dec) on_text(dec->finish());
    stats.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
    return stats;
}

}  // namespace dsv4::cli
