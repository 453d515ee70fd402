// Tokenizer: tokenizer.json loading and the encode pipeline (added tokens -> Split regexes ->
// byte-level BPE); see tokenizer.h and shared/docs/tokenizer-and-chat.md §1.4 for the semantics.
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv4 {

struct Tokenizer::Impl {
    std::unique_ptr<BpeModel> bpe;
    PreTokenizer pre;
    AddedTokenMatcher added;
    std::vector<std::string> id_bytes;  // id -> raw bytes (added tokens: their content)
    std::vector<uint8_t> flags;         // id -> kAdded | kSpecial
    std::unordered_map<std::string, int32_t> added_ids;
    static constexpr uint8_t kAdded = 1, kSpecial = 2;

    Impl(std::unique_ptr<BpeModel> b, PreTokenizer p, AddedTokenMatcher a)
        : bpe(std::move(b)), pre(std::move(p)), added(std::move(a)) {}

    void encode_plain(std::string_view text, std::vector<int32_t>& out) const {
        thread_local std::vector<PieceSpan> pieces;
        pieces.clear();
        pre.split(text, pieces);
        for (const PieceSpan& p : pieces) bpe->encode_piece(text.substr(p.begin, p.end - p.begin), out);
    }
};

namespace {

Status check_supported(const nlohmann::json& j) {
    const auto& norm = j.contains("normalizer") ? j["normalizer"] : nlohmann::json();
    const bool empty_norm = norm.is_null() || (norm.value("type", "") == "Sequence" &&
                                               norm.contains("normalizers") && norm["normalizers"].empty());
    if (!empty_norm) return error("normalizer {} is not supported (DeepSeek uses none)", norm.dump());
    const auto& dec = j.contains("decoder") ? j["decoder"] : nlohmann::json();
    if (!dec.is_null() && dec.value("type", "") != "ByteLevel")
        return error("decoder type '{}' is not supported (supported: ByteLevel)", dec.value("type", "?"));
    // The post-processor matters only if it adds tokens; ByteLevel (DeepSeek) adds none.
    const auto& post = j.contains("post_processor") ? j["post_processor"] : nlohmann::json();
    if (!post.is_null() && post.value("type", "") != "ByteLevel")
        return error("post_processor type '{}' is not supported (supported: ByteLevel, null)",
                     post.value("type", "?"));
    return Status::ok();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_json_string(std::string_view json, std::string_view origin) {
    nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return error("{}: not valid JSON", origin);
    if (!j.is_object()) return error("{}: expected a JSON object at the top level", origin);
    const auto ctx = std::string(origin);
    DSV4_TRY(check_supported(j).with_context(ctx));
    auto pre = PreTokenizer::from_json(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : nlohmann::json());
    if (!pre) return pre.status().with_context(ctx);
    auto bpe = BpeModel::from_json(j.contains("model") ? j["model"] : nlohmann::json());
    if (!bpe) return bpe.status().with_context(ctx);
    auto added =
        AddedTokenMatcher::from_json(j.contains("added_tokens") ? j["added_tokens"] : nlohmann::json());
    if (!added) return added.status().with_context(ctx);

    auto impl =
        std::make_shared<Impl>(std::move(bpe.value()), std::move(pre.value()), std::move(added.value()));
    int32_t n = 0;
    for (const auto& [s, id] : impl->bpe->vocab()) n = std::max(n, id + 1);
    for (const AddedToken& t : impl->added.tokens()) n = std::max(n, t.id + 1);
    impl->id_bytes.resize(n);
    impl->flags.assign(n, 0);
    for (const auto& [s, id] : impl->bpe->vocab()) {
        // DeepSeek's vocab also spells BOS/EOS/pad (ids 0-2) literally, outside the byte alphabet;
        // BPE can never produce them, and added_tokens gives them their text below.
        auto bytes = byte_level::to_bytes(s);
        impl->id_bytes[id] = bytes ? std::move(*bytes) : s;
    }
    for (const AddedToken& t : impl->added.tokens()) {
        impl->id_bytes[t.id] = t.content;
        impl->flags[t.id] = Impl::kAdded | (t.special ? Impl::kSpecial : 0);
        impl->added_ids[t.content] = t.id;
    }
    Tokenizer tok;
    tok.impl_ = std::move(impl);
    return tok;
}

Result<Tokenizer> Tokenizer::load(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return error("{}: cannot open tokenizer file", path);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f.good() && !f.eof()) return error("{}: read error", path);
    return from_json_string(ss.str(), path);
}

void Tokenizer::encode_append(std::string_view text, bool allow_special, std::vector<int32_t>& out) const {
    std::string repaired;
    if (!utf8::is_valid(text)) {
        repaired = utf8::repair(text);
        text = repaired;
    }
    if (!allow_special) return impl_->encode_plain(text, out);
    std::vector<TextSegment> segs;  // not thread_local: encode_plain below reuses its own buffers
    impl_->added.split(text, segs);
    for (const TextSegment& s : segs) {
        if (s.id >= 0) {
            out.push_back(s.id);
        } else {
            impl_->encode_plain(text.substr(s.begin, s.end - s.begin), out);
        }
    }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    encode_append(text, allow_special, out);
    return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
    std::string bytes;
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size()) continue;
        if (skip_special && (impl_->flags[id] & Impl::kSpecial)) continue;
        bytes += impl_->id_bytes[id];
    }
    return utf8::is_valid(bytes) ? bytes : utf8::repair(bytes);
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
    if (id < 0 || id >= vocab_size()) return {};
    return impl_->id_bytes[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
    auto a = impl_->added_ids.find(std::string(token));
    if (a != impl_->added_ids.end()) return a->second;
    auto v = impl_->bpe->vocab().find(std::string(token));
    if (v != impl_->bpe->vocab().end()) return v->second;
    return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
    return id >= 0 && id < vocab_size() && (impl_->flags[id] & Impl::kSpecial);
}
bool Tokenizer::is_added(int32_t id) const {
    return id >= 0 && id < vocab_size() && (impl_->flags[id] & Impl::kAdded);
}
int32_t Tokenizer::vocab_size() const {
    return static_cast<int32_t>(impl_->id_bytes.size());
}

}  // namespace dsv4
