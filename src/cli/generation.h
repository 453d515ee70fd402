// The CLI's generation loop (one sequence, no server): prefill the prompt, then sample and decode token
// by token, streaming complete UTF-8 text to a callback. The server uses runtime/Engine instead.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "cli/common.h"

namespace dsv4::cli {

struct GenerationStats {
    int64_t prompt_tokens = 0;
    int64_t generated = 0;
    double prefill_s = 0.0;
    double decode_s = 0.0;
    std::string finish_reason;  // "stop" (EOS / stop id) or "length"
};

// Continues `state` (which already holds any earlier turns) with `prompt`; on_text receives each piece of
// decoded text (or " <id>" when the model has no tokenizer). Generated ids are appended to *out_ids.
Result<GenerationStats> generate(const LoadedModel& lm, SeqState& state, const std::vector<int32_t>& prompt,
                                 const SamplingParams& params,
                                 const std::function<void(const std::string&)>& on_text,
                                 std::vector<int32_t>* out_ids = nullptr);

}  // namespace dsv4::cli
