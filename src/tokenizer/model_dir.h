// What the CLI and server need to get a checkpoint's tokenizer: load it from a model directory,
// find the chat control-token ids, and install the bundled DeepSeek V4 tokenizer.json into a
// directory (the built-in default model has no tokenizer of its own).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace dsv4 {

// <dir>/tokenizer.json.
Result<Tokenizer> load_tokenizer_from_model_dir(const std::string& model_dir);

// Ids of the V4 chat control tokens, looked up by their text in the tokenizer.
struct ChatTokenIds {
    int32_t bos, eos, user, assistant, think_begin, think_end, dsml;
};
Result<ChatTokenIds> chat_token_ids(const Tokenizer& tok);

// Path of the DeepSeek V4 tokenizer.json committed in tests/fixtures/tokenizer/ (the V3 file from
// npm with the V4 added tokens overlaid; see the README there). DSV4_TOKENIZER overrides it.
std::string bundled_tokenizer_path();

// Copies the bundled tokenizer to <model_dir>/tokenizer.json after checking that it loads.
Status install_bundled_tokenizer(const std::string& model_dir);

}  // namespace dsv4
