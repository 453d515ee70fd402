// Model-directory helpers; see model_dir.h.
#include "tokenizer/model_dir.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "tokenizer/chat_encoding.h"

namespace dsv4 {

namespace fs = std::filesystem;

Result<Tokenizer> load_tokenizer_from_model_dir(const std::string& model_dir) {
    const fs::path p = fs::path(model_dir) / "tokenizer.json";
    std::error_code ec;
    if (!fs::exists(p, ec))
        return error(
            "{}: no tokenizer.json in the model directory (hint: copy the checkpoint's, or the DeepSeek V4 "
            "one at {})",
            model_dir, bundled_tokenizer_path());
    return Tokenizer::load(p.string());
}

Result<ChatTokenIds> chat_token_ids(const Tokenizer& tok) {
    ChatTokenIds ids{};
    const std::pair<int32_t*, const char*> wanted[] = {{&ids.bos, chat_tokens::kBos},
                                                       {&ids.eos, chat_tokens::kEos},
                                                       {&ids.user, chat_tokens::kUser},
                                                       {&ids.assistant, chat_tokens::kAssistant},
                                                       {&ids.think_begin, chat_tokens::kThinkBegin},
                                                       {&ids.think_end, chat_tokens::kThinkEnd},
                                                       {&ids.dsml, chat_tokens::kDsml}};
    for (const auto& [dst, text] : wanted) {
        const auto id = tok.token_id(text);
        if (!id) return error("tokenizer has no '{}' token; is this a DeepSeek V4 tokenizer.json?", text);
        *dst = *id;
    }
    return ids;
}

std::string bundled_tokenizer_path() {
    if (const char* env = std::getenv("DSV4_TOKENIZER"); env && *env) return env;
    // NOTE(tok): __FILE__ is this source's absolute path under CMake, so the committed fixture is found
    // from a build tree without installing anything; an installed binary sets DSV4_TOKENIZER.
    const fs::path src = fs::path(__FILE__).parent_path().parent_path().parent_path();
    return (src / "tests/fixtures/tokenizer/deepseek_v4_tokenizer.json").string();
}

Status install_bundled_tokenizer(const std::string& model_dir) {
    const std::string src = bundled_tokenizer_path();
    auto tok = Tokenizer::load(src);
    if (!tok) return tok.status().with_context("bundled tokenizer (set DSV4_TOKENIZER to its path)");
    std::error_code ec;
    fs::create_directories(model_dir, ec);
    const fs::path dst = fs::path(model_dir) / "tokenizer.json";
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) return error("{}: cannot write tokenizer.json: {}", dst.string(), ec.message());
    return Status::ok();
}

}  // namespace dsv4
