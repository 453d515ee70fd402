// GPT-2 "bytes_to_unicode" alphabet used by the ByteLevel pre-tokenizer and decoder: printable
// Latin-1 bytes map to themselves, the other 68 bytes to U+0100..U+0143 (space -> 'Ġ', '\n' -> 'Ċ').
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsv4::byte_level {

// Code point that byte b is written as in vocab strings.
uint32_t byte_to_code_point(uint8_t b);

// Inverse over a whole vocab string: the raw bytes, or nullopt if a character is outside the alphabet.
std::optional<std::string> to_bytes(std::string_view vocab_string);

// Vocab spelling of raw bytes (each byte as its alphabet character, UTF-8 encoded).
std::string from_bytes(std::string_view bytes);

}  // namespace dsv4::byte_level
