// EngineMetrics: counters, gauges and histograms updated by the engine thread and copied out under a
// mutex for readers (the server's /metrics renders them as Prometheus text, serving-design §6).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dsv4 {

struct Histogram {
    std::vector<double> bounds;    // upper bounds, ascending; +Inf implied
    std::vector<uint64_t> counts;  // per bucket (not cumulative), size bounds+1
    double sum = 0.0;
    uint64_t count = 0;

    explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
    void observe(double v);
};

struct EngineMetrics {
    // gauges
    int64_t requests_running = 0;
    int64_t requests_waiting = 0;
    double kv_cache_usage = 0.0;  // fraction of pages in use
    double state_slots_usage = 0.0;
    int64_t prefix_snapshots = 0;
    // counters
    uint64_t prompt_tokens = 0;
    uint64_t generation_tokens = 0;
    uint64_t prefix_queries = 0;
    uint64_t prefix_hits = 0;
    uint64_t prefix_hit_tokens = 0;
    uint64_t preemptions = 0;
    uint64_t steps = 0;
    std::map<std::string, uint64_t> finished;  // by finish reason
    // histograms, seconds
    Histogram ttft{{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
    Histogram tpot{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
    Histogram e2e{{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
    Histogram queue_time{{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}};
};

}  // namespace dsv4
