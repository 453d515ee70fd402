// Helpers of the loopback server tests: the fixture tokenizer, a server over an engine and runner,
// blocking JSON POSTs and SSE POSTs that may hang up early.
#pragma once

#include <httplib.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"

namespace dsv4::testing {

using ojson = nlohmann::ordered_json;

inline const Tokenizer& v4_tok() {
    static const Tokenizer tok = [] {
        auto r = Tokenizer::load(std::string(DSV4_FIXTURES_DIR) + "/tokenizer/deepseek_v4_tokenizer.json");
        DSV4_ASSERT(r.is_ok(), "{}", r.message());
        return r.value();
    }();
    return tok;
}

struct TestServer {
    std::unique_ptr<Engine> engine;
    std::unique_ptr<HttpServer> http;
    ModelRunner* runner = nullptr;

    TestServer(std::unique_ptr<ModelRunner> r, EngineOptions eo, ServerOptions so = {}) {
        runner = r.get();
        auto e = Engine::create(std::move(r), eo);
        DSV4_ASSERT(e.is_ok(), "{}", e.message());
        engine = std::move(e).value();
        engine->start();
        so.port = 0;
        if (so.model_name == "dsv4") so.model_name = "test-model";
        http = std::make_unique<HttpServer>(*engine, v4_tok(), so);
        Status st = http->start();
        DSV4_ASSERT(st.is_ok(), "{}", st.message());
    }
    ~TestServer() { shutdown(); }
    // engine first: every open request gets its final event, so HTTP workers finish promptly
    void shutdown() {
        if (engine) engine->stop();
        if (http) http->stop();
    }
    int port() const { return http->port(); }
};

struct HttpResult {
    int status = 0;
    std::string body;
    std::string retry_after;
    bool transport_ok = false;
    std::string transport_error;
};

inline HttpResult post(int port, const std::string& path, const std::string& body) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(60, 0);
    HttpResult r;
    auto res = cli.Post(path.c_str(), body, "application/json");
    if (!res) {
        r.transport_error = httplib::to_string(res.error());
        return r;
    }
    r.transport_ok = true;
    r.status = res->status;
    r.body = res->body;
    r.retry_after = res->get_header_value("Retry-After");
    return r;
}

inline HttpResult get(int port, const std::string& path) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(30, 0);
    HttpResult r;
    auto res = cli.Get(path.c_str());
    if (!res) return r;
    r.transport_ok = true;
    r.status = res->status;
    r.body = res->body;
    return r;
}

struct SseResult {
    int status = 0;
    std::vector<ojson> events;  // parsed data: lines, [DONE] excluded
    bool done = false;          // saw data: [DONE]
    std::string raw;
    bool hung_up = false;
    std::string transport_error;
};

// POSTs and reads the SSE stream; hangs up after `hang_up_after` received chunks when >= 0.
inline SseResult post_sse(int port, const std::string& path, const std::string& body,
                          int hang_up_after = -1) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(60, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body;
    req.set_header("Content-Type", "application/json");
    SseResult out;
    int chunks = 0;
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        out.raw.append(data, n);
        if (hang_up_after >= 0 && ++chunks >= hang_up_after) {
            out.hung_up = true;
            return false;
        }
        return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    if (!cli.send(req, res, err) && !out.hung_up) out.transport_error = httplib::to_string(err);
    out.status = res.status;
    size_t pos = 0;
    while (true) {
        size_t end = out.raw.find("\n\n", pos);
        if (end == std::string::npos) break;
        std::string ev = out.raw.substr(pos, end - pos);
        pos = end + 2;
        if (ev.rfind("data: ", 0) != 0) continue;  // comments (keepalive)
        std::string data = ev.substr(6);
        if (data == "[DONE]") {
            out.done = true;
            continue;
        }
        out.events.push_back(ojson::parse(data, nullptr, false));
    }
    return out;
}

// VmRSS / VmHWM of this process in KiB (Linux).
inline long proc_status_kib(const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::string(key).size() + 1));
    return -1;
}

}  // namespace dsv4::testing
