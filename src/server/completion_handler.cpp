// POST /v1/completions: a raw prompt (text or token ids, no chat template) -> text_completion objects,
// streamed as SSE or returned whole. Logprobs use the legacy completions shape.
#include <memory>

#include <fmt/format.h>

#include "server/generation.h"
#include "server/handlers.h"

namespace dsv4 {

using ojson = nlohmann::ordered_json;

namespace {

// chat-shaped logprob entries -> {tokens, token_logprobs, top_logprobs, text_offset}
ojson legacy_logprobs(const std::vector<ojson>& entries, size_t offset0) {
    ojson j;
    j["tokens"] = ojson::array();
    j["token_logprobs"] = ojson::array();
    j["top_logprobs"] = ojson::array();
    j["text_offset"] = ojson::array();
    size_t off = offset0;
    for (auto& e : entries) {
        const std::string t = e["token"].get<std::string>();
        j["tokens"].push_back(t);
        j["token_logprobs"].push_back(e["logprob"]);
        ojson top = ojson::object();
        for (auto& a : e["top_logprobs"]) top[a["token"].get<std::string>()] = a["logprob"];
        j["top_logprobs"].push_back(top);
        j["text_offset"].push_back(off);
        off += t.size();
    }
    return j;
}

struct CompletionStream {
    std::unique_ptr<Generation> gen;
    std::string id, model, echo_text;
    int64_t created = 0;
    bool include_usage = false;
    bool logprobs = false;
    bool done = false;
    size_t text_offset = 0;
    std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
};

ojson completion_obj(const std::string& id, int64_t created, const std::string& model,
                     const std::string& text, ojson logprobs, ojson finish) {
    ojson c;
    c["index"] = 0;
    c["text"] = text;
    c["logprobs"] = std::move(logprobs);
    c["finish_reason"] = std::move(finish);
    ojson j;
    j["id"] = id;
    j["object"] = "text_completion";
    j["created"] = created;
    j["model"] = model;
    j["choices"] = ojson::array({c});
    return j;
}

bool pump(ServerContext& ctx, CompletionStream& s, httplib::DataSink& sink) {
    auto write = [&](const std::string& data) {
        if (!sink.write(data.data(), data.size())) return false;
        s.last_write = std::chrono::steady_clock::now();
        return true;
    };
    GenerationOutput out;
    bool fin = s.gen->poll(std::chrono::milliseconds(100), out);
    std::string text = std::move(s.echo_text);
    s.echo_text.clear();
    for (auto& d : out.deltas) text += d.text;
    if (!text.empty() || !out.logprobs.empty()) {
        ojson lp = s.logprobs ? legacy_logprobs(out.logprobs, s.text_offset) : ojson(nullptr);
        s.text_offset += text.size();
        if (!write(sse_event(completion_obj(s.id, s.created, s.model, text, lp, nullptr)))) return false;
    }
    if (fin) {
        ojson usage = nullptr;
        if (s.include_usage) {
            usage = completion_obj(s.id, s.created, s.model, "", nullptr, nullptr);
            usage["choices"] = ojson::array();
            usage["usage"] =
                usage_json(s.gen->prompt_tokens(), s.gen->completion_tokens(), s.gen->cached_tokens(), 0);
        }
        ojson final_chunk = completion_obj(s.id, s.created, s.model, "", nullptr, s.gen->finish_reason());
        if (!finish_sse_stream(*s.gen, write, final_chunk, usage)) return false;
        s.done = true;
        sink.done();
        return true;
    }
    if (std::chrono::steady_clock::now() - s.last_write > std::chrono::milliseconds(ctx.opts.keepalive_ms))
        if (!write(": keepalive\n\n")) return false;
    return true;
}

}  // namespace

void handle_completions(ServerContext& ctx, const httplib::Request& req, httplib::Response& res) {
    ParseLimits lim{ctx.opts.model_name, ctx.engine.vocab_size(), ctx.opts.default_thinking};
    CompletionRequest cr;
    ApiError err;
    if (!parse_completion_request(req.body, lim, cr, err)) return send_error(res, err);
    Request r;
    r.prompt = cr.prompt_is_ids ? cr.prompt_ids : ctx.tok.encode(cr.prompt_text, /*allow_special=*/true);
    if (r.prompt.empty()) {
        err.param = "prompt";
        err.message = "the prompt encodes to zero tokens";
        return send_error(res, err);
    }
    r.cache_salt = cr.gen.cache_salt;
    if (!finalize_sampling(ctx, cr.gen, r.prompt.size(), err)) {
        err.param = "prompt";
        return send_error(res, err);
    }
    r.sampling = cr.gen.sampling;
    const int n_prompt = int(r.prompt.size());
    std::string echo;
    if (cr.echo) echo = cr.prompt_is_ids ? ctx.tok.decode(cr.prompt_ids) : cr.prompt_text;
    RequestStream rs;
    if (!submit_request(ctx, std::move(r), rs, err)) return send_error(res, err);
    auto gen = std::make_unique<Generation>(ctx, rs, n_prompt, false, false, cr.gen.stop, cr.gen.include_stop,
                                            cr.gen.logprobs);
    const std::string id = new_id(ctx, "cmpl-");
    const int64_t created = int64_t(std::time(nullptr));

    if (cr.gen.stream) {
        auto s = std::make_shared<CompletionStream>();
        s->gen = std::move(gen);
        s->id = id;
        s->model = ctx.opts.model_name;
        s->created = created;
        s->include_usage = cr.gen.include_usage;
        s->logprobs = cr.gen.logprobs;
        s->echo_text = echo;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [&ctx, s](size_t, httplib::DataSink& sink) {
                if (s->done) return false;
                if (pump(ctx, *s, sink)) return true;
                ctx.count_disconnect();
                s->gen->abort();
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

    GenerationOutput out;
    while (!gen->poll(std::chrono::milliseconds(200), out)) {
    }
    if (gen->finish_reason() == "error") {
        ApiError e;
        e.status = 500;
        e.type = "internal_error";
        e.message = fmt::format("generation failed: {}", gen->error());
        return send_error(res, e);
    }
    std::string text = echo;
    for (auto& d : out.deltas) text += d.text;
    ojson lp = cr.gen.logprobs ? legacy_logprobs(out.logprobs, echo.size()) : ojson(nullptr);
    ojson j = completion_obj(id, created, ctx.opts.model_name, text, lp, gen->finish_reason());
    j["usage"] = usage_json(gen->prompt_tokens(), gen->completion_tokens(), gen->cached_tokens(), 0);
    res.set_content(dump_json(j), "application/json");
}

}  // namespace dsv4
