// Engine: public API, engine thread and Engine::step (schedule -> run -> postprocess).
#include "runtime/engine.h"

#include <algorithm>

#include "core/log.h"

namespace dsv4 {

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::none:
            return "none";
        case FinishReason::stop:
            return "stop";
        case FinishReason::length:
            return "length";
        case FinishReason::abort:
            return "abort";
        case FinishReason::error:
            return "error";
    }
    return "none";
}

Result<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<ModelRunner> runner, const EngineOptions& o) {
    if (!runner) return error("engine: no model runner");
    if (o.max_batched_tokens < o.max_seqs)
        return error(
            "engine: the per-step token budget ({}) must be >= --max-seqs ({}) so every running "
            "sequence can decode each step",
            o.max_batched_tokens, o.max_seqs);
    if (o.long_prefill_tokens < 1)
        return error("engine: prefill chunk cap must be >= 1, got {}", o.long_prefill_tokens);
    EngineOptions opts = o;
    opts.ctx_size = std::min<int64_t>(o.ctx_size, runner->max_context());
    PoolOptions po;
    po.max_seqs = opts.max_seqs;
    po.ctx_size = opts.ctx_size;
    po.page_tokens = opts.page_tokens;
    po.max_snapshots = opts.max_snapshots;
    po.memory_budget = opts.memory_budget;
    DSV4_TRY_ASSIGN(BlockManager bm, BlockManager::create(po, opts.geometry));
    return std::unique_ptr<Engine>(new Engine(std::move(runner), opts, std::move(bm)));
}

Engine::Engine(std::unique_ptr<ModelRunner> runner, const EngineOptions& opts, BlockManager bm)
    : runner_(std::move(runner)), opts_(opts), bm_(std::move(bm)), cache_(opts.page_tokens) {
    ctx_size_ = opts_.ctx_size;
    vocab_ = runner_->vocab_size();
    update_gauges();
}

Engine::~Engine() {
    stop();
    clear_prefix_cache();
}

Result<RequestStream> Engine::submit(Request req, SubmitError* why) {
    auto fail = [&](SubmitError e, Status s) -> Result<RequestStream> {
        if (why) *why = e;
        return s;
    };
    if (why) *why = SubmitError::none;
    if (stop_) return fail(SubmitError::stopped, error("the engine is shutting down"));
    if (req.prompt.empty()) return fail(SubmitError::invalid, error("the prompt is empty"));
    for (int32_t id : req.prompt)
        if (id < 0 || id >= vocab_)
            return fail(SubmitError::invalid,
                        error("prompt token id {} is outside the vocabulary [0, {})", id, vocab_));
    if (req.sampling.max_tokens < 1)
        return fail(SubmitError::invalid, error("max_tokens must be >= 1, got {}", req.sampling.max_tokens));
    const int64_t n_prompt = int64_t(req.prompt.size());
    if (n_prompt + req.sampling.max_tokens > ctx_size_)
        return fail(
            SubmitError::too_long,
            error("this model's maximum context length is {} tokens; the request has {} prompt tokens "
                  "and asks for {} completion tokens ({} in all)",
                  ctx_size_, n_prompt, req.sampling.max_tokens, n_prompt + req.sampling.max_tokens));
    if (n_queued_.load() >= opts_.max_waiting)
        return fail(SubmitError::busy,
                    error("server busy: {} requests are already waiting", n_queued_.load()));

    auto seq = std::make_unique<Sequence>();
    req.id = next_id_++;
    seq->req = std::move(req);
    seq->events = std::make_shared<EventChannel>();
    seq->tokens = seq->req.prompt;
    seq->n_prompt = int(n_prompt);
    seq->penalties.set_prompt(seq->req.prompt);
    seq->t_arrival = Clock::now();
    RequestStream rs{seq->req.id, seq->events};
    n_queued_++;
    if (!commands_.push(Command{std::move(seq), 0})) {
        n_queued_--;
        return fail(SubmitError::stopped, error("the engine is shutting down"));
    }
    return rs;
}

void Engine::abort(uint64_t request_id) {
    commands_.push(Command{nullptr, request_id});
}

void Engine::start() {
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = std::thread([this] { thread_main(); });
}

void Engine::stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    commands_.close();
    // whatever is left gets a final abort event, so no reader waits forever
    drain_commands();
    while (!running_.empty()) finish(*running_.back(), FinishReason::abort);
    while (!waiting_.empty()) finish(*waiting_.back(), FinishReason::abort);
}

void Engine::thread_main() {
    while (!stop_) {
        if (waiting_.empty() && running_.empty()) {
            auto cmd = commands_.pop_for(std::chrono::milliseconds(20));
            if (!cmd) continue;
            if (cmd->seq) {
                waiting_.push_back(std::move(cmd->seq));
            } else {
                apply_abort(cmd->abort_id);
            }
        }
        Status s = step();
        if (!s.is_ok()) log_error("engine step failed: {}", s.message());
    }
}

void Engine::drain_commands() {
    while (auto cmd = commands_.try_pop()) {
        if (cmd->seq) {
            waiting_.push_back(std::move(cmd->seq));
        } else {
            apply_abort(cmd->abort_id);
        }
    }
}

void Engine::apply_abort(uint64_t id) {
    for (auto& s : running_)
        if (s->req.id == id) return finish(*s, FinishReason::abort);
    for (auto& s : waiting_)
        if (s->req.id == id) return finish(*s, FinishReason::abort);
}

Status Engine::step() {
    drain_commands();
    std::vector<StepItem> items = schedule();
    update_gauges();
    if (items.empty()) return Status::ok();

    std::vector<RunItem> run_items;
    run_items.reserve(items.size());
    for (const StepItem& it : items) {
        const Sequence& s = *it.seq;
        run_items.push_back(
            RunItem{s.handle, std::span<const int32_t>(s.tokens).subspan(size_t(s.n_computed), size_t(it.n)),
                    it.sample});
    }
    Status st = runner_->run(run_items, logits_);
    if (!st.is_ok()) {
        // the states of these sequences are undefined now: fail exactly these requests, keep serving
        for (const StepItem& it : items) finish(*it.seq, FinishReason::error, st.message());
        update_gauges();
        return st.with_context("model runner");
    }
    postprocess(items, logits_);
    update_gauges();
    return Status::ok();
}

int Engine::run_until_idle(int max_steps) {
    int n = 0;
    drain_commands();
    while (n < max_steps && !(waiting_.empty() && running_.empty())) {
        (void)step();
        n++;
        drain_commands();
    }
    return n;
}

void Engine::clear_prefix_cache() {
    Snapshot s;
    while (cache_.evict_lru(s)) drop_snapshot(s);
    update_gauges();
}

EngineMetrics Engine::metrics() const {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    return metrics_;
}

PoolUsage Engine::pool_usage() const {
    std::lock_guard<std::mutex> lock(usage_mu_);
    return usage_;
}

void Engine::update_gauges() {
    PoolUsage u = bm_.usage();
    {
        std::lock_guard<std::mutex> lock(usage_mu_);
        usage_ = u;
    }
    std::lock_guard<std::mutex> lock(metrics_mu_);
    metrics_.requests_running = int64_t(running_.size());
    metrics_.requests_waiting = int64_t(waiting_.size()) + int64_t(commands_.size());
    metrics_.kv_cache_usage = u.pages_total ? double(u.pages_used) / double(u.pages_total) : 0.0;
    metrics_.state_slots_usage = u.slots_total ? double(u.slots_used) / double(u.slots_total) : 0.0;
    metrics_.prefix_snapshots = int64_t(cache_.size());
}

}  // namespace dsv4
