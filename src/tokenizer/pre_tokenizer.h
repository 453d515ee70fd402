// The HF pre-tokenizer subset DeepSeek uses: a Sequence of Split(Regex, behavior Isolated) steps,
// each applied to every piece of the previous step independently, then ByteLevel without its own
// regex. Regexes run on Oniguruma (the engine HF `tokenizers` uses), verbatim from tokenizer.json.
// NOTE(tok): Debian's Oniguruma 6.9.8 has Unicode 14 tables; HF's npm build has Unicode 16, so code
// points assigned in Unicode 15/16 may split differently (shared/docs/tokenizer-and-chat.md §1.5).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace dsv4 {

struct PieceSpan {
    size_t begin, end;  // byte offsets into the text passed to split()
};

class PreTokenizer {
public:
    // Parses the "pre_tokenizer" object of tokenizer.json (null means: the whole text is one piece).
    static Result<PreTokenizer> from_json(const nlohmann::json& j);

    PreTokenizer(PreTokenizer&&) noexcept;
    PreTokenizer& operator=(PreTokenizer&&) noexcept;
    ~PreTokenizer();

    // Splits valid UTF-8 text into pieces, appended to out. Thread-safe.
    void split(std::string_view text, std::vector<PieceSpan>& out) const;

    size_t num_regexes() const;

private:
    struct Impl;
    explicit PreTokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
