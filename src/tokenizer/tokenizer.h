// The tokenizer of a checkpoint, loaded from its HF tokenizer.json: added tokens, Split
// pre-tokenizer on Oniguruma, byte-level BPE. Nothing is hard-coded; ids come from the file.
// Tested against HF `tokenizers` 0.23.2 golden ids (tests/unit/test_tokenizer_golden.cpp).
// A Tokenizer is cheap to copy (shared, immutable state) and encode/decode are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace dsv4 {

class Tokenizer {
public:
    static Result<Tokenizer> load(const std::string& tokenizer_json_path);
    // `origin` names the source in error messages.
    static Result<Tokenizer> from_json_string(std::string_view json,
                                              std::string_view origin = "tokenizer.json");

    // Token ids of text; no BOS/EOS is added (DeepSeek's post-processor adds none).
    // allow_special=true: added tokens in the text ("<｜User｜>", "</think>") become their ids, as in HF.
    // allow_special=false: the text is plain text (use it for untrusted input); no control token
    // can appear. Invalid UTF-8 is first repaired to U+FFFD, as the reference sees it.
    std::vector<int32_t> encode(std::string_view text, bool allow_special) const;
    void encode_append(std::string_view text, bool allow_special, std::vector<int32_t>& out) const;

    // Text of ids: added tokens as their content, invalid UTF-8 replaced by U+FFFD. Unknown ids are
    // skipped. skip_special drops tokens flagged "special" (BOS, EOS, pad in DeepSeek).
    std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
    // Raw bytes of one token (may be part of a UTF-8 character); empty for unknown ids.
    std::string_view token_bytes(int32_t id) const;

    // Id of an added token's content or of a vocab entry's byte-level spelling ("Ġthe").
    std::optional<int32_t> token_id(std::string_view token) const;
    bool is_special(int32_t id) const;
    bool is_added(int32_t id) const;
    // One past the largest id (129280 for DeepSeek V4).
    int32_t vocab_size() const;

private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

}  // namespace dsv4
