// Added tokens (tokenizer.json "added_tokens"): split out of the text before pre-tokenization with
// leftmost-longest matching, in two passes like HF's AddedVocabulary: first the tokens with
// normalized=false over the whole text, then the normalized=true ones inside the remaining gaps.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace dsv4 {

struct AddedToken {
    int32_t id;
    std::string content;
    bool special;
    bool normalized;
};

// A span of the input: either an added token (id >= 0) or plain text to pre-tokenize (id = -1).
struct TextSegment {
    size_t begin, end;
    int32_t id;
};

class AddedTokenMatcher {
public:
    static Result<AddedTokenMatcher> from_json(const nlohmann::json& added_tokens);

    // Splits text into segments in order; gaps that contain no added token come back as id -1.
    void split(std::string_view text, std::vector<TextSegment>& out) const;

    const std::vector<AddedToken>& tokens() const { return tokens_; }

private:
    // A byte trie; children are a sorted (byte, node) list since most nodes have one child.
    struct Node {
        std::vector<std::pair<uint8_t, int32_t>> children;
        int32_t token_id = -1;
    };
    struct Trie {
        std::vector<Node> nodes{Node{}};
        bool first_byte[256] = {};
        void add(std::string_view s, int32_t id);
        // Longest token starting at text[i]: its length, or 0.
        size_t longest_at(std::string_view text, size_t i, int32_t* id) const;
        bool empty() const { return nodes.size() == 1; }
    };
    static void split_with(const Trie& trie, std::string_view text, size_t begin, size_t end,
                           std::vector<TextSegment>& out);

    std::vector<AddedToken> tokens_;
    Trie raw_;         // normalized=false: matched first
    Trie normalized_;  // normalized=true: matched in the gaps left by the first pass
};

}  // namespace dsv4
