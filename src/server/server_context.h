// ServerContext: what every HTTP handler shares — the engine (through its thread-safe API only), the
// tokenizer (immutable, thread-safe), options and HTTP-level counters. See http_server.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>
#include <string>

#include "runtime/engine.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/tokenizer.h"

namespace dsv4 {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;  // 0: any free port (tests)
    std::string model_name = "dsv4";
    int threads = 0;  // HTTP worker threads; 0 = 2 x max_seqs + 64 (streams hold one each)
    size_t max_body_bytes = 64u << 20;
    bool default_thinking = true;
    ChatOptions chat;         // effort prefixes of the checkpoint
    int keepalive_ms = 5000;  // SSE comment interval while nothing else is sent
};

struct ServerContext {
    ServerContext(Engine& e, Tokenizer t, ServerOptions o)
        : engine(e), tok(std::move(t)), opts(std::move(o)) {}

    Engine& engine;
    Tokenizer tok;
    ServerOptions opts;
    std::atomic<bool> ready{true};
    std::time_t created = std::time(nullptr);
    std::atomic<uint64_t> next_id{1};

    void count_http(const std::string& endpoint, int status) {
        std::lock_guard<std::mutex> lock(mu);
        http_requests[{endpoint, status}]++;
    }
    std::map<std::pair<std::string, int>, uint64_t> http_counts() const {
        std::lock_guard<std::mutex> lock(mu);
        return http_requests;
    }
    void count_disconnect() { disconnects++; }
    std::atomic<uint64_t> disconnects{0};

private:
    mutable std::mutex mu;
    std::map<std::pair<std::string, int>, uint64_t> http_requests;
};

}  // namespace dsv4
