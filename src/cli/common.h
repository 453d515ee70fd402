// Shared pieces of the CLI subcommands: the built-in default model, loading a model (+ its tokenizer),
// and the sampling flags. Subcommands stay thin (style.md §1).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"
#include "runtime/request.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::cli {

// Where the built-in default model lives: $DSV4_DEFAULT_MODEL, else $XDG_CACHE_HOME/dsv4/default-tiny
// (or ~/.cache/dsv4/default-tiny).
std::string default_model_dir();
// Creates the built-in default model if it is missing: the tiny config of spec §15 with the real
// DeepSeek V4 vocabulary (129,280) and tokenizer, random weights (seed 1234). Returns its directory.
Result<std::string> ensure_default_model();

struct LoadedModel {
    std::unique_ptr<Model> model;
    std::optional<Tokenizer> tokenizer;  // absent when the directory has no tokenizer.json
    std::string dir;
};
// `dir` empty = the built-in default model.
Result<LoadedModel> load_model(const std::string& dir, const std::string& backend, bool verbose = true,
                               std::optional<Numerics> numerics = std::nullopt);
// `--numerics exact|reference` (spec §16 item 7; unset: per checkpoint, see LoadOptions::numerics).
void add_numerics_option(CLI::App* cmd, std::string& value);
std::optional<Numerics> parse_numerics(const std::string& value);

struct SamplingFlags {
    float temperature = 0.0f;  // greedy by default: reproducible demos
    int top_k = -1;
    float top_p = 1.0f;
    float min_p = 0.0f;
    float repetition_penalty = 1.0f;
    uint64_t seed = 0;
    int max_tokens = 64;
    bool ignore_eos = false;
    void add_to(CLI::App* cmd);
    SamplingParams params() const;
};

// Prints `msg` as "dsv4 <cmd>: error: msg" and sets exit code 1 (runtime failure).
void fail(const std::string& cmd, const std::string& msg, int code = 1);

}  // namespace dsv4::cli
