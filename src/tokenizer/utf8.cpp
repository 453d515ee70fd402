// UTF-8 validation and lossy repair; see utf8.h. Follows the Unicode "maximal subpart" practice
// (Unicode 15 §3.9, table 3-7 well-formed byte sequences).
#include "tokenizer/utf8.h"

namespace dsv4::utf8 {

namespace {
bool in(uint8_t b, uint8_t lo, uint8_t hi) {
    return b >= lo && b <= hi;
}
}  // namespace

size_t valid_sequence_length(std::string_view s, size_t i, size_t* maximal_subpart) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) return 1;
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (table 3-7)
    if (in(b0, 0xC2, 0xDF)) {
        need = 2;
    } else if (in(b0, 0xE0, 0xEF)) {
        need = 3;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;  // no surrogates
    } else if (in(b0, 0xF0, 0xF4)) {
        need = 4;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
    } else {
        if (maximal_subpart) *maximal_subpart = 1;
        return 0;
    }
    size_t k = 1;
    for (; k < need && i + k < s.size(); ++k) {
        const auto b = static_cast<uint8_t>(s[i + k]);
        const bool ok = k == 1 ? in(b, lo, hi) : in(b, 0x80, 0xBF);
        if (!ok) break;
    }
    if (k == need) return need;
    if (maximal_subpart) *maximal_subpart = k;
    return 0;
}

bool is_valid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // ASCII fast path: 8 bytes at a time would be faster, but this is not on a hot path.
        if (static_cast<uint8_t>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const size_t n = valid_sequence_length(s, i, nullptr);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string repair(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    size_t i = 0;
    while (i < s.size()) {
        size_t bad = 0;
        const size_t n = valid_sequence_length(s, i, &bad);
        if (n > 0) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            out.append(kReplacement);
            i += bad;
        }
    }
    return out;
}

size_t incomplete_tail_length(std::string_view s) {
    // Look at the last up-to-3 bytes for a lead byte whose sequence runs past the end.
    const size_t n = s.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const size_t i = n - back;
        const auto b = static_cast<uint8_t>(s[i]);
        if (b < 0x80) return 0;
        if (b >= 0xC0) {  // a lead byte: is it a valid sequence cut short by the end of s?
            if (b < 0xC2 || b > 0xF4) return 0;
            size_t sub = 0;
            if (valid_sequence_length(s, i, &sub) != 0) return 0;
            return sub == back ? back : 0;
        }
    }
    return 0;
}

void append_code_point(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

}  // namespace dsv4::utf8
