// Engine::schedule: decode-first continuous batching with a per-step token budget (serving-design §3).
//  1. every running sequence in decode gets its token, oldest first; when a page cannot be had, cached
//     snapshots are evicted first, then the newest running sequence is preempted (recompute);
//  2. unfinished prefills continue, oldest first, in chunks capped by long_prefill_tokens;
//  3. waiting requests are admitted FCFS while a slot, pages and budget remain (a request never jumps
//     the queue, so admission is fair; a preempted sequence goes back to the head).
// Chunk ends snap to wanted snapshot boundaries so the prefix cache can fork the state there.
#include "runtime/engine.h"

#include <algorithm>

namespace dsv4 {

bool Engine::make_room(std::vector<int32_t>& table, int64_t n_tokens, const Sequence* /*keep*/) {
    Snapshot victim;
    while (!bm_.can_grow(table, n_tokens)) {
        if (!cache_.evict_lru(victim)) return false;
        drop_snapshot(victim);
    }
    bm_.grow(table, n_tokens);
    return true;
}

void Engine::preempt(Sequence& seq) {
    release(seq);
    seq.n_computed = 0;
    seq.n_cached = 0;
    seq.snapshot_at.clear();
    {
        std::lock_guard<std::mutex> lock(metrics_mu_);
        metrics_.preemptions++;
    }
    auto it = std::find_if(running_.begin(), running_.end(), [&](auto& p) { return p.get() == &seq; });
    DSV4_ASSERT(it != running_.end(), "preempt of a sequence that is not running");
    waiting_.push_front(std::move(*it));
    running_.erase(it);
}

void Engine::plan_snapshots(Sequence& seq) {
    seq.snapshot_at.clear();
    if (opts_.max_snapshots == 0 || seq.block_hashes.empty()) return;
    const int64_t blk = cache_.block_tokens();
    const int64_t matched = cache_.matched_blocks(seq.block_hashes);
    auto want = [&](int64_t n_blocks) {
        const int64_t b = n_blocks * blk;
        if (n_blocks < 1 || b <= seq.n_computed || cache_.contains(seq.block_hashes[size_t(n_blocks - 1)]))
            return;
        if (std::find(seq.snapshot_at.begin(), seq.snapshot_at.end(), b) == seq.snapshot_at.end())
            seq.snapshot_at.push_back(b);
    };
    want(matched);                           // junction with an earlier prompt's chain
    want(int64_t(seq.block_hashes.size()));  // this prompt's replay boundary
    std::sort(seq.snapshot_at.begin(), seq.snapshot_at.end());
}

int64_t Engine::align_chunk(const Sequence& seq, int64_t n) const {
    for (int64_t b : seq.snapshot_at)
        if (b > seq.n_computed && seq.n_computed + n > b) return b - seq.n_computed;
    return n;
}

bool Engine::admit(Sequence& seq) {
    const bool first = !seq.admitted_once;
    const int64_t max_hit = int64_t(seq.tokens.size()) - 1;  // at least one token is computed for logits
    SeqHandle handle = -1;
    std::vector<int32_t> pages;
    int64_t n_hit = 0;
    if (opts_.max_snapshots > 0) {
        seq.block_hashes = cache_.block_hashes(std::span<const int32_t>(seq.tokens).first(size_t(max_hit)),
                                               seq.req.cache_salt);
        const Snapshot* hit = cache_.lookup(seq.tokens, seq.block_hashes, max_hit);
        if (hit) {
            auto forked = runner_->fork_seq(hit->handle);
            if (forked.is_ok()) {
                handle = *forked;
                pages = hit->pages;
                for (int32_t p : pages) bm_.ref(p);
                n_hit = int64_t(hit->tokens.size());
            }
        }
    }
    if (handle < 0) {
        auto created = runner_->create_seq();
        if (!created.is_ok()) return false;  // the runner is out of states: try again next step
        handle = *created;
    }
    seq.handle = handle;
    seq.pages = std::move(pages);
    seq.n_computed = n_hit;
    seq.n_cached = int(std::min<int64_t>(n_hit, seq.n_prompt));
    seq.slot = bm_.allocate_slot();
    if (opts_.max_snapshots > 0) {
        plan_snapshots(seq);
        cache_.remember_blocks(seq.block_hashes);
    }
    if (first) {
        seq.admitted_once = true;
        seq.t_admitted = Clock::now();
        n_queued_--;
        std::lock_guard<std::mutex> lock(metrics_mu_);
        metrics_.prefix_queries += opts_.max_snapshots > 0 ? 1 : 0;
        metrics_.prefix_hits += n_hit > 0 ? 1 : 0;
        metrics_.prefix_hit_tokens += uint64_t(n_hit);
        metrics_.prompt_tokens += uint64_t(seq.n_prompt);
        metrics_.queue_time.observe(std::chrono::duration<double>(seq.t_admitted - seq.t_arrival).count());
    }
    return true;
}

std::vector<StepItem> Engine::schedule() {
    std::vector<StepItem> items;
    int64_t budget = opts_.max_batched_tokens;
    auto scheduled = [&](const Sequence* s) {
        return std::any_of(items.begin(), items.end(), [&](const StepItem& it) { return it.seq == s; });
    };
    // newest running sequence not yet in this step, other than `self`
    auto newest_victim = [&](const Sequence* self) -> Sequence* {
        for (size_t j = running_.size(); j-- > 0;)
            if (running_[j].get() != self && !scheduled(running_[j].get())) return running_[j].get();
        return nullptr;
    };

    auto index_of = [&](const Sequence* s) {
        size_t j = 0;
        while (running_[j].get() != s) j++;
        return j;
    };

    // 1. decodes
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
        Sequence& s = *running_[i];
        if (!s.is_decode()) continue;
        bool ok = make_room(s.pages, s.n_computed + 1, &s);
        while (!ok) {
            Sequence* v = newest_victim(&s);
            if (!v) break;
            preempt(*v);  // may sit before s: find s again
            i = index_of(&s);
            ok = make_room(s.pages, s.n_computed + 1, &s);
        }
        if (!ok) {
            preempt(s);  // nothing else to take pages from: s waits at the head of the queue
            --i;
            continue;
        }
        items.push_back(StepItem{&s, 1, true});
        budget--;
    }

    // 2. unfinished prefills
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
        Sequence& s = *running_[i];
        if (scheduled(&s) || s.is_decode()) continue;
        int64_t n = std::min<int64_t>({s.remaining(), budget, opts_.long_prefill_tokens});
        n = align_chunk(s, n);
        bool ok = make_room(s.pages, s.n_computed + n, &s);
        while (!ok) {
            Sequence* v = newest_victim(&s);
            if (!v) break;
            preempt(*v);
            i = index_of(&s);
            ok = make_room(s.pages, s.n_computed + n, &s);
        }
        if (!ok) continue;
        items.push_back(StepItem{&s, n, s.n_computed + n == int64_t(s.tokens.size())});
        budget -= n;
    }

    // 3. admission, FCFS
    while (budget > 0 && !waiting_.empty() && int(running_.size()) < opts_.max_seqs &&
           bm_.can_allocate_slot()) {
        Sequence& s = *waiting_.front();
        if (!admit(s)) break;
        int64_t n = std::min<int64_t>({s.remaining(), budget, opts_.long_prefill_tokens});
        n = align_chunk(s, n);
        if (!make_room(s.pages, s.n_computed + n, &s)) {
            // not enough pages now: undo and wait for running sequences to free some (FCFS: no skipping)
            release(s);
            s.n_computed = 0;
            s.n_cached = 0;
            break;
        }
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        items.push_back(StepItem{&s, n, s.n_computed + n == int64_t(s.tokens.size())});
        budget -= n;
    }
    {
        std::lock_guard<std::mutex> lock(metrics_mu_);
        if (!items.empty()) metrics_.steps++;
    }
    return items;
}

}  // namespace dsv4
