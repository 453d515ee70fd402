// Helpers shared by the handlers: errors, JSON/SSE formatting, submission, defaults; plus the small
// endpoints (models, health).
#include <random>

#include <fmt/format.h>

#include "server/handlers.h"

namespace dsv4 {

using ojson = nlohmann::ordered_json;

void send_error(httplib::Response& res, const ApiError& err) {
    res.status = err.status;
    if (err.status == 429) res.set_header("Retry-After", "1");
    res.set_content(error_body(err), "application/json");
}

std::string dump_json(const ojson& j) {
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string sse_event(const ojson& j) {
    return "data: " + dump_json(j) + "\n\n";
}

std::string new_id(ServerContext& ctx, const char* prefix) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return fmt::format("{}{:x}{:012x}", prefix, ctx.next_id++, rng() & 0xffffffffffffull);
}

bool finalize_sampling(ServerContext& ctx, GenerationParams& g, size_t n_prompt, ApiError& err) {
    const int64_t n_ctx = ctx.engine.ctx_size();
    if (int64_t(n_prompt) >= n_ctx) {
        err.status = 400;
        err.param = "messages";
        err.code = "context_length_exceeded";
        err.message = fmt::format(
            "this model's maximum context length is {} tokens, but the prompt has {} tokens "
            "(at least one token must remain for the completion)",
            n_ctx, n_prompt);
        return false;
    }
    if (!g.max_tokens_given) g.sampling.max_tokens = int(n_ctx - int64_t(n_prompt));
    if (!g.seed_given) {
        // no seed asked for: draw one, so each request is still reproducible from the logs
        thread_local std::mt19937_64 rng{std::random_device{}()};
        g.sampling.seed = rng();
    }
    return true;
}

bool submit_request(ServerContext& ctx, Request r, RequestStream& out, ApiError& err) {
    SubmitError why = SubmitError::none;
    auto rs = ctx.engine.submit(std::move(r), &why);
    if (rs.is_ok()) {
        out = std::move(rs).value();
        return true;
    }
    err.message = rs.message();
    err.param.clear();
    switch (why) {
        case SubmitError::busy:
            err.status = 429;
            err.type = "server_busy";
            err.code = "server_busy";
            break;
        case SubmitError::stopped:
            err.status = 503;
            err.type = "unavailable_error";
            break;
        case SubmitError::too_long:
            err.status = 400;
            err.code = "context_length_exceeded";
            err.param = "max_tokens";
            break;
        default:
            err.status = 400;
            break;
    }
    return false;
}

ojson usage_json(int n_prompt, int n_completion, int n_cached, int n_reasoning) {
    ojson u;
    u["prompt_tokens"] = n_prompt;
    u["completion_tokens"] = n_completion;
    u["total_tokens"] = n_prompt + n_completion;
    u["prompt_tokens_details"]["cached_tokens"] = n_cached;
    u["completion_tokens_details"]["reasoning_tokens"] = n_reasoning;
    return u;
}

void handle_models(ServerContext& ctx, const httplib::Request&, httplib::Response& res) {
    ojson m;
    m["id"] = ctx.opts.model_name;
    m["object"] = "model";
    m["created"] = int64_t(ctx.created);
    m["owned_by"] = "dsv4";
    m["max_model_len"] = ctx.engine.ctx_size();
    ojson j;
    j["object"] = "list";
    j["data"] = ojson::array({m});
    res.set_content(dump_json(j), "application/json");
}

void handle_health(ServerContext& ctx, const httplib::Request&, httplib::Response& res) {
    if (!ctx.ready) {
        ApiError e;
        e.status = 503;
        e.type = "unavailable_error";
        e.message = "the model is loading or the server is shutting down";
        return send_error(res, e);
    }
    res.set_content("{\"status\":\"ok\"}", "application/json");
}

bool finish_sse_stream(const Generation& gen, const SseWrite& write,
                       const nlohmann::ordered_json& final_chunk, const nlohmann::ordered_json& usage_chunk) {
    if (gen.finish_reason() == "error") {
        ApiError e;
        e.status = 500;
        e.type = "internal_error";
        e.message = fmt::format("generation failed: {}", gen.error());
        if (!write("data: " + error_body(e) + "\n\n")) return false;
    } else if (!write(sse_event(final_chunk))) {
        return false;
    }
    if (!usage_chunk.is_null() && !write(sse_event(usage_chunk))) return false;
    return write("data: [DONE]\n\n");
}

}  // namespace dsv4
