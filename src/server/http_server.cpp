// HttpServer: cpp-httplib setup — worker pool sized for concurrent streams, body limit, routes, OpenAI
// error bodies for unknown routes and for exceptions (one request fails, the server keeps serving).
#include "server/http_server.h"

#include <sys/socket.h>

#include <thread>

#include "core/log.h"
#include "server/handlers.h"

namespace dsv4 {

struct HttpServer::Impl {
    Impl(Engine& e, Tokenizer t, ServerOptions o) : ctx(e, std::move(t), std::move(o)) {}
    ServerContext ctx;
    httplib::Server svr;
    std::thread thread;
    int port = 0;
};

HttpServer::HttpServer(Engine& engine, Tokenizer tok, ServerOptions opts)
    : impl_(std::make_unique<Impl>(engine, std::move(tok), std::move(opts))) {}

HttpServer::~HttpServer() {
    stop();
}

ServerContext& HttpServer::context() {
    return impl_->ctx;
}
int HttpServer::port() const {
    return impl_->port;
}
void HttpServer::set_ready(bool ready) {
    impl_->ctx.ready = ready;
}

Status HttpServer::start() {
    ServerContext& ctx = impl_->ctx;
    httplib::Server& svr = impl_->svr;
    // every open stream holds one worker for its whole life, so size the pool for them plus headroom
    size_t n_threads =
        ctx.opts.threads > 0 ? size_t(ctx.opts.threads) : size_t(2 * ctx.engine.options().max_seqs + 64);
    svr.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
    svr.set_payload_max_length(ctx.opts.max_body_bytes);
    svr.set_read_timeout(30, 0);
    svr.set_write_timeout(30, 0);
    svr.set_keep_alive_max_count(1000);

    auto route = [&ctx](const char* name,
                        void (*fn)(ServerContext&, const httplib::Request&, httplib::Response&)) {
        return [&ctx, name, fn](const httplib::Request& req, httplib::Response& res) {
            fn(ctx, req, res);
            ctx.count_http(name, res.status == -1 ? 200 : res.status);
        };
    };
    svr.Post("/v1/chat/completions", route("chat_completions", handle_chat_completions));
    svr.Post("/v1/completions", route("completions", handle_completions));
    svr.Get("/v1/models", route("models", handle_models));
    svr.Get("/health", route("health", handle_health));
    svr.Get("/metrics", route("metrics", handle_metrics));
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;  // a handler already wrote an OpenAI error
        ApiError e;
        e.status = res.status;
        if (res.status == 404) {
            e.type = "not_found_error";
            e.message = fmt::format("no route for {} {}", req.method, req.path);
        } else if (res.status == 413) {
            e.message = "request body too large";
        } else {
            e.message = fmt::format("HTTP error {}", res.status);
        }
        res.set_content(error_body(e), "application/json");
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        ApiError e;
        e.status = 500;
        e.type = "internal_error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& ex) {
            e.message = fmt::format("internal error: {}", ex.what());
        } catch (...) {
            e.message = "internal error";
        }
        log_error("http handler: {}", e.message);
        res.status = 500;
        res.set_content(error_body(e), "application/json");
    });

    // NOTE(serve): libcpp-httplib 0.11 listens with a compiled-in backlog of 5; 64 clients connecting at
    // once overflow it and some connections fail. Remember the socket and re-listen with a real backlog.
    auto listen_fd = std::make_shared<int>(-1);
    svr.set_socket_options([listen_fd](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const char*>(&yes), sizeof(yes));
        *listen_fd = int(sock);
    });
    int port = ctx.opts.port;
    if (port == 0) {
        port = svr.bind_to_any_port(ctx.opts.host);
        if (port < 0) return error("cannot bind {} on any port", ctx.opts.host);
    } else if (!svr.bind_to_port(ctx.opts.host, port)) {
        return error("cannot bind {}:{} (in use, or no permission); hint: pick another --port", ctx.opts.host,
                     port);
    }
    if (*listen_fd >= 0) ::listen(*listen_fd, 1024);
    impl_->port = port;
    impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
    log_info("serving '{}' on http://{}:{} ({} HTTP workers)", ctx.opts.model_name, ctx.opts.host, port,
             n_threads);
    return Status::ok();
}

void HttpServer::wait() {
    if (impl_->thread.joinable()) impl_->thread.join();
}

void HttpServer::stop() {
    if (!impl_) return;
    impl_->svr.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace dsv4
