// GET /metrics: Prometheus text exposition (format 0.0.4), hand-written. Names follow vLLM's with the
// prefix dsv4: and the label model_name (serving-design §6).
#include <fmt/format.h>

#include "server/handlers.h"

namespace dsv4 {

namespace {

struct Writer {
    std::string out;
    std::string labels;  // model_name="..."

    void head(const char* name, const char* type, const char* help) {
        out += fmt::format("# HELP dsv4:{} {}\n# TYPE dsv4:{} {}\n", name, help, name, type);
    }
    void value(const char* name, double v, const std::string& extra = {}) {
        out += fmt::format("dsv4:{}{{{}{}}} {}\n", name, labels, extra, v);
    }
    void gauge(const char* name, const char* help, double v) {
        head(name, "gauge", help);
        value(name, v);
    }
    void counter(const char* name, const char* help, double v) {
        head(name, "counter", help);
        value(name, v);
    }
    void histogram(const char* name, const char* help, const Histogram& h) {
        head(name, "histogram", help);
        uint64_t cum = 0;
        for (size_t i = 0; i < h.bounds.size(); ++i) {
            cum += h.counts[i];
            out += fmt::format("dsv4:{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, h.bounds[i], cum);
        }
        cum += h.counts.back();
        out += fmt::format("dsv4:{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, cum);
        out += fmt::format("dsv4:{}_sum{{{}}} {}\n", name, labels, h.sum);
        out += fmt::format("dsv4:{}_count{{{}}} {}\n", name, labels, h.count);
    }
};

}  // namespace

void handle_metrics(ServerContext& ctx, const httplib::Request&, httplib::Response& res) {
    const EngineMetrics m = ctx.engine.metrics();
    const PoolUsage u = ctx.engine.pool_usage();
    Writer w;
    w.labels = fmt::format("model_name=\"{}\"", ctx.opts.model_name);
    w.gauge("num_requests_running", "Requests holding a state slot.", double(m.requests_running));
    w.gauge("num_requests_waiting", "Requests queued for admission.", double(m.requests_waiting));
    w.gauge("kv_cache_usage_perc", "Fraction of state pages in use (1 = full).", m.kv_cache_usage);
    w.gauge("state_slots_usage_perc", "Fraction of per-sequence state slots in use.", m.state_slots_usage);
    w.gauge("prefix_snapshots", "Prefix-cache snapshots held.", double(m.prefix_snapshots));
    w.gauge("cache_pages_total", "State pages in the pool.", double(u.pages_total));
    w.counter("prompt_tokens_total", "Prompt tokens of admitted requests.", double(m.prompt_tokens));
    w.counter("generation_tokens_total", "Generated tokens.", double(m.generation_tokens));
    w.counter("num_preemptions_total", "Sequences preempted for memory.", double(m.preemptions));
    w.counter("prefix_cache_queries_total", "Requests that looked up the prefix cache.",
              double(m.prefix_queries));
    w.counter("prefix_cache_hits_total", "Requests that restored a prefix snapshot.", double(m.prefix_hits));
    w.counter("prefix_cache_hit_tokens_total", "Prompt tokens restored from snapshots.",
              double(m.prefix_hit_tokens));
    w.counter("engine_steps_total", "Engine steps that ran the model.", double(m.steps));
    w.counter("client_disconnects_total", "Streams whose client went away before the end.",
              double(ctx.disconnects));
    w.head("request_success_total", "counter", "Finished requests by finish reason.");
    for (auto& [reason, n] : m.finished)
        w.value("request_success_total", double(n), fmt::format(",finished_reason=\"{}\"", reason));
    w.head("http_requests_total", "counter", "HTTP requests by endpoint and status.");
    for (auto& [key, n] : ctx.http_counts())
        w.value("http_requests_total", double(n),
                fmt::format(",endpoint=\"{}\",status=\"{}\"", key.first, key.second));
    w.histogram("time_to_first_token_seconds", "Arrival to first generated token.", m.ttft);
    w.histogram("inter_token_latency_seconds", "Time between generated tokens (TPOT).", m.tpot);
    w.histogram("e2e_request_latency_seconds", "Arrival to finish.", m.e2e);
    w.histogram("request_queue_time_seconds", "Arrival to admission.", m.queue_time);
    res.set_content(w.out, "text/plain; version=0.0.4");
}

}  // namespace dsv4
