// HTTP handlers of the OpenAI-compatible API. Each runs on a cpp-httplib worker thread and talks to the
// engine only through Engine::submit/abort and the request's event channel (style.md §2).
#pragma once

#include <httplib.h>

#include <functional>
#include <string>

#include "server/generation.h"
#include "server/openai_types.h"
#include "server/server_context.h"

namespace dsv4 {

void handle_chat_completions(ServerContext& ctx, const httplib::Request& req, httplib::Response& res);
void handle_completions(ServerContext& ctx, const httplib::Request& req, httplib::Response& res);
void handle_models(ServerContext& ctx, const httplib::Request& req, httplib::Response& res);
void handle_health(ServerContext& ctx, const httplib::Request& req, httplib::Response& res);
void handle_metrics(ServerContext& ctx, const httplib::Request& req, httplib::Response& res);

// Shared helpers (handler_util.cpp).
void send_error(httplib::Response& res, const ApiError& err);
std::string dump_json(const nlohmann::ordered_json& j);  // invalid UTF-8 replaced, never throws
std::string sse_event(const nlohmann::ordered_json& j);  // "data: {...}\n\n"
// Submits to the engine; maps engine rejections to HTTP errors (400 too long, 429 busy, 503 stopping).
bool submit_request(ServerContext& ctx, Request r, RequestStream& out, ApiError& err);
// Fills in the defaults that depend on the prompt: max_tokens, seed.
bool finalize_sampling(ServerContext& ctx, GenerationParams& g, size_t n_prompt, ApiError& err);
std::string new_id(ServerContext& ctx, const char* prefix);
nlohmann::ordered_json usage_json(int n_prompt, int n_completion, int n_cached, int n_reasoning);

// Writes one SSE chunk; false once the client is gone.
using SseWrite = std::function<bool(const std::string&)>;
// Ends a stream whose generation finished: an error event (finish_reason "error") or `final_chunk`,
// then `usage_chunk` unless it is null, then "data: [DONE]".
bool finish_sse_stream(const Generation& gen, const SseWrite& write,
                       const nlohmann::ordered_json& final_chunk, const nlohmann::ordered_json& usage_chunk);

}  // namespace dsv4
