// `dsv4 tokenize --model DIR [--jsonl FILE] [TEXT...]`: token ids from the checkpoint's tokenizer.json.
// With --jsonl, each input line {"text": ...} gives one output line {"ids": [...]}; otherwise the
// arguments (joined by spaces) are one text. --plain treats the text as untrusted (no control tokens).
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "tokenizer/model_dir.h"

namespace dsv4::cli {

namespace {

std::string ids_line(const std::vector<int32_t>& ids) {
    return nlohmann::json{{"ids", ids}}.dump();
}

// Returns the exit code.
int tokenize_jsonl(const Tokenizer& tok, const std::string& path, bool allow_special) {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (path != "-") {
        file.open(path);
        if (!file) {
            fail("tokenize", fmt::format("{}: cannot open", path));
            return 1;
        }
        in = &file;
    }
    std::string line;
    for (size_t n = 1; std::getline(*in, line); ++n) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
            fail("tokenize", fmt::format("{}:{}: expected a JSON object {{\"text\": \"...\"}}", path, n));
            return 1;
        }
        std::cout << ids_line(tok.encode(j["text"].get_ref<const std::string&>(), allow_special)) << '\n';
    }
    return 0;
}

}  // namespace

void add_cmd_tokenize(CLI::App& app) {
    struct Opts {
        std::string model, jsonl;
        std::vector<std::string> text;
        bool plain = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("tokenize", "print the token ids of text (one JSON line per input)");
    cmd->add_option("-m,--model", o->model,
                    "checkpoint directory with tokenizer.json (default: the built-in model)");
    auto* jl = cmd->add_option("--jsonl", o->jsonl, "file of {\"text\": ...} lines ('-' for stdin)");
    cmd->add_option("text", o->text, "text to tokenize (when no --jsonl)")->excludes(jl);
    cmd->add_flag("--plain", o->plain, "treat the text as untrusted: control-token strings stay plain text");
    cmd->callback([o] {
        if (o->jsonl.empty() && o->text.empty()) return fail("tokenize", "give TEXT or --jsonl FILE", 2);
        std::string dir = o->model;
        if (dir.empty()) {
            auto d = ensure_default_model();
            if (!d.is_ok()) return fail("tokenize", d.message());
            dir = d.value();
        }
        auto tok = load_tokenizer_from_model_dir(dir);
        if (!tok.is_ok()) return fail("tokenize", tok.message());
        if (!o->jsonl.empty()) {
            exit_code() = tokenize_jsonl(tok.value(), o->jsonl, !o->plain);
            return;
        }
        std::string text;
        for (size_t i = 0; i < o->text.size(); ++i) text += (i ? " " : "") + o->text[i];
        std::cout << ids_line(tok->encode(text, !o->plain)) << '\n';
    });
}

}  // namespace dsv4::cli
