// UTF-8 helpers for the tokenizer: validation, lossy repair (U+FFFD per maximal subpart, the rule of
// Rust's String::from_utf8_lossy and WHATWG TextDecoder, which the HF reference sees), and the length
// of an incomplete trailing sequence for streaming. Tested in tests/unit/test_tokenizer_utf8.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv4::utf8 {

// Length of the valid sequence starting at s[i] (1-4), or 0 if invalid/truncated there; on 0,
// *maximal_subpart gets the number of bytes (>= 1) that one U+FFFD replaces.
size_t valid_sequence_length(std::string_view s, size_t i, size_t* maximal_subpart);

bool is_valid(std::string_view s);

// Copy of s with each maximal invalid subpart replaced by U+FFFD.
std::string repair(std::string_view s);

// Number of trailing bytes of s that form a valid but incomplete sequence (0-3): a streaming decoder
// holds these back until the next bytes arrive.
size_t incomplete_tail_length(std::string_view s);

// Appends the UTF-8 encoding of code point cp.
void append_code_point(std::string& out, uint32_t cp);

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace dsv4::utf8
