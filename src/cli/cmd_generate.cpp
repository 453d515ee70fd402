// `dsv4 generate`: text in, text out, streamed to the terminal. --prompt for one prompt, --input-file for
// a batch of prompts separated by blank lines. Prompts are used as raw text unless --chat wraps them in
// the V4 chat format (one user turn).
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/generation.h"

namespace dsv4::cli {

namespace {
// Prompts separated by one or more blank lines; surrounding newlines trimmed.
std::vector<std::string> split_prompts(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string line, cur;
    auto flush = [&] {
        while (!cur.empty() && cur.back() == '\n') cur.pop_back();
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
    };
    while (std::getline(ss, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            flush();
        else
            cur += line + "\n";
    }
    flush();
    return out;
}
}  // namespace

void add_cmd_generate(CLI::App& app) {
    struct Opts {
        std::string model, prompt, input_file, backend = "cpu", numerics;
        bool stats = false;
        SamplingFlags sampling;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("generate", "generate text from a prompt (streamed)");
    cmd->add_option("-m,--model", o->model, "checkpoint directory (default: the built-in tiny model)");
    auto* p = cmd->add_option("-p,--prompt", o->prompt, "prompt text");
    cmd->add_option("--input-file", o->input_file, "file of prompts separated by blank lines")->excludes(p);
    cmd->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    cmd->add_flag("--stats", o->stats, "print token counts and speed to stderr");
    add_numerics_option(cmd, o->numerics);
    o->sampling.add_to(cmd);
    cmd->callback([o] {
        std::vector<std::string> prompts;
        if (!o->input_file.empty()) {
            std::ifstream f(o->input_file);
            if (!f) return fail("generate", fmt::format("cannot read '{}'", o->input_file), 2);
            std::stringstream ss;
            ss << f.rdbuf();
            prompts = split_prompts(ss.str());
            if (prompts.empty())
                return fail("generate", fmt::format("'{}' holds no prompt", o->input_file), 2);
        } else if (!o->prompt.empty()) {
            prompts.push_back(o->prompt);
        } else {
            return fail("generate", "give --prompt TEXT or --input-file FILE", 2);
        }
        auto lm = load_model(o->model, o->backend, true, parse_numerics(o->numerics));
        if (!lm.is_ok()) return fail("generate", lm.message());
        if (!lm->tokenizer)
            return fail("generate",
                        fmt::format("{} has no tokenizer.json (use `dsv4 logits --ids`)", lm->dir));
        for (size_t i = 0; i < prompts.size(); ++i) {
            if (prompts.size() > 1) std::cout << (i ? "\n" : "") << "### prompt " << i + 1 << "\n";
            std::vector<int32_t> ids;
            if (auto bos = lm.value().model->config().bos_token_id; bos >= 0) ids.push_back(bos);
            lm->tokenizer->encode_append(prompts[i], false, ids);
            auto st = lm->model->new_state();
            std::cout << prompts[i] << std::flush;
            auto r = generate(lm.value(), *st, ids, o->sampling.params(),
                              [](const std::string& t) { std::cout << t << std::flush; });
            std::cout << "\n";
            if (!r.is_ok()) return fail("generate", r.message());
            if (o->stats)
                std::fprintf(
                    stderr,
                    "[%lld prompt tokens, %.1f tok/s prefill; %lld generated, %.1f tok/s; finish: %s]\n",
                    (long long)r->prompt_tokens, double(r->prompt_tokens) / std::max(r->prefill_s, 1e-9),
                    (long long)r->generated, double(r->generated) / std::max(r->decode_s, 1e-9),
                    r->finish_reason.c_str());
        }
    });
}

}  // namespace dsv4::cli
