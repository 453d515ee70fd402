// Shared by the tokenizer tests: the real DeepSeek V4 tokenizer fixture, loaded once per process.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace dsv4::test {

inline std::string v4_tokenizer_path() {
    return std::string(DSV4_FIXTURES_DIR) + "/tokenizer/deepseek_v4_tokenizer.json";
}

// Aborts the test binary if the committed fixture is missing or broken: every tokenizer test needs it.
inline const Tokenizer& v4_tokenizer() {
    static const Tokenizer tok = [] {
        auto r = Tokenizer::load(v4_tokenizer_path());
        DSV4_ASSERT(r.is_ok(), "{}", r.message());
        return r.value();
    }();
    return tok;
}

}  // namespace dsv4::test
