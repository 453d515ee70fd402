// POST /v1/chat/completions: V4 chat rendering, then either an SSE stream of chat.completion.chunk
// objects (serving-design §6: role delta, reasoning_content / content / tool_calls deltas, finish chunk,
// optional usage chunk, [DONE]) or one chat.completion object built from the same Generation.
#include <memory>

#include <fmt/format.h>

#include "core/log.h"
#include "server/generation.h"
#include "server/handlers.h"

namespace dsv4 {

using ojson = nlohmann::ordered_json;

namespace {

struct ChatStream {
    std::unique_ptr<Generation> gen;
    std::string id, model;
    int64_t created = 0;
    bool include_usage = false;
    bool sent_role = false;
    bool done = false;
    std::vector<std::string> tool_ids;
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
};

ojson chunk(const ChatStream& s, ojson delta, ojson finish_reason = nullptr, ojson logprobs = nullptr) {
    ojson j;
    j["id"] = s.id;
    j["object"] = "chat.completion.chunk";
    j["created"] = s.created;
    j["model"] = s.model;
    ojson c;
    c["index"] = 0;
    c["delta"] = std::move(delta);
    c["logprobs"] = std::move(logprobs);
    c["finish_reason"] = std::move(finish_reason);
    j["choices"] = ojson::array({c});
    return j;
}

// Adjacent deltas of the same kind (and tool) become one chunk.
std::vector<ParsedDelta> merge(std::vector<ParsedDelta> in) {
    std::vector<ParsedDelta> out;
    for (auto& d : in) {
        if (!out.empty() && d.kind != ParsedDelta::Kind::tool_begin && out.back().kind == d.kind &&
            out.back().tool_index == d.tool_index) {
            out.back().text += d.text;
        } else if (!out.empty() && d.kind == ParsedDelta::Kind::tool_args &&
                   out.back().kind == ParsedDelta::Kind::tool_begin &&
                   out.back().tool_index == d.tool_index) {
            out.back().text += d.text;  // the first arguments fragment rides on the tool_begin chunk
        } else {
            out.push_back(std::move(d));
        }
    }
    return out;
}

ojson delta_json(const ParsedDelta& d, std::vector<std::string>& tool_ids, ServerContext& ctx) {
    ojson delta;
    switch (d.kind) {
        case ParsedDelta::Kind::reasoning:
            delta["reasoning_content"] = d.text;
            break;
        case ParsedDelta::Kind::content:
            delta["content"] = d.text;
            break;
        case ParsedDelta::Kind::tool_begin: {
            tool_ids.push_back(new_id(ctx, "call_"));
            ojson call;
            call["index"] = d.tool_index;
            call["id"] = tool_ids.back();
            call["type"] = "function";
            call["function"]["name"] = d.name;
            call["function"]["arguments"] = d.text;
            delta["tool_calls"] = ojson::array({call});
            break;
        }
        case ParsedDelta::Kind::tool_args: {
            ojson call;
            call["index"] = d.tool_index;
            call["function"]["arguments"] = d.text;
            delta["tool_calls"] = ojson::array({call});
            break;
        }
    }
    return delta;
}

// One provider call: waits briefly for events and writes what they produce. false = connection gone.
bool pump(ServerContext& ctx, ChatStream& s, httplib::DataSink& sink) {
    auto write = [&](const std::string& data) {
        if (!sink.write(data.data(), data.size())) return false;
        s.last_write = std::chrono::steady_clock::now();
        return true;
    };
    if (!s.sent_role) {
        s.sent_role = true;
        if (!write(sse_event(chunk(s, ojson{{"role", "assistant"}, {"content", ""}})))) return false;
    }
    GenerationOutput out;
    bool fin = s.gen->poll(std::chrono::milliseconds(100), out);
    auto deltas = merge(std::move(out.deltas));
    for (size_t i = 0; i < deltas.size(); ++i) {
        ojson lp = nullptr;
        if (i + 1 == deltas.size() && !out.logprobs.empty()) lp = ojson{{"content", out.logprobs}};
        if (!write(sse_event(chunk(s, delta_json(deltas[i], s.tool_ids, ctx), nullptr, lp)))) return false;
    }
    if (deltas.empty() && !out.logprobs.empty())
        if (!write(sse_event(chunk(s, ojson::object(), nullptr, ojson{{"content", out.logprobs}}))))
            return false;
    if (fin) {
        ojson usage = nullptr;
        if (s.include_usage) {
            usage = chunk(s, ojson::object());
            usage["choices"] = ojson::array();
            usage["usage"] = usage_json(s.gen->prompt_tokens(), s.gen->completion_tokens(),
                                        s.gen->cached_tokens(), s.gen->reasoning_tokens());
        }
        if (!finish_sse_stream(*s.gen, write, chunk(s, ojson::object(), s.gen->finish_reason()), usage))
            return false;
        s.done = true;
        sink.done();
        return true;
    }
    // comment lines keep proxies from timing out during long prefills, and find dead clients
    if (std::chrono::steady_clock::now() - s.last_write > std::chrono::milliseconds(ctx.opts.keepalive_ms))
        if (!write(": keepalive\n\n")) return false;
    return true;
}

}  // namespace

void handle_chat_completions(ServerContext& ctx, const httplib::Request& req, httplib::Response& res) {
    ParseLimits lim{ctx.opts.model_name, ctx.engine.vocab_size(), ctx.opts.default_thinking};
    ChatRequest cr;
    ApiError err;
    if (!parse_chat_request(req.body, lim, cr, err)) return send_error(res, err);

    ChatOptions copts = ctx.opts.chat;
    copts.thinking = cr.thinking;
    copts.reasoning_effort = cr.reasoning_effort;
    ojson messages = cr.tools.is_null() ? cr.messages : attach_request_tools(cr.messages, cr.tools);
    auto text = encode_messages(messages, copts);
    if (!text.is_ok()) {
        err.param = "messages";
        err.message = fmt::format("cannot render the conversation: {}", text.message());
        return send_error(res, err);
    }
    Request r;
    r.prompt = ctx.tok.encode(*text, /*allow_special=*/true);
    r.cache_salt = cr.gen.cache_salt;
    if (!finalize_sampling(ctx, cr.gen, r.prompt.size(), err)) return send_error(res, err);
    r.sampling = cr.gen.sampling;
    const int n_prompt = int(r.prompt.size());
    RequestStream rs;
    if (!submit_request(ctx, std::move(r), rs, err)) return send_error(res, err);

    auto gen = std::make_unique<Generation>(ctx, rs, n_prompt, true, cr.thinking, cr.gen.stop,
                                            cr.gen.include_stop, cr.gen.logprobs);
    const std::string id = new_id(ctx, "chatcmpl-");
    const int64_t created = int64_t(std::time(nullptr));

    if (cr.gen.stream) {
        auto s = std::make_shared<ChatStream>();
        s->gen = std::move(gen);
        s->id = id;
        s->model = ctx.opts.model_name;
        s->created = created;
        s->include_usage = cr.gen.include_usage;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [&ctx, s](size_t, httplib::DataSink& sink) {
                if (s->done) return false;
                if (pump(ctx, *s, sink)) return true;
                ctx.count_disconnect();
                s->gen->abort();  // client gone: free the sequence now
                return false;
            },
            [&ctx, s](bool success) {
                if (!success && !s->done) {
                    ctx.count_disconnect();
                    s->gen->abort();
                }
            });
        return;
    }

    // non-streaming: the same Generation, collected
    std::string content, reasoning;
    std::vector<ojson> calls;
    ojson logprobs = ojson::array();
    GenerationOutput out;
    while (!gen->poll(std::chrono::milliseconds(200), out)) {
    }
    for (auto& d : out.deltas) {
        switch (d.kind) {
            case ParsedDelta::Kind::reasoning:
                reasoning += d.text;
                break;
            case ParsedDelta::Kind::content:
                content += d.text;
                break;
            case ParsedDelta::Kind::tool_begin: {
                ojson c;
                c["id"] = new_id(ctx, "call_");
                c["type"] = "function";
                c["function"]["name"] = d.name;
                c["function"]["arguments"] = d.text;
                calls.push_back(c);
                break;
            }
            case ParsedDelta::Kind::tool_args:
                if (d.tool_index >= 0 && size_t(d.tool_index) < calls.size()) {
                    std::string a = calls[size_t(d.tool_index)]["function"]["arguments"].get<std::string>();
                    calls[size_t(d.tool_index)]["function"]["arguments"] = a + d.text;
                }
                break;
        }
    }
    for (auto& e : out.logprobs) logprobs.push_back(e);
    if (gen->finish_reason() == "error") {
        ApiError e;
        e.status = 500;
        e.type = "internal_error";
        e.message = fmt::format("generation failed: {}", gen->error());
        return send_error(res, e);
    }
    // a call cut off by max_tokens is incomplete: drop it rather than return broken arguments
    if (gen->incomplete_tool() >= 0 && size_t(gen->incomplete_tool()) < calls.size())
        calls.erase(calls.begin() + gen->incomplete_tool());
    ojson msg;
    msg["role"] = "assistant";
    msg["content"] = content.empty() && !calls.empty() ? ojson(nullptr) : ojson(content);
    if (cr.thinking) msg["reasoning_content"] = reasoning;
    if (!calls.empty()) msg["tool_calls"] = calls;
    ojson choice;
    choice["index"] = 0;
    choice["message"] = msg;
    choice["logprobs"] = cr.gen.logprobs ? ojson{{"content", logprobs}} : ojson(nullptr);
    choice["finish_reason"] = gen->finish_reason();
    ojson j;
    j["id"] = id;
    j["object"] = "chat.completion";
    j["created"] = created;
    j["model"] = ctx.opts.model_name;
    j["choices"] = ojson::array({choice});
    j["usage"] = usage_json(gen->prompt_tokens(), gen->completion_tokens(), gen->cached_tokens(),
                            gen->reasoning_tokens());
    res.set_content(dump_json(j), "application/json");
}

}  // namespace dsv4
