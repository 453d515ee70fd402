// Engine: owns the model runner, the state pools, the prefix cache and the scheduler, and runs on its
// own thread. HTTP workers call submit()/abort() and read TokenEvents from the returned channel; they
// never block the engine (style.md §2). Engine::step() = schedule -> run -> postprocess (nano-vllm).
// One class in three files: engine.cpp (API, thread, step), scheduler.cpp (schedule, admit, preempt),
// postprocess.cpp (sampling, stop checks, snapshots, events). Tested in tests/unit/test_engine*.cpp.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/block_manager.h"
#include "runtime/channel.h"
#include "runtime/metrics.h"
#include "runtime/model_runner.h"
#include "runtime/prefix_cache.h"
#include "runtime/request.h"
#include "runtime/sequence.h"

namespace dsv4 {

struct EngineOptions {
    int max_seqs = 8;               // running sequences (state slots)
    int64_t ctx_size = 4096;        // prompt + output tokens per sequence
    int max_batched_tokens = 512;   // per-step token budget (decodes + prefill chunks)
    int long_prefill_tokens = 256;  // cap of one prefill chunk, so a long prompt cannot hog steps
    int page_tokens = 256;          // page = prefix-cache block; a multiple of 128 for real models
    int max_snapshots = 16;         // prefix-cache snapshots (0 disables the prefix cache)
    int64_t memory_budget = 0;      // bytes; 0 sizes pages for max_seqs full-length sequences
    int max_waiting = 1024;         // queued requests beyond this are rejected as busy
    int32_t eos_id = 1;
    StateGeometry geometry{1, 1};  // from state_geometry(config); the fake runner uses 1 byte each
};

enum class SubmitError { none, invalid, too_long, busy, stopped };

struct RequestStream {
    uint64_t id = 0;
    std::shared_ptr<EventChannel> events;
};

struct StepItem {
    Sequence* seq = nullptr;
    int64_t n = 0;        // tokens fed this step, starting at seq->n_computed
    bool sample = false;  // the chunk reaches the end of the sequence's tokens
};

class Engine {
public:
    static Result<std::unique_ptr<Engine>> create(std::unique_ptr<ModelRunner> runner,
                                                  const EngineOptions& opts);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // --- any thread ---
    Result<RequestStream> submit(Request req, SubmitError* why = nullptr);
    void abort(uint64_t request_id);
    void start();  // engine thread
    void stop();   // aborts what is left, joins
    EngineMetrics metrics() const;
    PoolUsage pool_usage() const;
    int64_t ctx_size() const { return ctx_size_; }
    int64_t vocab_size() const { return vocab_; }
    const EngineOptions& options() const { return opts_; }

    // --- engine thread, or the test thread when start() was not called ---
    Status step();
    bool idle() const { return waiting_.empty() && running_.empty() && commands_.size() == 0; }
    // Steps until idle or max_steps; returns the number of steps run.
    int run_until_idle(int max_steps = 1 << 20);
    void clear_prefix_cache();
    ModelRunner& runner() { return *runner_; }

private:
    struct Command {
        std::unique_ptr<Sequence> seq;
        uint64_t abort_id = 0;
    };
    Engine(std::unique_ptr<ModelRunner> runner, const EngineOptions& opts, BlockManager bm);

    void thread_main();
    void drain_commands();
    void apply_abort(uint64_t id);
    // scheduler.cpp
    std::vector<StepItem> schedule();
    bool admit(Sequence& seq);
    bool make_room(std::vector<int32_t>& table, int64_t n_tokens, const Sequence* keep);
    void preempt(Sequence& seq);
    void plan_snapshots(Sequence& seq);
    int64_t align_chunk(const Sequence& seq, int64_t n) const;
    // postprocess.cpp
    void postprocess(const std::vector<StepItem>& items, const std::vector<float>& logits);
    void take_snapshot(Sequence& seq);
    void drop_snapshot(Snapshot& s);
    void finish(Sequence& seq, FinishReason why, const std::string& err = {}, bool send_event = true);
    void release(Sequence& seq);
    void update_gauges();

    std::unique_ptr<ModelRunner> runner_;
    EngineOptions opts_;
    int64_t ctx_size_ = 0, vocab_ = 0;
    BlockManager bm_;
    PrefixCache cache_;
    std::deque<std::unique_ptr<Sequence>> waiting_;
    std::vector<std::unique_ptr<Sequence>> running_;  // admission order: oldest first
    Channel<Command> commands_;
    std::atomic<uint64_t> next_id_{1};
    std::atomic<int64_t> n_queued_{0};  // submitted, not yet admitted
    std::atomic<bool> stop_{false};
    std::thread thread_;
    mutable std::mutex metrics_mu_;
    EngineMetrics metrics_;
    mutable std::mutex usage_mu_;
    PoolUsage usage_;
    std::vector<float> logits_;
};

}  // namespace dsv4
