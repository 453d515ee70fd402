// Incremental detokenization for streaming: push ids one at a time, get back only complete UTF-8
// text. A CJK character or emoji often spans 2-4 byte-level tokens; the partial tail is held back
// until it completes (or replaced by U+FFFD once it can no longer complete, or at finish()).
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace dsv4 {

class StreamDecoder {
public:
    explicit StreamDecoder(Tokenizer tok, bool skip_special = false)
        : tok_(std::move(tok)), skip_special_(skip_special) {}

    // Text that became complete with this token (often empty mid-character). Always valid UTF-8.
    std::string push(int32_t id);
    // The held-back bytes at the end of the stream, as U+FFFD if any (an unfinished character).
    std::string finish();
    // Bytes held back now (0-3).
    size_t pending() const { return pending_.size(); }
    void reset() { pending_.clear(); }

private:
    Tokenizer tok_;
    bool skip_special_;
    std::string pending_;
};

}  // namespace dsv4
