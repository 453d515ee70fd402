// CLI shared helpers: default model creation, model + tokenizer loading, sampling flags.
#include "cli/common.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli/commands.h"
#include "core/log.h"
#include "model/tiny.h"
#include "tokenizer/model_dir.h"

namespace dsv4::cli {

namespace fs = std::filesystem;

std::string default_model_dir() {
    if (const char* e = std::getenv("DSV4_DEFAULT_MODEL")) return e;
    if (const char* x = std::getenv("XDG_CACHE_HOME")) return std::string(x) + "/dsv4/default-tiny";
    if (const char* h = std::getenv("HOME")) return std::string(h) + "/.cache/dsv4/default-tiny";
    return "dsv4-default-tiny";
}

Result<std::string> ensure_default_model() {
    const std::string dir = default_model_dir();
    if (fs::exists(dir + "/config.json") && fs::exists(dir + "/tokenizer.json")) return dir;
    const std::string tok = bundled_tokenizer_path();
    if (!fs::exists(tok))
        return error(
            "the built-in default model needs the DeepSeek V4 tokenizer at '{}' (set DSV4_TOKENIZER "
            "to a tokenizer.json, or pass --model DIR)",
            tok);
    log_info("creating the built-in default model (tiny random-weight V4, real tokenizer) in {}", dir);
    Dsv4Config cfg = tiny_config();
    cfg.vocab_size = 129280;
    std::error_code ec;
    fs::remove_all(dir, ec);
    DSV4_TRY(write_random_checkpoint(dir, cfg, TinyOptions{}));
    DSV4_TRY(install_bundled_tokenizer(dir));
    return dir;
}

void add_numerics_option(CLI::App* cmd, std::string& value) {
    cmd->add_option(
           "--numerics", value,
           "exact (HF parity) or reference (REF FP8/FP4 roundings); default: reference for FP8 checkpoints")
        ->check(CLI::IsMember({"exact", "reference"}));
}

std::optional<Numerics> parse_numerics(const std::string& value) {
    if (value.empty()) return std::nullopt;
    return value == "reference" ? Numerics::reference : Numerics::exact;
}

Result<LoadedModel> load_model(const std::string& dir_arg, const std::string& backend, bool verbose,
                               std::optional<Numerics> numerics) {
    LoadedModel lm;
    if (dir_arg.empty()) {
        DSV4_TRY_ASSIGN(lm.dir, ensure_default_model());
    } else {
        lm.dir = dir_arg;
    }
    if (!fs::is_directory(lm.dir)) return error("model directory '{}' does not exist", lm.dir);
    LoadOptions opts;
    opts.backend = backend;
    opts.verbose = verbose;
    opts.numerics = numerics;
    DSV4_TRY_ASSIGN(lm.model, Model::load(lm.dir, opts));
    const std::string tok = lm.dir + "/tokenizer.json";
    if (fs::exists(tok)) {
        DSV4_TRY_ASSIGN(lm.tokenizer, Tokenizer::load(tok));
        if (lm.tokenizer->vocab_size() > lm.model->config().vocab_size)
            return error("{}: the tokenizer has {} ids but the model's vocab_size is {}", lm.dir,
                         lm.tokenizer->vocab_size(), lm.model->config().vocab_size);
    }
    return lm;
}

void SamplingFlags::add_to(CLI::App* cmd) {
    cmd->add_option("--temperature", temperature, "sampling temperature (0 = greedy)")
        ->check(CLI::Range(0.0, 100.0));
    cmd->add_option("--top-k", top_k, "keep the k most likely tokens (-1 = off)");
    cmd->add_option("--top-p", top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--min-p", min_p, "drop tokens below min-p x the best probability")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--repetition-penalty", repetition_penalty, "HF repetition penalty")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--seed", seed, "sampling seed");
    cmd->add_option("-n,--max-tokens", max_tokens, "tokens to generate")->check(CLI::Range(1, 1 << 20));
    cmd->add_flag("--ignore-eos", ignore_eos, "keep generating past the end-of-sequence token");
}

SamplingParams SamplingFlags::params() const {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repetition_penalty = repetition_penalty;
    p.seed = seed;
    p.max_tokens = max_tokens;
    p.ignore_eos = ignore_eos;
    return p;
}

void fail(const std::string& cmd, const std::string& msg, int code) {
    std::fprintf(stderr, "dsv4 %s: error: %s\n", cmd.c_str(), msg.c_str());
    exit_code() = code;
}

}  // namespace dsv4::cli
