// `dsv4 chat`: an interactive chat loop in the V4 chat format. Commands: /exit, /clear, /think on|off.
// Each turn re-renders the conversation with encode_messages; when the new prompt extends what the
// sequence state already holds, only the new tokens are fed (otherwise the state is rebuilt).
#include <unistd.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/generation.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/completion_parser.h"

namespace dsv4::cli {

namespace {
struct ChatSession {
    const LoadedModel& lm;
    SamplingParams params;
    bool thinking;
    bool color;
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    std::unique_ptr<SeqState> state{};
    std::vector<int32_t> fed{};  // ids the state has consumed

    void clear() {
        messages = nlohmann::ordered_json::array();
        state = lm.model->new_state();
        fed.clear();
    }

    Status turn(const std::string& user_text) {
        messages.push_back({{"role", "user"}, {"content", user_text}});
        ChatOptions opts;
        opts.thinking = thinking;
        DSV4_TRY_ASSIGN(std::string prompt_text, encode_messages(messages, opts));
        std::vector<int32_t> ids = lm.tokenizer->encode(prompt_text, true);
        size_t common = 0;
        while (common < fed.size() && common < ids.size() && fed[common] == ids[common]) ++common;
        if (common < fed.size()) {  // history re-rendered differently (e.g. dropped reasoning): rebuild
            state = lm.model->new_state();
            fed.clear();
            common = 0;
        }
        std::vector<int32_t> suffix(ids.begin() + long(common), ids.end());
        CompletionParser parser(thinking);
        bool in_reasoning = false;
        auto show = [&](const CompletionDelta& d) {
            if (!d.reasoning.empty()) {
                if (color && !in_reasoning) std::cout << "\x1b[2m";
                in_reasoning = true;
                std::cout << d.reasoning;
            }
            if (!d.content.empty()) {
                if (color && in_reasoning) std::cout << "\x1b[0m";
                if (in_reasoning) std::cout << "\n";
                in_reasoning = false;
                std::cout << d.content;
            }
            for (const auto& call : d.tool_calls)
                std::cout << "\n[tool call " << call.name << " " << call.arguments << "]";
            std::cout << std::flush;
        };
        std::vector<int32_t> out_ids;
        auto stats = generate(
            lm, *state, suffix, params, [&](const std::string& t) { show(parser.push(t)); }, &out_ids);
        show(parser.finish());
        if (color && in_reasoning) std::cout << "\x1b[0m";
        std::cout << "\n";
        DSV4_TRY(stats.status());
        fed = ids;
        fed.insert(fed.end(), out_ids.begin(), out_ids.end());
        // The last sampled token was never fed to the state (generation stopped after sampling it).
        if (!fed.empty()) fed.pop_back();
        const auto& r = parser.result();
        nlohmann::ordered_json msg = {{"role", "assistant"}, {"content", r.content}};
        if (!r.reasoning_content.empty()) msg["reasoning_content"] = r.reasoning_content;
        messages.push_back(msg);
        return Status::ok();
    }
};
}  // namespace

void add_cmd_chat(CLI::App& app) {
    struct Opts {
        std::string model, backend = "cpu";
        bool think = false;
        SamplingFlags sampling;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("chat", "interactive chat (/exit, /clear, /think on|off)");
    cmd->add_option("-m,--model", o->model, "checkpoint directory (default: the built-in tiny model)");
    cmd->add_option("--backend", o->backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
    cmd->add_flag("--think", o->think, "start in thinking mode");
    o->sampling.max_tokens = 256;
    o->sampling.add_to(cmd);
    cmd->callback([o] {
        auto lm = load_model(o->model, o->backend, false);
        if (!lm.is_ok()) return fail("chat", lm.message());
        if (!lm->tokenizer) return fail("chat", fmt::format("{} has no tokenizer.json", lm->dir));
        ChatSession chat{lm.value(), o->sampling.params(), o->think, bool(isatty(STDOUT_FILENO))};
        chat.clear();
        const bool tty = isatty(STDIN_FILENO);
        if (tty) std::cout << "dsv4 chat (" << lm->dir << "). /exit, /clear, /think on|off\n";
        std::string line;
        while (true) {
            if (tty) std::cout << (chat.thinking ? "think> " : "> ") << std::flush;
            if (!std::getline(std::cin, line)) break;
            if (line.empty()) continue;
            if (line == "/exit" || line == "/quit") break;
            if (line == "/clear") {
                chat.clear();
                std::cout << "[conversation cleared]\n";
                continue;
            }
            if (line == "/think on" || line == "/think off") {
                chat.thinking = line == "/think on";
                std::cout << "[thinking " << (chat.thinking ? "on" : "off") << "]\n";
                continue;
            }
            if (line[0] == '/') {
                std::cout << "[unknown command " << line << "; try /exit, /clear, /think on|off]\n";
                continue;
            }
            if (!tty) std::cout << "> " << line << "\n";
            Status s = chat.turn(line);
            if (!s.is_ok()) return fail("chat", s.message());
        }
    });
}

}  // namespace dsv4::cli
