// StreamDecoder; see stream_decoder.h. The concatenation of all push() results plus finish() equals
// Tokenizer::decode of the whole id list (tested in test_tokenizer.cpp).
#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace dsv4 {

std::string StreamDecoder::push(int32_t id) {
    if (skip_special_ && tok_.is_special(id)) return {};
    pending_ += tok_.token_bytes(id);
    const size_t hold = utf8::incomplete_tail_length(pending_);
    const std::string_view ready(pending_.data(), pending_.size() - hold);
    std::string out = utf8::is_valid(ready) ? std::string(ready) : utf8::repair(ready);
    pending_.erase(0, pending_.size() - hold);
    return out;
}

std::string StreamDecoder::finish() {
    std::string out = utf8::repair(pending_);
    pending_.clear();
    return out;
}

}  // namespace dsv4
