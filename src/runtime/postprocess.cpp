// Engine::postprocess: advance computed lengths, take wanted prefix snapshots, sample, check stops,
// emit TokenEvents, and release finished sequences (serving-design §3).
#include "runtime/engine.h"

#include <algorithm>

namespace dsv4 {

void Engine::postprocess(const std::vector<StepItem>& items, const std::vector<float>& logits) {
    const Clock::time_point now = Clock::now();
    for (size_t idx = 0; idx < items.size(); ++idx) {
        Sequence& s = *items[idx].seq;
        s.n_computed += items[idx].n;
        while (!s.snapshot_at.empty() && s.snapshot_at.front() <= s.n_computed) {
            if (s.snapshot_at.front() == s.n_computed) take_snapshot(s);
            s.snapshot_at.erase(s.snapshot_at.begin());
        }
        if (!items[idx].sample) continue;

        const SamplingParams& sp = s.req.sampling;
        std::span<const float> row(logits.data() + idx * size_t(vocab_), size_t(vocab_));
        SampleResult r = sample_token(row, sp, s.penalties, int64_t(s.tokens.size()), opts_.eos_id);
        s.tokens.push_back(r.token);
        s.penalties.add_output(r.token);
        s.n_output++;

        TokenEvent ev;
        ev.request_id = s.req.id;
        ev.has_token = true;
        ev.token = r.token;
        if (sp.top_logprobs >= 0) {
            ev.logprob = r.logprob;
            ev.top_logprobs = std::move(r.top);
        }
        FinishReason fr = FinishReason::none;
        const bool is_stop_id =
            std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), r.token) != sp.stop_token_ids.end();
        if ((!sp.ignore_eos && r.token == opts_.eos_id) || is_stop_id) {
            fr = FinishReason::stop;
        } else if (s.n_output >= sp.max_tokens || int64_t(s.tokens.size()) >= ctx_size_) {
            fr = FinishReason::length;
        }
        {
            std::lock_guard<std::mutex> lock(metrics_mu_);
            metrics_.generation_tokens++;
            if (s.n_output == 1) {
                s.t_first_token = now;
                metrics_.ttft.observe(std::chrono::duration<double>(now - s.t_arrival).count());
            } else {
                metrics_.tpot.observe(std::chrono::duration<double>(now - s.t_last_token).count());
            }
        }
        s.t_last_token = now;
        if (fr == FinishReason::none) {
            s.events->push(std::move(ev));
        } else {
            ev.finish = fr;
            ev.n_prompt = s.n_prompt;
            ev.n_cached = s.n_cached;
            ev.n_generated = s.n_output;
            s.events->push(std::move(ev));
            finish(s, fr, {}, false);
        }
    }
}

void Engine::take_snapshot(Sequence& seq) {
    const int64_t b = seq.n_computed;
    const int64_t n_blocks = b / cache_.block_tokens();
    if (n_blocks < 1 || n_blocks > int64_t(seq.block_hashes.size())) return;
    const uint64_t hash = seq.block_hashes[size_t(n_blocks - 1)];
    if (cache_.contains(hash)) return;
    Snapshot victim;
    if (!bm_.can_allocate_snapshot()) {
        if (!cache_.evict_lru(victim)) return;
        drop_snapshot(victim);
    }
    auto forked = runner_->fork_seq(seq.handle);
    if (!forked.is_ok()) return;  // a missed snapshot costs only a future recompute
    Snapshot snap;
    snap.hash = hash;
    snap.tokens.assign(seq.tokens.begin(), seq.tokens.begin() + b);
    snap.handle = *forked;
    snap.pages.assign(seq.pages.begin(), seq.pages.begin() + n_blocks);
    for (int32_t p : snap.pages) bm_.ref(p);
    snap.snapshot_slot = bm_.allocate_snapshot();
    cache_.insert(std::move(snap));
}

void Engine::drop_snapshot(Snapshot& s) {
    runner_->free_seq(s.handle);
    bm_.release(s.pages);
    bm_.free_snapshot(s.snapshot_slot);
}

void Engine::release(Sequence& seq) {
    if (seq.handle >= 0) runner_->free_seq(seq.handle);
    seq.handle = -1;
    if (seq.slot >= 0) bm_.free_slot(seq.slot);
    seq.slot = -1;
    bm_.release(seq.pages);
}

void Engine::finish(Sequence& seq, FinishReason why, const std::string& err, bool send_event) {
    if (send_event) {
        TokenEvent ev;
        ev.request_id = seq.req.id;
        ev.finish = why;
        ev.error = err;
        ev.n_prompt = seq.n_prompt;
        ev.n_cached = seq.n_cached;
        ev.n_generated = seq.n_output;
        seq.events->push(std::move(ev));
    }
    seq.events->close();
    {
        std::lock_guard<std::mutex> lock(metrics_mu_);
        metrics_.finished[finish_reason_name(why)]++;
        metrics_.e2e.observe(std::chrono::duration<double>(Clock::now() - seq.t_arrival).count());
    }
    release(seq);
    if (!seq.admitted_once) n_queued_--;
    auto same = [&](const std::unique_ptr<Sequence>& p) { return p.get() == &seq; };
    auto it = std::find_if(running_.begin(), running_.end(), same);
    if (it != running_.end()) {
        running_.erase(it);
        return;
    }
    auto wt = std::find_if(waiting_.begin(), waiting_.end(), same);
    if (wt != waiting_.end()) waiting_.erase(wt);
}

}  // namespace dsv4
