// BlockManager: see the header.
#include "runtime/block_manager.h"

#include <algorithm>

namespace dsv4 {

Result<BlockManager> BlockManager::create(const PoolOptions& o, const StateGeometry& geo) {
    if (o.max_seqs < 1) return error("--max-seqs must be >= 1, got {}", o.max_seqs);
    if (o.ctx_size < 2) return error("--ctx-size must be >= 2, got {}", o.ctx_size);
    if (o.page_tokens < 1) return error("page size must be >= 1 token, got {}", o.page_tokens);
    if (o.max_snapshots < 0) return error("snapshot count must be >= 0, got {}", o.max_snapshots);
    BlockManager bm;
    bm.page_tokens_ = o.page_tokens;
    bm.page_bytes_ = std::max<int64_t>(1, geo.bytes_per_token * o.page_tokens);
    bm.slot_bytes_ = std::max<int64_t>(1, geo.fixed_bytes);
    const int64_t pages_per_seq = bm.pages_for(o.ctx_size);
    int64_t n_pages = int64_t(o.max_seqs) * pages_per_seq;
    if (o.memory_budget > 0) {
        const int64_t fixed = int64_t(o.max_seqs + o.max_snapshots) * bm.slot_bytes_;
        const int64_t need = fixed + pages_per_seq * bm.page_bytes_;
        if (o.memory_budget < need)
            return error(
                "memory budget of {} bytes is too small: {} state slots + {} snapshots take {} bytes and "
                "one sequence of --ctx-size {} needs {} pages of {} bytes ({} bytes in all); hint: raise "
                "the budget or lower --max-seqs / --ctx-size",
                o.memory_budget, o.max_seqs, o.max_snapshots, fixed, o.ctx_size, pages_per_seq,
                bm.page_bytes_, need);
        n_pages = (o.memory_budget - fixed) / bm.page_bytes_;
    }
    if (n_pages > INT32_MAX) n_pages = INT32_MAX;
    bm.page_refs_.assign(size_t(n_pages), 0);
    bm.free_pages_.resize(size_t(n_pages));
    for (int64_t i = 0; i < n_pages; ++i)
        bm.free_pages_[size_t(i)] = int32_t(n_pages - 1 - i);  // page 0 on top
    bm.slot_used_.assign(size_t(o.max_seqs), 0);
    for (int i = o.max_seqs - 1; i >= 0; --i) bm.free_slots_.push_back(i);
    bm.snapshot_used_.assign(size_t(o.max_snapshots), 0);
    for (int i = o.max_snapshots - 1; i >= 0; --i) bm.free_snapshots_.push_back(i);
    return bm;
}

int BlockManager::allocate_slot() {
    DSV4_ASSERT(!free_slots_.empty(), "no free state slot (caller must check can_allocate_slot)");
    int s = free_slots_.back();
    free_slots_.pop_back();
    slot_used_[size_t(s)] = 1;
    return s;
}

void BlockManager::free_slot(int slot) {
    DSV4_ASSERT(slot >= 0 && size_t(slot) < slot_used_.size() && slot_used_[size_t(slot)], "bad slot {}",
                slot);
    slot_used_[size_t(slot)] = 0;
    free_slots_.push_back(slot);
}

int BlockManager::allocate_snapshot() {
    DSV4_ASSERT(!free_snapshots_.empty(), "no free snapshot slot");
    int s = free_snapshots_.back();
    free_snapshots_.pop_back();
    snapshot_used_[size_t(s)] = 1;
    return s;
}

void BlockManager::free_snapshot(int id) {
    DSV4_ASSERT(id >= 0 && size_t(id) < snapshot_used_.size() && snapshot_used_[size_t(id)],
                "bad snapshot {}", id);
    snapshot_used_[size_t(id)] = 0;
    free_snapshots_.push_back(id);
}

int64_t BlockManager::pages_needed(const std::vector<int32_t>& table, int64_t n_tokens) const {
    return std::max<int64_t>(0, pages_for(n_tokens) - int64_t(table.size()));
}

bool BlockManager::can_grow(const std::vector<int32_t>& table, int64_t n_tokens) const {
    return pages_needed(table, n_tokens) <= free_pages();
}

void BlockManager::grow(std::vector<int32_t>& table, int64_t n_tokens) {
    int64_t need = pages_needed(table, n_tokens);
    DSV4_ASSERT(need <= free_pages(), "grow by {} pages with {} free", need, free_pages());
    for (int64_t i = 0; i < need; ++i) {
        int32_t p = free_pages_.back();
        free_pages_.pop_back();
        page_refs_[size_t(p)] = 1;
        table.push_back(p);
    }
}

void BlockManager::ref(int32_t page) {
    DSV4_ASSERT(page_refs_[size_t(page)] > 0, "ref of free page {}", page);
    page_refs_[size_t(page)]++;
}

void BlockManager::unref(int32_t page) {
    DSV4_ASSERT(page_refs_[size_t(page)] > 0, "unref of free page {}", page);
    if (--page_refs_[size_t(page)] == 0) free_pages_.push_back(page);
}

void BlockManager::release(std::vector<int32_t>& table) {
    for (int32_t p : table) unref(p);
    table.clear();
}

PoolUsage BlockManager::usage() const {
    PoolUsage u;
    u.pages_total = int64_t(page_refs_.size());
    u.pages_used = u.pages_total - free_pages();
    u.slots_total = int(slot_used_.size());
    u.slots_used = u.slots_total - int(free_slots_.size());
    u.snapshots_total = int(snapshot_used_.size());
    u.snapshots_used = u.snapshots_total - int(free_snapshots_.size());
    u.page_bytes = page_bytes_;
    u.slot_bytes = slot_bytes_;
    return u;
}

}  // namespace dsv4
