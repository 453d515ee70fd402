// HttpServer: the OpenAI-compatible HTTP front end (cpp-httplib) over a running Engine.
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics.
// Worker threads parse, render, tokenize and format; the engine thread only sees Requests (style.md §2).
// Tested on loopback in tests/server/.
#pragma once

#include <memory>

#include "core/status.h"
#include "server/server_context.h"

namespace dsv4 {

class HttpServer {
public:
    HttpServer(Engine& engine, Tokenizer tok, ServerOptions opts);
    ~HttpServer();

    // Binds (port 0 = any free port) and serves on a background thread.
    Status start();
    int port() const;
    // Blocks until stop() is called from another thread (or a signal handler path).
    void wait();
    void stop();
    void set_ready(bool ready);
    ServerContext& context();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace dsv4
