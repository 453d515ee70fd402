// Added-token matching; see added_tokens.h.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/log.h"

namespace dsv4 {

void AddedTokenMatcher::Trie::add(std::string_view s, int32_t id) {
    int32_t node = 0;
    for (char ch : s) {
        const auto b = static_cast<uint8_t>(ch);
        auto& kids = nodes[node].children;
        auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, INT32_MIN));
        if (it != kids.end() && it->first == b) {
            node = it->second;
        } else {
            const auto next = static_cast<int32_t>(nodes.size());
            kids.insert(it, {b, next});
            nodes.emplace_back();  // invalidates `kids`; not used after this
            node = next;
        }
    }
    nodes[node].token_id = id;
    first_byte[static_cast<uint8_t>(s[0])] = true;
}

size_t AddedTokenMatcher::Trie::longest_at(std::string_view text, size_t i, int32_t* id) const {
    size_t best = 0;
    int32_t node = 0;
    for (size_t k = i; k < text.size(); ++k) {
        const auto b = static_cast<uint8_t>(text[k]);
        const auto& kids = nodes[node].children;
        auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, INT32_MIN));
        if (it == kids.end() || it->first != b) break;
        node = it->second;
        if (nodes[node].token_id >= 0) {
            best = k + 1 - i;
            *id = nodes[node].token_id;
        }
    }
    return best;
}

Result<AddedTokenMatcher> AddedTokenMatcher::from_json(const nlohmann::json& j) {
    AddedTokenMatcher m;
    if (j.is_null()) return m;
    if (!j.is_array()) return error("added_tokens: expected an array, found {}", j.type_name());
    for (size_t i = 0; i < j.size(); ++i) {
        const auto& t = j[i];
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
            !t["content"].is_string())
            return error("added_tokens[{}]: expected {{\"id\": int, \"content\": string, ...}}, found {}", i,
                         t.dump());
        AddedToken tok{t["id"].get<int32_t>(), t["content"].get<std::string>(), t.value("special", false),
                       t.value("normalized", false)};
        if (tok.id < 0) return error("added_tokens[{}]: negative id {}", i, tok.id);
        if (tok.content.empty()) return error("added_tokens[{}] (id {}): empty content", i, tok.id);
        // NOTE(tok): lstrip/rstrip/single_word change matching; DeepSeek sets all three false.
        for (const char* flag : {"lstrip", "rstrip", "single_word"})
            if (t.value(flag, false))
                log_warn("added_tokens[{}] '{}': {}=true is not supported and is ignored", i, tok.content,
                         flag);
        (tok.normalized ? m.normalized_ : m.raw_).add(tok.content, tok.id);
        m.tokens_.push_back(std::move(tok));
    }
    return m;
}

void AddedTokenMatcher::split_with(const Trie& trie, std::string_view text, size_t begin, size_t end,
                                   std::vector<TextSegment>& out) {
    const std::string_view sub = text.substr(0, end);
    size_t gap = begin;
    for (size_t i = begin; i < end;) {
        int32_t id = -1;
        const size_t len = trie.first_byte[static_cast<uint8_t>(sub[i])] ? trie.longest_at(sub, i, &id) : 0;
        if (len == 0) {
            ++i;
            continue;
        }
        if (i > gap) out.push_back({gap, i, -1});
        out.push_back({i, i + len, id});
        i += len;
        gap = i;
    }
    if (end > gap) out.push_back({gap, end, -1});
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
    if (raw_.empty() && normalized_.empty()) {
        if (!text.empty()) out.push_back({0, text.size(), -1});
        return;
    }
    thread_local std::vector<TextSegment> first;
    first.clear();
    if (raw_.empty()) {
        if (!text.empty()) first.push_back({0, text.size(), -1});
    } else {
        split_with(raw_, text, 0, text.size(), first);
    }
    for (const TextSegment& s : first) {
        if (s.id >= 0 || normalized_.empty()) {
            out.push_back(s);
        } else {
            split_with(normalized_, text, s.begin, s.end, out);
        }
    }
}

}  // namespace dsv4
