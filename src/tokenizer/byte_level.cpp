// GPT-2 byte alphabet; see byte_level.h.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace dsv4::byte_level {

namespace {

struct Tables {
    std::array<uint32_t, 256> to_cp{};
    std::array<int16_t, 0x144> from_cp{};  // code point -> byte, -1 if not in the alphabet
    Tables() {
        from_cp.fill(-1);
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            // bytes_to_unicode(): '!'..'~', '¡'..'¬', '®'..'ÿ' keep their code point
            const bool printable =
                (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
            from_cp[to_cp[b]] = static_cast<int16_t>(b);
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

}  // namespace

uint32_t byte_to_code_point(uint8_t b) {
    return tables().to_cp[b];
}

std::optional<std::string> to_bytes(std::string_view s) {
    const Tables& t = tables();
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const size_t n = utf8::valid_sequence_length(s, i, nullptr);
        if (n == 0 || n > 2) return std::nullopt;  // the alphabet is U+0021..U+0143: 1 or 2 bytes
        uint32_t cp = static_cast<uint8_t>(s[i]);
        if (n == 2) cp = ((cp & 0x1F) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3F);
        if (cp >= t.from_cp.size() || t.from_cp[cp] < 0) return std::nullopt;
        out.push_back(static_cast<char>(t.from_cp[cp]));
        i += n;
    }
    return out;
}

std::string from_bytes(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) utf8::append_code_point(out, byte_to_code_point(static_cast<uint8_t>(c)));
    return out;
}

}  // namespace dsv4::byte_level
